"""Wiring probe, loss observer and rung helpers, on real tiny models in-process."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnprof.instrument.restrict import RepeatFirst, restricted_args
from nnprof.instrument.probe import LossObserver, TrainingProbe, WiringProbe
from nnprof.instrument.steps import StepClock


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.dead = nn.Linear(4, 4)          # never used in forward
        self.before_detach = nn.Linear(4, 4)  # its output is detached
        self.zeroed = nn.Linear(4, 4)        # multiplied by zero
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.extra = nn.Linear(4, 4)         # left out of the optimizer

    def forward(self, x):
        h = self.body(x) + self.before_detach(x).detach() + 0 * self.zeroed(x)
        return self.head(h + self.extra(x) + self.frozen(x))


def train(model, opt, steps, probe):
    torch.manual_seed(0)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        probe.before_step(opt)
        opt.step()
        probe.after_step(opt)


def test_planted_wiring_bugs_are_named():
    torch.manual_seed(0)
    model = Planted()
    params = [p for n, p in model.named_parameters() if not n.startswith("extra")]
    opt = torch.optim.SGD(params, lr=0.1, weight_decay=0.01, momentum=0.9)
    probe = WiringProbe(window=3)
    probe.add_model(model)
    probe.add_optimizer(opt)
    train(model, opt, 4, probe)
    r = probe.result()
    assert r["complete"] and r["steps_seen"] == 3
    assert sorted(r["no_grad"]) == ["before_detach.bias", "before_detach.weight",
                                    "dead.bias", "dead.weight"]
    # weight decay and momentum changed them, but their gradient was zero: not learning
    assert sorted(r["zero_grad"]) == ["zeroed.bias", "zeroed.weight"]
    assert sorted(r["not_in_optimizer"]) == ["extra.bias", "extra.weight"]
    assert sorted(r["frozen"]) == ["frozen.bias", "frozen.weight"]
    assert r["unchanged"] == []


def test_learning_rate_zero_leaves_parameters_unchanged():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    probe = WiringProbe(window=2)
    probe.add_model(model)
    probe.add_optimizer(opt)
    train(model, opt, 2, probe)
    assert sorted(probe.result()["unchanged"]) == ["bias", "weight"]


def test_short_run_reports_incomplete_window():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = WiringProbe(window=3)
    probe.add_model(model)
    probe.add_optimizer(opt)
    train(model, opt, 1, probe)
    r = probe.result()
    assert not r["complete"] and r["steps_seen"] == 1 and r["checked"] == 2


def test_observer_counts_confusion_per_eval_pass_and_loss_at_init():
    written = []
    clock = StepClock(lambda rec: None, thread_id=0)
    obs = LossObserver(clock, written.append, lambda t: t.detach())
    logits = torch.tensor([[2.0, 0.1, 0.0], [0.0, 3.0, 0.0], [0.0, 0.2, 1.0], [1.0, 0.0, 0.0]])
    target = torch.tensor([0, 1, 1, 2])
    loss = nn.functional.cross_entropy(logits, target)
    obs("cross_entropy", (logits, target), {}, loss)  # grad enabled: the first train loss
    with torch.no_grad():
        obs("CrossEntropyLoss", (logits, target), {}, loss)
        obs("CrossEntropyLoss", (logits[:2], target[:2]), {}, loss)
    clock.train_steps = 5  # a train step in between: a new pass
    with torch.no_grad():
        obs("BCEWithLogitsLoss", (torch.tensor([1.0, -1.0]), torch.tensor([1.0, 1.0])), {}, loss)
    obs.flush()
    init = obs.loss_at_init()
    assert init["function"] == "cross_entropy" and init["classes"] == 3
    assert abs(init["first_loss"] - float(loss)) < 1e-6
    assert [w["pass"] for w in written] == [0, 1]
    assert written[0]["confusion"] == [[2, 0, 0], [0, 2, 1], [1, 0, 0]]
    assert written[0]["after_train_steps"] == 0
    assert written[1]["task"] == "binary" and written[1]["confusion"] == [[0, 0], [1, 1]]


def test_training_probe_simplifies_a_rung_unless_as_is():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), weight_decay=0.1)
    probe = TrainingProbe(lambda r: None, rung={"examples": 1, "as_is": False})
    probe.on_module(model, False)
    probe.on_optimizer(opt)
    assert model[1].p == 0.0 and opt.param_groups[0]["weight_decay"] == 0.0
    model2 = nn.Sequential(nn.Dropout(0.5))
    TrainingProbe(lambda r: None, rung={"examples": 1, "as_is": True}).on_module(model2, False)
    assert model2[0].p == 0.5
    d = probe.result()["models"][0]
    assert d["dropout"][0]["class"] == "Dropout" and d["parameters"] == 30


def test_restricted_loader_repeats_first_examples_in_order():
    ds = TensorDataset(torch.arange(10.0))
    init = DataLoader.__init__
    args, kwargs, how = restricted_args(init, object(), (ds,),
                                        {"batch_size": 4, "shuffle": True}, 2)
    loader = DataLoader(*args, **kwargs)
    batches = [b[0].tolist() for b in loader]
    assert batches == [[0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 1.0]]
    assert isinstance(loader.dataset, RepeatFirst) and len(loader) == 3
    assert how == {"selection": "first", "classes": None}  # no labels in the dataset


def test_eval_loss_with_sum_reduction_is_per_sample():
    clock = StepClock(lambda rec: None, thread_id=0)
    obs = LossObserver(clock, lambda r: None, lambda t: t)
    clock.loader_next("V")
    clock.loader_got()
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        total = nn.functional.cross_entropy(logits, target, reduction="sum")
        obs("cross_entropy", (logits, target), {"reduction": "sum"}, total, "sum")
    assert float(clock.open.eval_loss_ref) == pytest.approx(float(total) / 4)


def test_precision_is_recorded_at_the_first_top_level_forwards(monkeypatch):
    from nnprof.instrument import model as model_hooks
    from nnprof.instrument.probe import autocast_enabled, precision_state
    assert autocast_enabled("cuda") is False and autocast_enabled("cpu") is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_enabled("cpu") is True
    st = precision_state(nn.Linear(2, 2))
    assert st["param_dtype"] == "float32" and st["param_device"] == "cpu"
    assert st["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    if not torch.cuda.is_available():
        assert st["device_capability"] is None

    probe = TrainingProbe(lambda rec: None)
    clock = StepClock(lambda rec: None)
    patches = model_hooks.install(clock, probe.on_module, None, probe.on_forward)
    try:
        m = nn.Linear(4, 2).double()
        x = torch.randn(3, 4, dtype=torch.float64)
        m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m(x.float().double())
        for _ in range(5):
            m(x)
    finally:
        patches.uninstall()
    p = probe.result()["precision"]
    assert p["calls"] == model_hooks.FORWARD_WATCH
    assert p["param_dtype"] == "float64"
    assert p["autocast"] is True and p["autocast_cpu"] is True and p["autocast_cuda"] is False


def test_precision_capability_read_only_when_cuda_is_initialised(monkeypatch):
    from nnprof.instrument.probe import precision_state
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert precision_state()["device_capability"] == [9, 0]
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert precision_state()["device_capability"] is None


def test_an_eval_pass_metrics_are_written_when_the_next_train_step_ends(tmp_path):
    """A sweep compares trials on each pass's accuracy while they run: the pass's
    confusion matrix must reach metrics.jsonl once training resumes, not only when the
    next evaluation pass starts."""
    import json

    import nnprof
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    metrics = tmp_path / "run" / "metrics.jsonl"

    def train(n):
        for _ in range(n):
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()

    def evaluate():
        with torch.no_grad():
            for _ in range(2):
                nn.functional.cross_entropy(model(x), y)

    with nnprof.Profiler(out=str(tmp_path / "run"), progress=False, monitors=[]):
        train(3)
        evaluate()
        assert not metrics.exists() or metrics.read_text() == ""  # the pass may go on
        train(2)  # the first train step's end closes the pass
        lines = metrics.read_text().splitlines()
        assert len(lines) == 1
        rec = json.loads(lines[0])
        assert rec["after_train_steps"] == 3 and sum(map(sum, rec["confusion"])) == 16
        evaluate()
    lines = metrics.read_text().splitlines()
    assert [json.loads(ln)["after_train_steps"] for ln in lines] == [3, 5]


def test_parameter_names_read_through_a_data_parallel_wrapper():
    from torch import nn

    from nnprof.instrument.probe import _unwrapped
    net = nn.Sequential(nn.Linear(2, 2))
    wrapper = nn.DataParallel(net)   # on CPU: a plain wrapper holding net as .module
    assert _unwrapped([wrapper, net]) == [net]
    assert _unwrapped([wrapper]) == [net]
    other = nn.Linear(3, 3)
    assert _unwrapped([other, net]) == [other, net]
