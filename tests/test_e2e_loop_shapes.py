"""End to end: the shapes of training loops found in public code, each written from its
shape (not copied), run through the real CLI and checked against what the script
itself prints: its number of updates, its losses, its evaluation batches.

- one batch taken from a loader, then many updates on it, layer by layer;
- several updates per batch of a loader;
- a VAE that draws a sample under ``no_grad`` after each epoch;
- a loss divided in place for gradient accumulation (``loss /= k``);
- a policy-gradient episode: many small forwards, one backward;
- a GAN over a loader (D and G on each batch);
- ``nnprof check`` on a GAN, and on a script whose overfit rungs cannot run.
"""
import json
import re

import pytest

from conftest import SCRIPTS, read_summary, run_cli
from test_e2e_steps import printed_losses, profile

slow = pytest.mark.slow


def printed(stdout, word):
    """The ``<word> <i> <value>`` lines a script prints, values in order."""
    return [float(m.group(1)) for m in re.finditer(rf"^{word} \d+ (\S+)$", stdout, re.M)]


def test_one_batch_then_many_updates_makes_one_step_per_update(tmp_path):
    """``x, y = next(iter(loader))``, then two layers trained in turn (6 updates each,
    a new optimizer per layer): 12 train steps, the loader's one batch in the first;
    each step's loss is the one the script printed for that update."""
    r, out, steps = profile(tmp_path, SCRIPTS / "one_batch_loop.py", "--layers", "2",
                            "--steps", "6")
    assert r.returncode == 0, r.stderr
    assert "done 12" in r.stdout
    assert list(steps["kind"]) == ["train"] * 12
    assert (steps[["n_backward", "n_optimizer"]] == 1).all().all()
    assert list(steps["n_forward"]) == [1] * 6 + [2] * 6  # layer 1 feeds layer 2
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    assert steps.loc[0, "loader"] == "L0" and steps["loader"].iloc[1:].isna().all()
    assert steps.loc[0, "data_s"] > 0 and (steps["data_s"].iloc[1:] == 0).all()
    s = read_summary(out)
    assert s["steps"] == {"train": 12, "eval": 0, "total": 12}
    assert s["loss"]["first"] == pytest.approx(printed_losses(r.stdout)[0], rel=1e-6)


def test_several_updates_per_batch_are_steps_of_their_own(tmp_path):
    """3 batches x 2 epochs, 3 updates on each batch with one optimizer: 18 steps; the
    first of each batch's holds its wait for the batch, the last what follows its
    update until the loop asks again, so that the steps cover the loop."""
    r, out, steps = profile(tmp_path, SCRIPTS / "one_batch_loop.py",
                            "--updates-per-batch", "3", "--epochs", "2", "--batches", "3")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 18
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    assert list(steps["loader"].notna()) == [True, False, False] * 6
    assert (steps["n_optimizer"] == 1).all()
    # consecutive steps of one pass touch: each starts where the previous ended
    for a, b in zip(steps.index[:8], steps.index[1:9]):
        gap = steps.loc[b, "start_s"] - (steps.loc[a, "start_s"] + steps.loc[a, "wall_s"])
        assert abs(gap) < 5e-6, (a, gap)  # microseconds, rounded apart


def test_a_sample_under_no_grad_is_not_an_eval_step(tmp_path):
    """2 epochs of 4 train and 2 test batches; after each test pass
    ``model.decode(torch.randn(8, 4))`` under no_grad: 8 train and 4 eval steps."""
    r, out, steps = profile(tmp_path, SCRIPTS / "vae_sample.py", "--epochs", "2",
                            "--batches", "4", "--test-batches", "2")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == (["train"] * 4 + ["eval"] * 2) * 2
    assert (steps["loader"] == ["L0"] * 4 + ["L1"] * 2 + ["L0"] * 4 + ["L1"] * 2).all()
    assert list(steps[steps["kind"] == "train"]["loss"]) == pytest.approx(
        printed_losses(r.stdout), rel=1e-6)
    # the test loss is summed as the train loss is: kept a sum, not divided per sample
    assert list(steps[steps["kind"] == "eval"]["loss"]) == pytest.approx(
        printed(r.stdout, "bce"), rel=1e-6)
    assert read_summary(out)["steps"] == {"train": 8, "eval": 4, "total": 12}


@pytest.mark.parametrize("loader", [False, True])
def test_a_loss_divided_in_place_is_recorded_as_the_loss_function_returned_it(
        tmp_path, loader):
    """``loss /= accum; loss.backward()`` (timm's accumulation): the recorded loss is
    the loss function's output, not the divided one."""
    r, out, steps = profile(tmp_path, SCRIPTS / "manual_loop.py", "--steps", "3",
                            "--accum", "2", "--inplace", "--print-loss",
                            *(["--loader"] if loader else []))
    assert r.returncode == 0, r.stderr
    losses = printed_losses(r.stdout)
    assert len(losses) == 6
    if loader:  # a step per micro-batch
        assert list(steps["loss"]) == pytest.approx(losses, rel=1e-6)
    else:       # a step per optimizer step: its last micro-batch's loss
        assert list(steps["loss"]) == pytest.approx(losses[1::2], rel=1e-6)
    assert read_summary(out)["loss"]["first"] == pytest.approx(
        losses[0] if loader else losses[1], rel=1e-6)


