"""End to end: step boundaries and phase attribution of real training loops.

Most tests run a script from tests/scripts/ through the real CLI in a subprocess
(the Python API and one loss-detection test run in this process); the scripts inject known costs with ``time.sleep``, so a phase
must hold at least its sleep and not much more (``SLACK`` absorbs scheduler noise
on a busy two-core machine), and a phase that holds no sleep must stay small.
"""
import re
import json
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nnprof
from conftest import read_summary, run_cli

PHASES = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")
SLACK = 0.015
# With two intra-op threads on a loaded two-core machine, a tiny op can wait ~10 ms
# for its second thread; one thread keeps the sleeps the only sizeable costs.
ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    """The in-process counterpart of ``ENV``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def profile(tmp_path, script, *script_args, options=(), name="run", module=False):
    """Run ``nnprof profile`` (``python -m nnprof profile`` with ``module``) on a test
    script; (process, run dir, steps frame)."""
    out = tmp_path / name
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", *options,
                 script, *script_args], env=ENV, module=module)
    steps = nnprof.load_run(str(out)).steps if (out / "meta.json").exists() else None
    return r, out, steps


def near(value, expected, slack=SLACK):
    """At least the injected sleep (minus timer rounding), at most ``slack`` more."""
    return expected - 0.001 <= value <= expected + slack


def printed_losses(stdout):
    """The ``loss <i> <repr>`` lines a script prints, in order."""
    return [float(m.group(1)) for m in re.finditer(r"^loss \d+ (\S+)$", stdout, re.M)]


def assert_phases_add_up(steps):
    total = steps[[f"{p}_s" for p in PHASES]].sum(axis=1)
    assert ((total - steps["wall_s"]).abs() < 1e-5 * len(PHASES)).all()
    assert (steps[[f"{p}_s" for p in PHASES]] >= 0).all().all()


# -- 1. no DataLoader ----------------------------------------------------------
def test_manual_batches_make_one_train_step_per_optimizer_step(tmp_path, scripts):
    """Manual batching from tensors, two epochs each followed by a torch.no_grad()
    validation pass of three forwards without a loader.

    Semantics asserted: each ``optimizer.step()`` ends a train step; each
    gradient-free forward is one eval step (validation does not add train steps or
    inflate them). Without a loader a step can only start at a hook event, so the
    time before the very first forward belongs to no step, and the time between the
    last validation forward and the next training forward (here the ``--prep`` sleep)
    is the ``other`` of that last eval step; every other training step has its
    pre-forward work as ``prep``.
    """
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "4",
                            "--epochs", "2", "--val-batches", "3", "--prep", "0.01",
                            "--forward", "0.02", "--backward", "0.015",
                            "--optimizer", "0.012")
    assert r.returncode == 0, r.stderr
    assert "done 8" in r.stdout
    assert list(steps["kind"]) == (["train"] * 4 + ["eval"] * 3) * 2
    train, evals = steps[steps["kind"] == "train"], steps[steps["kind"] == "eval"]
    assert list(train["train_index"]) == list(range(8))
    assert (train[["n_forward", "n_backward", "n_optimizer"]] == 1).all().all()
    assert (evals["n_forward"] == 1).all()
    assert (evals[["n_backward", "n_optimizer"]] == 0).all().all()
    assert_phases_add_up(steps)

    for _, row in steps.iterrows():
        assert near(row["forward_s"], 0.02), row
        assert row["data_s"] == 0
        assert row["loss_s"] < 0.005, row
    for _, row in train.iterrows():
        assert near(row["backward_s"], 0.015), row
        assert near(row["optimizer_s"], 0.012), row
    after_train = [i for i in train["index"] if i > 0 and steps.loc[i - 1, "kind"] == "train"]
    assert len(after_train) == 6
    for i in after_train:
        assert near(steps.loc[i, "prep_s"], 0.01), steps.loc[i]
        assert steps.loc[i, "other_s"] < 0.005, steps.loc[i]
    for _, row in evals.iterrows():
        assert row["backward_s"] == 0 and row["optimizer_s"] < 0.002, row
    # the eval step that ends an epoch's validation holds the next epoch's first prep
    assert near(steps.loc[6, "other_s"], 0.01)

    s = read_summary(out)
    assert s["status"] == "completed" and s["exit_code"] == 0
    assert s["steps"] == {"train": 8, "eval": 6, "total": 14}
    assert s["phases_over"] == "train"
    assert near(s["phases"]["forward"]["mean_s"], 0.02)
    assert near(s["phases"]["backward"]["mean_s"], 0.015)
    assert near(s["phases"]["optimizer"]["mean_s"], 0.012)


# -- 2. gradient accumulation -----------------------------------------------------
def test_gradient_accumulation_without_loader_is_one_step_per_optimizer_step(tmp_path,
                                                                              scripts):
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "3",
                            "--accum", "4", "--backward", "0.005", "--print-loss")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 3
    assert list(steps["n_backward"]) == [4, 4, 4]
    assert list(steps["n_forward"]) == [4, 4, 4]
    assert list(steps["n_optimizer"]) == [1, 1, 1]
    for _, row in steps.iterrows():
        assert near(row["backward_s"], 4 * 0.005, slack=2 * SLACK), row
    # the step's loss is the last micro-batch's, the last one backward() was called on
    losses = printed_losses(r.stdout)
    assert len(losses) == 12
    assert list(steps["loss"]) == pytest.approx(losses[3::4], rel=1e-6)
    assert read_summary(out)["steps"]["train"] == 3


def test_gradient_accumulation_with_loader_makes_each_micro_batch_a_train_step(tmp_path,
                                                                                scripts):
    """With a DataLoader a step is one batch, so every micro-batch is a train step and
    only every 4th (the one that ends with ``optimizer.step()``) has n_optimizer == 1."""
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "3",
                            "--accum", "4", "--optimizer", "0.01", "--loader",
                            "--print-loss", module=True)
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 12
    assert list(steps["train_index"]) == list(range(12))
    assert (steps["n_backward"] == 1).all() and (steps["n_forward"] == 1).all()
    assert list(steps["n_optimizer"]) == [0, 0, 0, 1] * 3
    assert (steps["loader"] == "L0").all()
    stepped = steps["n_optimizer"] == 1
    assert all(near(v, 0.01) for v in steps.loc[stepped, "optimizer_s"])
    assert (steps.loc[~stepped, "optimizer_s"] < 0.003).all()
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    assert read_summary(out)["steps"] == {"train": 12, "eval": 0, "total": 12}


# -- 3. several optimizers ----------------------------------------------------------
def test_gan_with_two_optimizers_makes_one_step_per_iteration(tmp_path, scripts):
    """D and G each step once per iteration: one train step per iteration, holding
    both optimizer steps, both backward passes and all five forwards (G, D(fake),
    D(real) for the critic; G, D for the generator). The step's loss is G's, the
    last one backward() ran on."""
    r, out, steps = profile(tmp_path, scripts / "gan_loop.py", "--iters", "4",
                            "--forward", "0.005", "--optimizer", "0.01", "--print-loss")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 4
    assert list(steps["n_optimizer"]) == [2] * 4
    assert list(steps["n_backward"]) == [2] * 4
    assert list(steps["n_forward"]) == [5] * 4
    assert_phases_add_up(steps)
    for _, row in steps.iterrows():
        assert near(row["forward_s"], 5 * 0.005, slack=2 * SLACK), row
        assert near(row["optimizer_s"], 2 * 0.01, slack=2 * SLACK), row
    g_losses = [float(v) for v in re.findall(r"^g_loss \d+ (\S+)$", r.stdout, re.M)]
    assert list(steps["loss"]) == pytest.approx(g_losses, rel=1e-6)
    s = read_summary(out)
    assert s["steps"] == {"train": 4, "eval": 0, "total": 4}
    assert sorted(o["class"] for o in s["optimizers"]) == ["SleepyAdam", "SleepyAdam"]


def test_gan_with_n_critic_steps(tmp_path, scripts):
    """WGAN style: the critic steps 3 times per generator step.

    Semantics asserted (the free-step rule: a step ends at each optimizer step, and
    a different optimizer stepping right after is merged into it): each critic step
    is a train step, and the generator's step joins the critic step just before it.
    So an iteration gives 3 steps with 1, 1 and 2 optimizer steps; no time or
    optimizer step is lost or counted twice.
    """
    iters, k = 3, 3
    r, out, steps = profile(tmp_path, scripts / "gan_loop.py", "--iters", iters,
                            "--n-critic", k, "--forward", "0.005", "--optimizer", "0.01")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * (iters * k)
    assert list(steps["n_optimizer"]) == [1, 1, 2] * iters
    assert list(steps["n_backward"]) == [1, 1, 2] * iters
    assert list(steps["n_forward"]) == [3, 3, 5] * iters
    assert steps["n_optimizer"].sum() == iters * (k + 1)
    assert_phases_add_up(steps)
    for _, row in steps.iterrows():
        assert near(row["optimizer_s"], row["n_optimizer"] * 0.01, slack=2 * SLACK), row
    # consecutive steps tile the loop: no gaps, no overlaps
    ends = steps["start_s"] + steps["wall_s"]
    assert (abs(steps["start_s"].iloc[1:].values - ends.iloc[:-1].values) < 2e-6).all()
    assert read_summary(out)["steps"]["train"] == iters * k


# -- 4. LBFGS ------------------------------------------------------------------------
def test_lbfgs_closure_work_is_forward_loss_backward_not_optimizer(tmp_path, scripts):
    r, out, steps = profile(tmp_path, scripts / "lbfgs_loop.py", "--steps", "3",
                            "--max-iter", "3", "--forward", "0.02", "--loss", "0.01",
                            "--backward", "0.015", "--print-loss")
    assert r.returncode == 0, r.stderr
    calls = [int(c) for c in re.search(r"^calls (.*)$", r.stdout, re.M).group(1).split()]
    assert len(calls) == 3 and min(calls) >= 2
    assert list(steps["kind"]) == ["train"] * 3
    assert list(steps["n_optimizer"]) == [1, 1, 1]
    assert list(steps["n_forward"]) == calls
    assert list(steps["n_backward"]) == calls
    assert_phases_add_up(steps)
    for (_, row), n in zip(steps.iterrows(), calls):
        assert near(row["forward_s"], n * 0.02, slack=2 * SLACK), row
        assert near(row["loss_s"], n * 0.01, slack=2 * SLACK), row
        assert near(row["backward_s"], n * 0.015, slack=2 * SLACK), row
    # what is left to the optimizer is LBFGS's own arithmetic (and, in the first step,
    # one-off start-up costs): less than a single closure call's sleeps
    assert (steps["optimizer_s"] < 0.015).all()
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)


# -- 5. losses --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["functional-ce", "functional-mse", "module-ce",
                                  "in-forward", "in-forward-functional"])
def test_builtin_losses_are_the_loss_phase_and_their_values_are_captured(tmp_path, scripts,
                                                                          kind):
    """Built-in losses (functional or modules, called by the loop or inside the model's
    forward) are the ``loss`` phase; the model's own work stays ``forward``."""
    r, out, steps = profile(tmp_path, scripts / "loss_kinds.py", "--kind", kind,
                            "--steps", "4", "--forward", "0.01", "--print-loss")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 4
    assert (steps[["n_forward", "n_backward", "n_optimizer"]] == 1).all().all()
    assert (steps["loss_s"] > 0).all()
    for _, row in steps.iterrows():
        assert near(row["forward_s"], 0.01), row
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    s = read_summary(out)
    assert s["loss"]["count"] == 4
    assert s["loss"]["last"] == pytest.approx(printed_losses(r.stdout)[-1], rel=1e-6)


