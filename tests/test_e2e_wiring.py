"""End to end: wiring verdicts that hold at the learning rates the run used. A warm-up
from 1e-5 and bfloat16 parameters leave some weights unmoved by rounding (a WARN that
says so, never a FAIL); a detached layer still FAILs, and ``--fail-on wiring`` follows."""
import pytest

from conftest import SCRIPTS, read_summary
from test_check import check, rungs
from test_e2e_steps import printed_losses, profile

SCRIPT = SCRIPTS / "warmup_resolution.py"


def wiring_of(out):
    return read_summary(out)["wiring"]


def test_warmup_from_1e5_is_rounding_not_a_wiring_fault(tmp_path):
    r, out, steps = profile(tmp_path, SCRIPT, options=("--fail-on", "wiring"))
    assert r.returncode == 0, r.stderr  # --fail-on wiring: a warn is not a failure
    assert list(steps["loss"]) == pytest.approx(printed_losses(r.stdout), rel=1e-6)
    w = wiring_of(out)
    assert w["verdict"] == "warn" and w["severity"] == "warn"
    ev = w["evidence"]
    assert ev["unchanged"] == [] and ev["no_grad"] == []
    assert "features.0.bias" in ev["below_resolution"]  # the conv bias before a batch norm
    grp, = ev["resolution"]
    assert grp["lr"] == [1e-5] * 3 and grp["dtype"] == "float32"
    # the script raises the lr at epoch 2 (step 5): nnprof's later look sees them move
    assert grp["moved_by_step"] is not None and grp["moved_lr"] == pytest.approx(1e-5 + (0.1 - 1e-5) / 5)
    line = next(a for a in w["advice"] if "features.0.bias" in a)
    assert "below their float32 resolution" in line and "lr 1e-05" in line
    assert "Not a wiring fault" in line and "warm-up" in line


def test_bf16_parameters_warn_with_the_master_weight_advice(tmp_path):
    r, out, _ = profile(tmp_path, SCRIPT, "--bf16")
    assert r.returncode == 0, r.stderr
    w = wiring_of(out)
    ev = w["evidence"]
    assert w["verdict"] == "warn" and ev["unchanged"] == []
    # norm weights of 1.0: 1.0 + 1e-4 rounds to 1.0 in bfloat16
    assert {"features.1.weight", "features.4.weight"} <= set(ev["below_resolution"])
    assert ev["resolution"][0]["dtype"] == "bfloat16"
    assert any("float32 (master) weights" in a for a in w["advice"])


def test_a_detached_layer_still_fails(tmp_path):
    r, out, _ = profile(tmp_path, SCRIPT, "--detach", options=("--fail-on", "wiring"))
    assert r.returncode == 3, r.stderr
    w = wiring_of(out)
    assert w["verdict"] == "fail"
    assert "features.0.weight" in w["evidence"]["no_grad"]
    assert w["evidence"]["below_resolution"] == []


@pytest.mark.slow
def test_check_wiring_rung_warns_on_the_warmup(tmp_path):
    r, data = check(tmp_path / "chk", SCRIPT, "--epochs", "1")
    wiring = rungs(data)["wiring"]
    assert wiring["status"] == "warn", wiring
    assert "features.0.bias" in data["wiring"]["below_resolution"]
    assert "updates below float resolution: features.0.bias" in r.stdout
