"""``nnprof check`` on a nanoGPT-style loop (tests/scripts/handgpt.py): batches sliced by
hand, so the overfit rungs replay the first batch; and the generalize rung on the full
data, end to end through the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.slow
GPT = str(SCRIPTS / "handgpt.py")
ENV = {"OMP_NUM_THREADS": "1"}
EVIDENCE = {"train_loss_first", "train_loss_last", "val_loss_first", "val_loss_last", "steps"}


def check(out, *args):
    r = run_cli(["check", "--probe-steps", "5", "--out", out, *args], env=ENV, timeout=300)
    path = Path(out) / "check.json"
    data = json.loads(path.read_text()) if path.exists() else None
    return r, data


def rungs(data) -> dict:
    return {r["name"]: r for r in data["rungs"]}


def test_loss_inside_the_model_overfits_by_replay_and_generalises(tmp_path):
    out = tmp_path / "chk"
    r, data = check(out, GPT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert [x["name"] for x in data["rungs"]] == [
        "simplicity", "wiring", "loss-at-init", "overfit-1", "overfit-10", "generalize"]
    by = rungs(data)
    for name, rows in (("overfit-1", 1), ("overfit-10", 10)):
        rung = by[name]
        assert rung["status"] == "pass" and rung["method"] == "replay", rung
        ev = rung["evidence"]
        assert EVIDENCE <= set(ev)
        assert ev["replay"]["rows"] == rows and ev["replay"]["batch_size"] == 12
        assert ev["replay"]["loss"] == "model"  # model(x, y) returns (logits, loss)
        # memorised: the training loss near 0, validation (its own data) still high
        assert ev["train_loss_last"] < 0.1 * ev["train_loss_first"]
        assert ev["val_loss_last"] > 5 * ev["train_loss_last"]
    gen = by["generalize"]
    assert gen["status"] == "pass", gen
    ev = gen["evidence"]
    assert EVIDENCE <= set(ev) and ev["steps"] == 300 and ev["val_passes"] == 6
    assert ev["val_loss_last"] < 0.5 * ev["val_loss_first"]
    # the ladder as a table, and in the page
    assert "train loss start -> end" in r.stdout and "full data" in r.stdout
    page = (out / "report.html").read_text()
    assert 'id="chart-ladder"' in page and "Memorising, then generalising" in page
    rows = (out / "curves.csv").read_text().splitlines()
    assert {ln.split(",")[0] for ln in rows[1:]} == {"overfit-1", "overfit-10", "generalize"}


def test_loss_outside_the_model_replays_the_target_and_skips_generalize(tmp_path):
    r, data = check(tmp_path / "chk", "--examples", "1", GPT, "--loss-outside",
                    "--eval-every", "0")
    assert r.returncode == 0, r.stdout + r.stderr
    by = rungs(data)
    one = by["overfit-1"]
    assert one["status"] == "pass", one
    assert one["evidence"]["replay"]["loss"] == "loss function"
    assert one["evidence"]["replay"]["target_kept"]
    assert one["evidence"]["val_loss_first"] is None
    gen = by["generalize"]
    assert gen["status"] == "skip"
    assert "no validation pass" in gen["evidence"]["reason"]
    assert any("Add one on held-out data" in a for a in gen["advice"])


def test_gradients_zeroed_before_the_step_fail_with_the_wiring_cause(tmp_path):
    r, data = check(tmp_path / "chk", "--examples", "1", "--max-steps", "40",
                    "--no-generalize", GPT, "--bug", "zero-grad")
    assert r.returncode == 3, r.stdout + r.stderr
    one = rungs(data)["overfit-1"]
    assert one["status"] == "fail" and one["method"] == "replay"
    assert one["advice"][0].startswith("Wiring: all-zero gradient: ")
    assert rungs(data)["wiring"]["status"] == "fail"
    assert "generalize" not in rungs(data)


def test_inputs_that_are_not_tensors_skip_with_the_reason(tmp_path):
    r, data = check(tmp_path / "chk", "--examples", "1", "--no-generalize", GPT,
                    "--inputs", "list")
    # no overfit rung could run: neither passed nor failed
    assert r.returncode == 4, r.stdout + r.stderr
    assert data["status"] == "inconclusive" and "list holding tensors" in data["reason"]
    one = rungs(data)["overfit-1"]
    assert one["status"] == "skip" and one["method"] == "replay"
    assert "list holding tensors" in one["evidence"]["reason"]
    # stopped at once, not after --max-steps
    assert one["evidence"]["status"] == "stopped"
    assert "SKIP  overfit-1     replay impossible" in r.stdout


def test_a_model_that_memorises_warns_on_generalize(tmp_path):
    r, data = check(tmp_path / "chk", "--examples", "1", GPT, "--memorise")
    assert r.returncode == 0, r.stdout + r.stderr
    by = rungs(data)
    assert by["overfit-1"]["status"] == "pass"
    gen = by["generalize"]
    assert gen["status"] == "warn", gen
    assert gen["evidence"]["val_loss_last"] > gen["evidence"]["val_loss_first"]
    assert gen["evidence"]["train_loss_last"] < gen["evidence"]["train_loss_first"]
    assert "already overfits" in gen["advice"][0]