@pytest.mark.parametrize("kind", ["custom", "custom-unnamed", "in-forward-custom"])
def test_custom_loss_time_lands_in_loss(tmp_path, scripts, kind):
    """A parameter-free nn.Module loss that sleeps 20 ms per call: named like a loss,
    named ``Objective`` (recognised by its scalar output at the first call), and one
    the model calls inside its own forward. Its sleep is ``loss``, not ``forward``."""
    r, out, steps = profile(tmp_path, scripts / "loss_kinds.py", "--kind", kind,
                            "--steps", "4", "--forward", "0.01", "--loss", "0.02",
                            "--print-loss")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 4
    assert (steps[["n_forward", "n_backward", "n_optimizer"]] == 1).all().all()
    assert_phases_add_up(steps)
    for _, row in steps.iterrows():
        assert near(row["forward_s"], 0.01), row
        assert near(row["loss_s"], 0.02), row
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    s = read_summary(out)
    probe = json.loads((out / "probe.json").read_text())
    assert [m["class"] for m in s["models"]] == ["Classifier"]
    losses = [d["class"] for d in probe["losses"]]
    if kind != "in-forward-custom":  # a loss inside forward is not a top-level module
        assert losses == [{"custom": "SleepyCrossEntropyLoss",
                           "custom-unnamed": "Objective"}[kind]]


