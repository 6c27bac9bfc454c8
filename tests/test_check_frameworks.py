"""``nnprof check`` on loaders that frameworks build, and on data sorted by class.

tests/scripts/fw_loaders.py builds its training and validation loaders from one
line of loader(), directly, through Lightning's DataModule or through
``accelerator.prepare``; its dataset can be sorted by class like an ImageFolder.
"""
import json
import re

import pytest

from conftest import SCRIPTS, run_cli

FW = str(SCRIPTS / "fw_loaders.py")
ENV = {"OMP_NUM_THREADS": "1"}
slow = pytest.mark.slow


def check(tmp_path, *args):
    out = tmp_path / "chk"
    r = run_cli(["check", "--no-generalize", "--out", out, *args], env=ENV, timeout=300)
    data = json.loads((out / "check.json").read_text())
    return r, out, data


def events(run_dir, kind):
    lines = (run_dir / "loaders.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == kind]


def rung(data, name):
    return next(r for r in data["rungs"] if r["name"] == name)


def loader_line(stdout):
    return int(re.search(r"^train loader at (\d+)$", stdout, re.M).group(1))


@slow
def test_loaders_built_by_accelerate_are_named_by_the_scripts_line(tmp_path):
    """accelerate rebuilds each loader inside ``prepare``: the site is the script's
    ``prepare`` line (not accelerate's data_loader.py), and the two loaders built
    there are told apart by their rank."""
    pytest.importorskip("accelerate")
    out = tmp_path / "run"
    r = run_cli(["profile", "--quiet", "--no-progress", "--out", out, FW,
                 "--framework", "accelerate"], env=ENV)
    assert r.returncode == 0, r.stderr
    loaders = {e["id"]: e for e in events(out, "loader")}
    assert len(loaders) == 2, loaders
    src = (SCRIPTS / "fw_loaders.py").read_text().splitlines()
    for e in loaders.values():
        assert e["site"]["file"] == FW, e["site"]
        assert "acc.prepare(" in src[e["site"]["line"] - 1]
    by_len = {e["dataset_len"]: e["site"]["index"] for e in loaders.values()}
    assert by_len == {48: 0, 12: 1}  # train first, then validation


@slow
def test_lightning_check_restricts_the_training_loader_only(tmp_path):
    """Lightning builds the validation loader (sanity check) and then the training
    loader, both on the line in loader(): the rung restricts the training loader
    alone. The script stops itself after its one epoch (6 steps): the overfit
    FAIL says so instead of blaming the learning rate."""
    pytest.importorskip("lightning")
    r, out, data = check(tmp_path, "--probe-steps", "3", "--max-steps", "60",
                         "--examples", "3", FW, "--framework", "lightning", "--lr", "0.001")
    assert data["exit_code"] == 3, r.stdout + r.stderr
    line = loader_line((out / "probe" / "output.log").read_text())
    tl = data["training_loader"]
    assert (tl["file"], tl["line"], tl["index"]) == (FW, line, 1), tl
    assert tl["dataset_len"] == 48
    restricted = events(out / "overfit-3", "restricted")
    assert [(e["line"], e["index"]) for e in restricted] == [(line, 1)], restricted
    val = [e for e in events(out / "overfit-3", "loader") if e["site"]["index"] == 0]
    assert val and val[0]["dataset_len"] == 12 and val[0]["dataset"] == "Folder"
    ov = rung(data, "overfit-3")
    assert ov["status"] == "fail" and ov["evidence"]["steps"] == 6
    assert ov["evidence"]["ended_by_script"] is True
    assert ov["advice"][0].startswith("The script ended the run itself after 6 train steps")
    assert not any("learning rate" in a for a in ov["advice"]), ov["advice"]
    assert ov["evidence"]["classes"] == 3  # the 3 examples span the 3 classes


@slow
def test_overfit_on_sorted_data_spans_the_classes(tmp_path):
    """The first 6 items are all of class 0; the rung takes 2 of each class."""
    r, out, data = check(tmp_path, "--probe-steps", "3", "--examples", "6", FW,
                         "--epochs", "100", "--lr", "0.5")
    assert data["exit_code"] == 0, r.stdout + r.stderr
    (ev,) = events(out / "overfit-6", "restricted")
    assert ev["selection"] == "classes" and ev["classes"] == 3
    ov = rung(data, "overfit-6")
    assert ov["status"] == "pass", ov
    assert ov["evidence"]["classes"] == 3


@slow
def test_overfit_on_sorted_data_without_labels_warns(tmp_path):
    """No label attribute: the first 6 items serve, all of class 0, and the loss
    saw one class only: a pass proves little, the rung says so."""
    r, out, data = check(tmp_path, "--probe-steps", "3", "--examples", "6", FW,
                         "--data", "hidden", "--epochs", "100", "--lr", "0.5")
    assert data["exit_code"] == 0, r.stdout + r.stderr
    (ev,) = events(out / "overfit-6", "restricted")
    assert ev["selection"] == "first" and ev["classes"] is None
    ov = rung(data, "overfit-6")
    assert ov["status"] == "warn", ov
    assert ov["evidence"]["classes"] == 1
    assert "all of one class" in ov["advice"][-1]
    assert "WARN  overfit-6" in r.stdout


@slow
def test_loader_rebuilt_each_epoch_is_restricted_each_epoch(tmp_path):
    """Training and validation loaders built anew at each epoch on one line: indices
    0, 2, 4 train, 1, 3, 5 validate. The probe (14 steps: 3 epochs of 6) names the
    first training loader; the rung restricts each epoch's training loader only."""
    r, out, data = check(tmp_path, "--probe-steps", "14", "--examples", "3", FW,
                         "--rebuild", "--epochs", "3", "--lr", "0.001")
    assert data["status"] in ("passed", "failed"), r.stdout + r.stderr
    assert data["training_loader"]["index"] == 0
    restricted = events(out / "overfit-3", "restricted")
    assert [e["index"] for e in restricted] == [0, 2, 4], restricted
    ov = rung(data, "overfit-3")
    assert ov["evidence"]["steps"] == 18 and ov["evidence"]["ended_by_script"] is True


@slow
def test_hf_trainer_check(tmp_path):
    """The Trainer builds a DataLoader and accelerate rebuilds it, both inside
    ``trainer.train()``: the site is that line of the script, the rung restricts the
    rebuilt one (index 1) alone, and the run that ends at the script's own
    ``max_steps`` fails the rung for that reason."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    script = str(SCRIPTS / "scaled_loss.py")
    r, out, data = check(tmp_path, "--probe-steps", "2", "--examples", "4", "--max-steps",
                         "50", script, "--mode", "hf", "--steps", "12",
                         "--out", tmp_path / "hf")
    assert data["exit_code"] == 3, r.stdout + r.stderr
    tl = data["training_loader"]
    src = (SCRIPTS / "scaled_loss.py").read_text().splitlines()
    assert tl["file"] == script and ".train()" in src[tl["line"] - 1], tl
    assert tl["index"] == 1 and tl["dataset"] == "Tokens"
    restricted = events(out / "overfit-4", "restricted")
    assert [(e["index"], e["selection"], e["classes"]) for e in restricted] == \
        [(1, "classes", 3)], restricted
    ov = rung(data, "overfit-4")
    assert ov["status"] == "fail" and ov["evidence"]["ended_by_script"] is True
    assert ov["advice"][0].startswith("The script ended the run itself")
