"""The step's loss is the loss the script computed, not a scaled copy of it.

``accelerator.backward(loss)``, the HF ``Trainer`` under gradient accumulation and
a hand-written ``(loss / k).backward()`` all call ``backward()`` on a scaled loss;
the train-loss curve, the loss at init and the overfit rungs must show the loss
function's output. A sum of losses, a loss scaled by a factor that needs a gradient
or a loss computed by hand keeps the tensor ``backward()`` ran on.
"""
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nnprof
from conftest import read_summary, run_cli

SCRIPT_ENV = {"OMP_NUM_THREADS": "1"}


def printed(stdout):
    return [float(m.group(1)) for m in re.finditer(r"^loss \d+ (\S+)$", stdout, re.M)]


def train_losses(run_dir):
    steps = nnprof.load_run(str(run_dir)).steps
    train = steps[steps["kind"] == "train"]
    return [float(v) for v in train["loss"]]


# -- in process --------------------------------------------------------------------
SCALE = torch.tensor(1024.0)  # a GradScaler-like constant factor
W = nn.Parameter(torch.tensor(2.0))  # a factor that needs a gradient: not a constant
SCALED = {  # backward on the loss scaled by a constant: the loss itself is recorded
    "divided": lambda loss, out, y: loss / 2,
    "multiplied": lambda loss, out, y: loss * 0.25,
    "scaler-like": lambda loss, out, y: (loss / 4) * SCALE,
    "twice-divided": lambda loss, out, y: loss / 2 / 3,
}
KEPT = {  # anything else: the backward tensor is recorded
    "sum": lambda loss, out, y: loss + 0.5 * F.mse_loss(out, F.one_hot(y, 3).float()),
    "weighted": lambda loss, out, y: loss * W,
    "by-hand": lambda loss, out, y: -out.log_softmax(1).gather(1, y[:, None]).mean() / 2,
}


def _loop(tmp_path, variants):
    """One train step per ``backward_of(loss, out, y)`` of ``variants`` (the tensor
    to backward). Returns (recorded train losses, the loss function's outputs, the
    backward values), one per variant, in order."""
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    computed, backed = [], []
    with nnprof.profile(out=str(tmp_path / "run"), monitors=[]):
        for backward_of in variants:
            x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            out = model(x)
            loss = F.cross_entropy(out, y)
            t = backward_of(loss, out, y)
            t.backward()
            opt.step()
            opt.zero_grad()
            computed.append(loss.item())
            backed.append(t.item())
    return train_losses(tmp_path / "run"), computed, backed


def test_scaled_loss_records_the_loss_function_output(tmp_path):
    names = list(SCALED) + list(KEPT)
    recorded, computed, backed = _loop(tmp_path, list(SCALED.values()) + list(KEPT.values()))
    assert len(recorded) == len(names)
    for name, rec, comp, back in zip(names, recorded, computed, backed):
        assert back != pytest.approx(comp, rel=1e-3), name
        expected = comp if name in SCALED else back
        assert rec == pytest.approx(expected, rel=1e-6), name


def test_a_loss_divided_in_place_records_its_value_as_computed(tmp_path):
    """``loss /= k`` in place before ``backward()`` (timm's accumulation) and a change
    after it: the row holds the loss function's output as it was returned (on the CPU
    its value is kept at the call, not a copy of the tensor)."""
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    computed = []
    with nnprof.profile(out=str(tmp_path / "run"), monitors=[]):
        for _ in range(4):
            x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            loss = F.cross_entropy(model(x), y)
            computed.append(loss.item())
            loss /= 4
            loss.backward()
            opt.step()
            opt.zero_grad()
            loss.data.mul_(100)  # after the step: not what was computed either
    assert train_losses(tmp_path / "run") == pytest.approx(computed, rel=1e-6)


def test_grad_scaler_and_accumulation(tmp_path):
    """``GradScaler.scale(loss).backward()`` (the loss, not the loss x 65536), then a
    hand-written accumulation over 2 micro-batches; the loss at init is unscaled."""
    scaler = torch.amp.GradScaler("cpu")
    variants = [lambda loss, out, y: loss / 2] * 2 + [lambda loss, out, y: scaler.scale(loss)]
    recorded, computed, backed = _loop(tmp_path, variants)
    assert recorded == pytest.approx(computed, rel=1e-6)
    assert backed[2] > 1000 * computed[2]
    import json
    probe = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert probe["loss_at_init"]["first_loss"] == pytest.approx(computed[0], rel=1e-6)


# -- end to end ----------------------------------------------------------------------
def profile(tmp_path, scripts, mode):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet",
                 scripts / "scaled_loss.py", "--mode", mode, "--out", tmp_path / "hf"],
                env=SCRIPT_ENV)
    assert r.returncode == 0, r.stderr
    return r, out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["div", "sum", "accelerate"])
def test_scaled_loss_end_to_end(tmp_path, scripts, mode):
    if mode == "accelerate":
        pytest.importorskip("accelerate")
    r, out = profile(tmp_path, scripts, mode)
    losses = printed(r.stdout)
    assert len(losses) == 6
    assert train_losses(out) == pytest.approx(losses, rel=1e-6)
    assert read_summary(out)["steps"]["train"] == 6


def test_summed_loss_divided_by_a_count(tmp_path):
    """``cross_entropy(reduction="sum") / tokens_of_the_window`` (Hugging Face's
    ``num_items_in_batch``): the mean over the micro-batch's own counted targets."""
    torch.manual_seed(0)
    model = nn.Linear(8, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    means = []
    with nnprof.profile(out=str(tmp_path / "run"), monitors=[]):
        for i in range(4):
            x, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
            y[: i % 3] = -100  # ignored targets
            total = F.cross_entropy(model(x), y, reduction="sum")
            (total / torch.tensor(20)).backward()  # the tokens of a 2-batch window
            opt.step()
            opt.zero_grad()
            means.append((total / (y != -100).sum()).item())
    assert train_losses(tmp_path / "run") == pytest.approx(means, rel=1e-6)
    import json
    init = json.loads((tmp_path / "run" / "probe.json").read_text())["loss_at_init"]
    assert init["first_loss"] == pytest.approx(means[0], rel=1e-6) and init["classes"] == 5


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hf", "hf-lm"])
def test_hf_trainer_gradient_accumulation_end_to_end(tmp_path, scripts, mode):
    """hf: the Trainer divides the model's loss by 2 before ``accelerator.backward``;
    hf-lm: a language model sums the token losses and divides by the tokens of the
    whole accumulation window. Each train step's loss is the micro-batch's own mean
    (a step holds the last backward's loss), and so is the loss at init."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    r, out = profile(tmp_path, scripts, mode)
    losses = printed(r.stdout)
    assert len(losses) == 6
    recorded = [v for v in train_losses(out) if v == v]
    assert recorded
    at = 0
    for v in recorded:  # in order, each one of the printed losses
        while at < len(losses) and v != pytest.approx(losses[at], rel=1e-5):
            at += 1
        assert at < len(losses), (recorded, losses)
    probe = (out / "probe.json").read_text()
    import json
    init = json.loads(probe)["loss_at_init"]
    assert init["function"] == "cross_entropy"
    assert init["classes"] == (3 if mode == "hf" else 50)
    assert init["first_loss"] == pytest.approx(losses[0], rel=1e-5)