class _FocalLoss(nn.Module):
    def forward(self, logits, y):
        time.sleep(0.02)
        return F.cross_entropy(logits, y)


class _LossPredictor(nn.Module):
    """Named like a loss but has parameters: part of the model."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, logits):
        time.sleep(0.01)
        return self.lin(logits).mean()


class _DetectorWithLosses(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.predictor = _LossPredictor()
        self.criterion = _FocalLoss()

    def forward(self, x, y):
        logits = self.head(x)
        return self.criterion(logits, y) + self.predictor(logits)


def test_loss_module_inside_forward_is_told_apart_by_parameters(tmp_path, one_thread):
    """In process: inside a forward, a parameter-free module named like a loss is
    ``loss``; one with parameters stays ``forward`` whatever its name."""
    torch.manual_seed(0)
    model = _DetectorWithLosses()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
    with nnprof.profile(out=str(tmp_path / "run")):
        for _ in range(3):
            loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    steps = nnprof.load_run(str(tmp_path / "run")).steps
    assert list(steps["kind"]) == ["train"] * 3
    for _, row in steps.iterrows():
        assert near(row["loss_s"], 0.02), row
        assert near(row["forward_s"], 0.01), row


# -- 6. budget ---------------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["forward", "backward"])
def test_budget_flags_exactly_the_slow_steps(tmp_path, scripts, phase):
    """Budget 50 ms; every 3rd step (train indices 2, 5, 8) sleeps 80 ms in ``phase``."""
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "9",
                            "--slow-every", "3", "--slow", "0.08", "--slow-phase", phase,
                            "--val-batches", "2", options=["--budget", "0.05"])
    assert r.returncode == 0, r.stderr
    s = read_summary(out)
    assert s["status"] == "completed"
    assert s["over_budget"]["steps"] == [2, 5, 8]
    assert s["over_budget"]["count"] == 3 and s["over_budget"]["eval_count"] == 0
    assert s["over_budget"]["share"] == pytest.approx(3 / 9)
    train = steps[steps["kind"] == "train"]
    assert list(train.loc[train["over_budget"] == 1, "train_index"]) == [2, 5, 8]
    assert (steps.loc[steps["kind"] == "eval", "over_budget"] == 0).all()
    b = s["budget"]
    assert b["verdict"] == "exceeds" and b["severity"] == "warn"
    assert b["evidence"]["dominant_phase_counts"] == {phase: 3}
    assert [(d["train_index"], d["phase"]) for d in b["evidence"]["over_budget_steps"]] == [
        (2, phase), (5, phase), (8, phase)]
    assert f"'{phase}'" in b["advice"][0]


def test_fail_on_budget_exits_3_after_writing_the_summary(tmp_path, scripts):
    args = ("--steps", "6", "--slow-every", "3", "--slow", "0.08")
    r, out, _ = profile(tmp_path, scripts / "manual_loop.py", *args,
                        options=["--budget", "0.05", "--fail-on", "budget"])
    assert r.returncode == 3, r.stderr
    assert "failing on budget" in r.stderr
    s = read_summary(out)
    assert s["status"] == "completed"
    assert s["exit_code"] == 0  # the script's own exit code; 3 is the CLI's verdict
    assert s["over_budget"]["steps"] == [2, 5]

    r, out, _ = profile(tmp_path, scripts / "manual_loop.py", *args,
                        options=["--budget", "0.05"], name="no-fail-on")
    assert r.returncode == 0, r.stderr
    assert read_summary(out)["over_budget"]["steps"] == [2, 5]


def test_fail_on_budget_exits_0_when_every_step_fits(tmp_path, scripts):
    r, out, _ = profile(tmp_path, scripts / "manual_loop.py", "--steps", "3",
                        options=["--budget", "0.05", "--fail-on", "budget"], name="fits")
    assert r.returncode == 0, r.stderr
    assert read_summary(out)["over_budget"]["count"] == 0


# -- 7. --max-steps / --max-time -----------------------------------------------------------
@pytest.mark.parametrize("loop", [(), ("--loader",), ("--accum", "2"),
                                  ("--loader", "--accum", "2")],
                         ids=["manual", "loader", "manual-accum", "loader-accum"])
def test_max_steps_stops_after_exactly_n_train_steps(tmp_path, scripts, loop):
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "20",
                            "--val-batches", "2", *loop, options=["--max-steps", "3"])
    assert r.returncode == 0, r.stderr
    assert "done" not in r.stdout
    s = read_summary(out)
    assert s["status"] == "stopped" and s["exit_code"] == 0
    assert s["steps"] == {"train": 3, "eval": 0, "total": 3}
    assert list(steps["kind"]) == ["train"] * 3
    if "--accum" in loop and "--loader" not in loop:
        assert list(steps["n_backward"]) == [2, 2, 2]


def test_max_steps_with_two_optimizers_counts_merged_steps(tmp_path, scripts):
    """A GAN's merged D+G step counts once towards --max-steps: 3 train steps, the first
    two each holding both optimizer steps.

    Left open (not asserted): the stop comes at the first forward after the 3rd step
    was closed by D's optimizer step, i.e. at G's forward, so the last step holds D's
    half only (n_optimizer 1). Whether G will join a step is only known at the next
    optimizer step, so exact counts and whole last steps cannot both be had in general
    (with n_critic > 1 a D-only step is often a whole step).
    """
    r, out, steps = profile(tmp_path, scripts / "gan_loop.py", "--iters", "10",
                            options=["--max-steps", "3"])
    assert r.returncode == 0, r.stderr
    s = read_summary(out)
    assert s["status"] == "stopped"
    assert s["steps"]["train"] == 3
    assert list(steps["n_optimizer"].iloc[:2]) == [2, 2]


def test_max_time_stops_the_run(tmp_path, scripts):
    """--max-time counts from the start of the run (script set-up included) and stops
    at the first step boundary after it: every recorded step started before the
    deadline, and the last one ended about when it passed (within one step)."""
    max_time = 3.0
    r, out, steps = profile(tmp_path, scripts / "manual_loop.py", "--steps", "1000",
                            "--forward", "0.01", options=["--max-time", max_time])
    assert r.returncode == 0, r.stderr
    assert "done" not in r.stdout
    s = read_summary(out)
    assert s["status"] == "stopped" and s["exit_code"] == 0
    assert 1 <= s["steps"]["train"] < 1000
    assert (steps["start_s"] < max_time).all()
    last_end = steps["start_s"].iloc[-1] + steps["wall_s"].iloc[-1]
    assert max_time - SLACK <= last_end <= max_time + 0.01 + SLACK


# -- 8. the Python API, in this process ------------------------------------------------------
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        return self.lin(x).squeeze(-1)


def _train(n_steps, val=0, fail_at=None):
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, 8), torch.randn(4)
    for i in range(n_steps):
        if i == fail_at:
            raise RuntimeError("boom")
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        time.sleep(0.005)
    with torch.no_grad():
        for _ in range(val):
            F.mse_loss(model(x), y)  # a validation batch: an eval step


def test_python_api_profiles_a_block(tmp_path):
    out = tmp_path / "api"
    with nnprof.profile(out=str(out), budget=1.0) as run:
        _train(5, val=2)
    s = run.summary()
    stored = read_summary(out)
    assert set(s) == set(stored)
    assert s["status"] == stored["status"] == "completed"
    assert s["exit_code"] == 0
    assert s["steps"] == stored["steps"] == {"train": 5, "eval": 2, "total": 7}
    assert s["budget_s"] == 1.0
    steps = nnprof.load_run(str(out)).steps
    assert len(steps) == 7
    assert list(steps["kind"]) == ["train"] * 5 + ["eval"] * 2
    assert list(steps["index"]) == list(range(7))
    assert len(run.steps) == 7


def test_python_api_records_a_crash_and_reraises(tmp_path):
    out = tmp_path / "api-crash"
    with pytest.raises(RuntimeError, match="boom"):
        with nnprof.profile(out=str(out), budget=1.0) as run:
            _train(5, fail_at=3)
    s = read_summary(out)
    assert s["status"] == "crashed" and s["exit_code"] == 1
    assert s["steps"]["train"] == 3
    assert run.summary()["status"] == "crashed"
    assert len(nnprof.load_run(str(out)).steps) == 3


def test_a_new_optimizer_per_stage_starts_new_steps(tmp_path, scripts):
    """A new optimizer over the same parameters replaced the old one: its first step is
    not merged into the last step of the old one (as a GAN's D and G steps are)."""
    r, out, steps = profile(tmp_path, scripts / "stages.py", "--stages", "3", "--steps", "5")
    assert r.returncode == 0, r.stderr
    train = steps[steps.kind == "train"]
    assert len(train) == 15
    assert (train["n_optimizer"] == 1).all()