def test_one_backward_over_an_episode_of_forwards(tmp_path):
    """8 episodes of 20-40 policy forwards, one backward each, an environment that
    sleeps 2 ms per move: one train step per episode holding all its forwards; the
    advice speaks of the work between the forwards, not of logging or checkpointing."""
    r, out, steps = profile(tmp_path, SCRIPTS / "episodes.py", "--episodes", "8",
                            "--env-cost", "0.002")
    assert r.returncode == 0, r.stderr
    forwards = printed(r.stdout, "forwards")
    assert list(steps["kind"]) == ["train"] * 8
    assert list(steps["n_forward"]) == forwards
    assert (steps[["n_backward", "n_optimizer"]] == 1).all().all()
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    bn = read_summary(out)["bottleneck"]
    assert bn["verdict"] == "host-overhead-bound", bn
    text = " ".join(bn["advice"])
    n = int(re.search(r"outside the model's (\d+) forward passes", text).group(1))
    steady = forwards[-len(forwards) + 1:]  # at most the first is left out as warm-up
    assert min(steady) <= n <= max(steady), (n, forwards)
    assert "checkpointing" not in text and "logging" not in text


def test_a_gan_over_a_loader_is_one_step_per_batch(tmp_path):
    """D then G on each batch, 12 batches: 12 train steps, each holding both updates;
    its loss is G's, the last one backward() ran on."""
    r, out, steps = profile(tmp_path, SCRIPTS / "gan_loop.py", "--loader", "--iters", "12",
                            "--print-loss")
    assert r.returncode == 0, r.stderr
    train = steps[steps["kind"] == "train"]
    assert len(train) == 12
    assert (train[["n_backward", "n_optimizer"]] == 2).all().all()
    assert list(train["loss"]) == pytest.approx(printed(r.stdout, "g_loss"), rel=1e-6)
    assert (train["loader"] == "L0").all()


# -- nnprof check ---------------------------------------------------------------------

def check(out, *args):
    r = run_cli(["check", "--out", out, "--probe-steps", "10", "--max-steps", "30", *args])
    data = json.loads((out / "check.json").read_text()) if (out / "check.json").exists() \
        else None
    return r, data


@slow
@pytest.mark.parametrize("loader", [False, True])
def test_check_on_a_gan_skips_what_a_falling_loss_cannot_judge(tmp_path, loader):
    """Two models trained against each other: no overfit verdict and no learning-rate
    advice from a loss that is not meant to fall, and no rung run for nothing; the
    probe's rungs are still judged. With nothing else wrong (dcgan's shape: a loader,
    binary cross-entropy) the check is inconclusive (exit 4) and says what to judge
    instead; the WGAN-style critic (``mean(D(fake)) - mean(D(real))``) gives its bias
    the gradient 1 - 1 = 0, a true wiring finding: failed (exit 3)."""
    r, data = check(tmp_path / "chk", str(SCRIPTS / "gan_loop.py"), "--iters", "40",
                    *(["--loader"] if loader else []))
    assert data is not None, r.stderr
    st = {x["name"]: x for x in data["rungs"]}
    for name in ("overfit-1", "overfit-10", "generalize"):
        assert st[name]["status"] == "skip", st[name]
        assert "trained against each other" in st[name]["evidence"]["reason"]
    assert set(data["runs"]) == {"probe"}
    assert st["simplicity"]["status"] == "pass"
    assert "learning rate" not in r.stdout
    if loader:
        assert st["wiring"]["status"] == "pass", st["wiring"]
        assert data["status"] == "inconclusive" and r.returncode == 4, r.stdout
        assert "trained against each other" in data["reason"]
        assert "samples from the generator" in data["advice"][0]
    else:
        assert data["wiring"]["zero_grad"] == ["Net:lin.bias"]
        assert data["status"] == "failed" and r.returncode == 3


@slow
def test_check_whose_overfit_rungs_cannot_run_is_inconclusive(tmp_path):
    """A policy-gradient loss built by hand and no DataLoader: nothing to cut to N
    examples. The check neither passes nor fails: ``inconclusive``, exit 4, the
    reason and what to change, on stdout and in check.json."""
    r, data = check(tmp_path / "chk", str(SCRIPTS / "episodes.py"), "--episodes", "40")
    assert r.returncode == 4, r.stdout + r.stderr
    assert data["status"] == "inconclusive" and data["exit_code"] == 4
    st = {x["name"]: x["status"] for x in data["rungs"]}
    assert st["overfit-1"] == st["overfit-10"] == "skip"
    assert st["wiring"] == "pass"
    assert data["reason"].startswith("no overfit rung could run: replay impossible")
    assert "DataLoader" in data["advice"][0]
    assert "result: INCONCLUSIVE: no overfit rung could run" in r.stdout
    assert "inconclusive" in (tmp_path / "chk" / "report.html").read_text()


def test_a_forward_called_directly_is_named_not_misread(tmp_path):
    """``self.forward(x)`` sleeping 20 ms: that time is not in the forward phase (nnprof
    cannot see it), and the report says so instead of calling it input or logging."""
    r, out, steps = profile(tmp_path, SCRIPTS / "direct_forward.py", "--steps", "8",
                            "--forward", "0.02")
    assert r.returncode == 0, r.stderr
    assert list(steps["kind"]) == ["train"] * 8
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    s = read_summary(out)
    assert any(n.startswith("Layer: forward called directly") for n in s["notices"])
    bn = s["bottleneck"]
    assert bn["evidence"]["forward_called_directly"] == ["Layer"]
    assert bn["evidence"]["input_share"] == 0.0
    text = " ".join(bn["advice"])
    assert text.startswith("Layer.forward is called directly")
    assert "DataLoader" not in text and "logging" not in text
