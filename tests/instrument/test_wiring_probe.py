"""The wiring probe's judgement of parameters that did not move: rounding below the float
resolution, a learning rate of 0, an update lost, and phases seen later in the run."""
import torch
from torch import nn

from nnprof.analyses.wiring import wiring
from nnprof.instrument.updates import RESOLUTION_SLACK, asked_update
from nnprof.instrument.wiring import WiringProbe


def run(model, opt, steps=4, window=3, sched=None, gate=None):
    """Train on a fixed batch with the probe's hooks around each step; ``gate(i)`` is
    the factor on the ``side`` branch at step ``i``."""
    probe = WiringProbe(window=window)
    probe.add_model(model)
    probe.add_optimizer(opt)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g)
    dtype = next(model.parameters()).dtype
    for i in range(steps):
        opt.zero_grad()
        out = model(x.to(dtype)) if gate is None else model(x, gate(i))
        nn.functional.cross_entropy(out.float(), y).backward()
        probe.before_step(opt)
        opt.step()
        probe.after_step(opt)
        if sched is not None:
            sched.step()
    return probe.result()


def bn_net(dtype=torch.float32, norm=nn.BatchNorm1d):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), norm(64), nn.ReLU(), nn.Linear(64, 4)).to(dtype)


def test_warmup_from_1e5_rounds_updates_away_and_is_no_wiring_fault():
    model = bn_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=2e-5)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-4, total_iters=1000)
    before = model[0].bias.detach().clone()
    r = run(model, opt, sched=sched)
    # the bias before a batch norm gets a gradient of rounding noise: lr x update is far
    # below the spacing of float32 at its values
    assert torch.equal(before, model[0].bias.detach())
    assert r["unchanged"] == [] and r["below_resolution"] == ["0.bias"]
    grp, = r["resolution"]
    assert grp["dtype"] == "float32" and grp["warmup"] and grp["initial_lr"] == 0.1
    assert grp["lr"][0] == 1e-5 and 0 < grp["ratio"] <= RESOLUTION_SLACK
    f = wiring(r)
    assert f.verdict == "warn" and f.severity == "warn"
    line = next(a for a in f.advice if "0.bias" in a)
    assert "below their float32 resolution" in line and "warm-up" in line
    assert "lr 1e-05 to" in line and "Not a wiring fault" in line


def test_bf16_parameters_under_adam_round_small_updates_away():
    model = bn_net(torch.bfloat16, nn.LayerNorm)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    w = model[1].weight.detach().clone()
    r = run(model, opt)
    assert torch.equal(w, model[1].weight.detach())  # 1.0 + 1e-4 is 1.0 in bfloat16
    assert "1.weight" in r["below_resolution"] and r["unchanged"] == []
    grp, = r["resolution"]
    assert grp["dtype"] == "bfloat16" and grp["eps"] == torch.finfo(torch.bfloat16).eps
    assert not grp["warmup"] and grp["moves_at_lr"] > 1e-4
    f = wiring(r)
    assert f.verdict == "warn"
    assert any("float32 (master) weights" in a and "bfloat16" in a for a in f.advice)


def test_learning_rate_zero_still_fails_with_its_cause():
    model = bn_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
    r = run(model, opt)
    assert len(r["unchanged"]) == 6 and r["below_resolution"] == []
    assert {c["cause"] for c in r["unchanged_causes"]} == {"lr0"}
    f = wiring(r)
    assert f.verdict == "fail" and any("lr=0" in a for a in f.advice)


class SkipsLast(torch.optim.Optimizer):
    """Plain gradient descent that never updates its last param group."""

    def __init__(self, groups, lr):
        super().__init__(groups, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups[:-1]:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-g["lr"])


def test_an_update_above_the_resolution_that_does_not_land_fails():
    model = bn_net()
    opt = SkipsLast([{"params": list(model[0].parameters()) + list(model[1].parameters())},
                     {"params": model[3].parameters()}], lr=0.1)
    r = run(model, opt)
    assert sorted(r["unchanged"]) == ["3.bias", "3.weight"]
    causes = {c["name"]: c for c in r["unchanged_causes"]}
    assert causes["3.weight"]["cause"] == "lost" and causes["3.weight"]["ratio"] > 1e3
    f = wiring(r)
    assert f.verdict == "fail"
    assert any("3.weight" in a and "float resolution" in a for a in f.advice)


class Odd(torch.optim.Optimizer):
    """An optimizer whose state nnprof does not read; it never moves 'head'."""

    def __init__(self, groups, lr):
        super().__init__(groups, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for gi, g in enumerate(self.param_groups):
            for p in g["params"]:
                st = self.state[p]
                st.setdefault("trace", torch.zeros_like(p)).mul_(0.5).add_(p.grad)
                if gi == 0:
                    p.add_(st["trace"].sign(), alpha=-g["lr"])


def test_an_update_nnprof_cannot_read_is_worded_as_conditional():
    model = bn_net()
    opt = Odd([{"params": list(model[0].parameters()) + list(model[1].parameters())},
               {"params": model[3].parameters()}], lr=0.01)
    r = run(model, opt)
    assert r["unchanged"] == [] and sorted(r["unjudged"]) == ["3.bias", "3.weight"]
    f = wiring(r)
    assert f.verdict == "warn"
    assert any("could not be read" in a and "rounding if it is below" in a for a in f.advice)


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.side, self.head = nn.Linear(16, 8), nn.Linear(16, 8), nn.Linear(8, 4)

    def forward(self, x, gate):
        return self.head(self.body(x) + gate * self.side(x))


def test_a_branch_switched_on_after_the_window_is_a_phase_not_a_fault():
    torch.manual_seed(0)
    model = Gated()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    r = run(model, opt, steps=20, gate=lambda i: 0.0 if i < 8 else 1.0)
    assert r["zero_grad"] == []
    later = {x["name"]: x for x in r["later"]}
    assert set(later) == {"side.weight", "side.bias"}
    assert later["side.weight"]["was"] == "zero_grad" and 8 < later["side.weight"]["step"] <= 20
    f = wiring(r)
    assert f.verdict == "pass"
    assert any("side.weight" in a and "A phase" in a for a in f.advice)


def test_a_branch_never_switched_on_stays_a_fault():
    torch.manual_seed(0)
    model = Gated()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    r = run(model, opt, steps=20, gate=lambda i: 0.0)
    assert sorted(r["zero_grad"]) == ["side.bias", "side.weight"] and r["later"] == []
    assert wiring(r).verdict == "fail"


def test_asked_update_reads_each_optimizer_form():
    torch.manual_seed(0)
    p = nn.Parameter(torch.ones(4))
    p.grad = torch.full((4,), 0.5)
    for opt, expect in (
            (torch.optim.SGD([p], lr=0.1), 0.05),                  # lr x g
            (torch.optim.SGD([p], lr=0.1, momentum=0.9), 0.05),    # lr x buf after one step
            (torch.optim.Adam([p], lr=0.1), 0.1),                  # lr x m/sqrt(v) = lr
            (torch.optim.AdamW([p], lr=0.1, weight_decay=0.5), 0.1 + 0.1 * 0.5)):
        with torch.no_grad():
            p.fill_(1.0)
        opt.step()
        with torch.no_grad():
            p.fill_(1.0)  # the size is read from lr, gradient and state, not the move
        u, basis = asked_update(opt, opt.param_groups[0], p)
        assert torch.allclose(u, torch.full((4,), expect), rtol=1e-3), (type(opt), u, basis)


class NudgesTiny(torch.optim.Optimizer):
    """Moves only the smallest element of each parameter, by a step its float64 norms
    cannot register next to the others."""

    def __init__(self, params):
        super().__init__(params, {"lr": 1.0})

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                flat = p.view(-1)
                i = int(flat.abs().argmin())
                flat[i] = torch.nextafter(flat[i], torch.tensor(1.0))


def test_a_change_the_fingerprint_misses_is_caught_by_the_exact_copy():
    from nnprof.instrument.updates import fingerprint, same
    torch.manual_seed(0)
    lin = nn.Linear(64, 64)  # 4,096 weights: 1,024 sampled, one in four
    with torch.no_grad():
        lin.weight.fill_(0.5)
        lin.weight.view(-1)[1] = 1e-30  # not sampled
    fp = fingerprint(lin.weight)
    opt = NudgesTiny(lin.parameters())
    probe = WiringProbe(window=3)
    probe.add_model(lin)
    probe.add_optimizer(opt)
    x, y = torch.randn(8, 64), torch.randint(0, 64, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(lin(x), y).backward()
        probe.before_step(opt)
        opt.step()
        probe.after_step(opt)
    assert same(fp, lin.weight)  # the norms cannot tell 1e-30 from its neighbour
    r = probe.result()
    assert r["unchanged"] == [] and r["below_resolution"] == [] and r["unjudged"] == []


def test_nesterov_update_is_read_exactly():
    p = nn.Parameter(torch.ones(4))
    p.grad = torch.full((4,), 0.5)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    opt.step()
    u, _ = asked_update(opt, opt.param_groups[0], p)
    assert torch.allclose(u, torch.full((4,), 0.1 * (0.5 + 0.9 * 0.5)))


def test_a_layer_unfrozen_after_the_window_is_told_not_judged():
    torch.manual_seed(0)
    model = Gated()
    model.side.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = WiringProbe(window=3)
    probe.add_model(model)
    probe.add_optimizer(opt)
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    for i in range(8):
        if i == 5:
            model.side.requires_grad_(True)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x, 1.0), y).backward()
        probe.before_step(opt)
        opt.step()
        probe.after_step(opt)
    r = probe.result()
    assert sorted(r["unfrozen_later"]) == ["side.bias", "side.weight"]
    assert r["frozen"] == [] and r["no_grad"] == []
    f = wiring(r)
    assert f.verdict == "pass"
    assert any("unfrozen later" in a and "side.weight" in a for a in f.advice)
