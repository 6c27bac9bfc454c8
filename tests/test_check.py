"""``nnprof check``: the overfit ladder, end to end through the CLI, and its helpers.

The end-to-end tests run tests/scripts/ladder.py: a tiny classifier, healthy by
default, with a planted bug (--bug), regularisation (--fancy), a validation
loop (--val), manual batching (--manual) or a crash (--crash-after,
--assert-classes).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT, SCRIPTS, read_summary, run_cli
from nnprof import cli
from nnprof.cli import check as check_cmd, profile as profile_cmd
from nnprof.cli.args import split_profile_args
from nnprof.check import (Settings, SubRun, judge_overfit, parse_examples, profile_command,
                          skipped, train_losses)
from nnprof.run import Run
from nnprof.renderers.checklist import render_checklist, short
from nnprof.runner import Target

slow = pytest.mark.slow
LADDER = str(SCRIPTS / "ladder.py")
FAST = ["--probe-steps", "10", "--max-steps", "60", "--examples", "1", "--no-generalize"]
TOP_KEYS = {"schema_version", "rungs", "wiring", "loss_at_init", "script", "argv", "runs",
            "settings", "status", "exit_code", "training_loader"}
WIRING_KEYS = {"no_grad", "zero_grad", "not_in_optimizer", "unchanged", "frozen",
               "below_resolution", "unjudged", "unfrozen_later"}


def check(out, *args, module=False):
    r = run_cli(["check", "--out", out, *args], module=module)
    data = None
    if (Path(out) / "check.json").exists():
        data = json.loads((Path(out) / "check.json").read_text())
    return r, data


def rungs(data) -> dict:
    return {r["name"]: r for r in data["rungs"]}


def statuses(data) -> dict:
    return {r["name"]: r["status"] for r in data["rungs"]}


def checklist_line(stdout: str, name: str) -> str:
    hits = [ln for ln in stdout.splitlines() if ln[6:].split(" ")[0] == name]
    assert len(hits) == 1, stdout
    return hits[0]


# -- end to end ----------------------------------------------------------------------

@slow
def test_healthy_classifier_passes(tmp_path):
    out = tmp_path / "chk"
    r, data = check(out, "--probe-steps", "10", "--max-steps", "150", "--examples", "1,5",
                    "--no-generalize", LADDER)
    assert r.returncode == 0, r.stdout + r.stderr
    assert TOP_KEYS <= set(data), data.keys()
    assert data["schema_version"] == 1
    assert set(data["wiring"]) == WIRING_KEYS and not any(data["wiring"].values())
    assert data["loss_at_init"]["function"] == "cross_entropy"
    assert data["loss_at_init"]["classes"] == 4
    assert [r["name"] for r in data["rungs"]] == [
        "simplicity", "wiring", "loss-at-init", "overfit-1", "overfit-5"]
    for rung in data["rungs"]:
        extra = {"method"} if rung["name"].startswith("overfit-") else set()
        assert set(rung) == {"name", "status", "evidence", "advice"} | extra
        assert isinstance(rung["advice"], list)
        assert rung["status"] == "pass", rung
    assert data["settings"] == {"examples": [1, 5], "max_steps": 150, "ratio": 0.1,
                                "patience": 5, "probe_steps": 10, "as_is": False,
                                "generalize": False, "max_time": None}
    assert data["training_loader"]["file"] == LADDER
    assert data["runs"] == {"probe": "probe", "overfit-1": "overfit-1", "overfit-5": "overfit-5"}
    for name in data["runs"].values():
        assert (out / name / "summary.json").exists()
        assert (out / name / "output.log").exists()
    # the script's stdout went to the log, not to ours
    assert "done" not in r.stdout
    ev = rungs(data)["overfit-5"]["evidence"]
    assert rungs(data)["overfit-5"]["method"] == ev["method"] == "loader"
    assert ev["examples"] == 5 and ev["stopped"] == "converged"
    assert ev["train_loss_first"] == ev["first"] and ev["train_loss_last"] == ev["last_mean"]
    assert ev["val_loss_first"] is None and ev["val_loss_last"] is None
    assert ev["last_mean"] <= 0.1 * ev["first"] and ev["steps"] < 150
    # the rung ran on the first 5 examples only
    events = [json.loads(ln) for ln in (out / "overfit-5" / "loaders.jsonl").read_text()
              .splitlines()]
    assert {"event": "restricted", "file": LADDER, "line": data["training_loader"]["line"],
            "index": 0, "examples": 5, "selection": "classes", "classes": 4} in events
    assert ev["classes"] == 4 and ev["selection"] == "classes"
    curves = (out / "curves.csv").read_text().splitlines()
    assert curves[0] == "rung,train_step,loss"
    by_rung = {}
    for line in curves[1:]:
        name, step, loss = line.split(",")
        by_rung.setdefault(name, []).append((int(step), float(loss)))
    assert set(by_rung) == {"overfit-1", "overfit-5"}
    assert [s for s, _ in by_rung["overfit-5"]] == list(range(ev["steps"]))
    assert by_rung["overfit-5"][0][1] == pytest.approx(ev["first"])
    for name in ("simplicity", "wiring", "loss-at-init", "overfit-1", "overfit-5"):
        assert checklist_line(r.stdout, name).startswith("PASS  ")


@slow
@pytest.mark.parametrize("bug,category,names", [
    ("dead-branch", "no_grad", ["unused.weight", "unused.bias"]),
    ("detach", "no_grad", ["body.0.weight", "body.0.bias"]),
    ("not-in-optimizer", "not_in_optimizer", ["head.weight", "head.bias"]),
])
def test_planted_wiring_bug_is_named(tmp_path, bug, category, names):
    r, data = check(tmp_path / "chk", *FAST, LADDER, "--bug", bug)
    assert r.returncode == 3, r.stdout + r.stderr
    assert sorted(data["wiring"][category]) == sorted(names)
    others = {k: v for k, v in data["wiring"].items() if k != category}
    assert not any(others.values()), others
    wiring = rungs(data)["wiring"]
    assert wiring["status"] == "fail"
    assert sorted(wiring["evidence"][category]) == sorted(names)
    line = checklist_line(r.stdout, "wiring")
    assert line.startswith("FAIL  ") and all(n in line for n in names)
    assert data["status"] == "failed" and data["exit_code"] == 3


@slow
def test_model_that_cannot_learn_fails_overfit(tmp_path):
    r, data = check(tmp_path / "chk", *FAST, LADDER, "--bug", "lr0")
    assert r.returncode == 3, r.stdout + r.stderr
    rung = rungs(data)["overfit-1"]
    assert rung["status"] == "fail"
    assert rung["evidence"]["steps"] == 60
    assert rung["evidence"]["stopped"].startswith("max-steps")
    assert any("flat" in a for a in rung["advice"])
    assert checklist_line(r.stdout, "overfit-1").startswith("FAIL  ")
    # lr 0 is also a wiring problem: every parameter got a gradient and stayed put
    assert len(data["wiring"]["unchanged"]) == 4


@slow
def test_regularisation_warns_but_never_fails(tmp_path):
    r, data = check(tmp_path / "chk", *FAST, LADDER, "--fancy")
    simp = rungs(data)["simplicity"]
    assert simp["status"] == "warn"
    assert simp["evidence"]["triggered"] == ["dropout", "normalization", "weight_decay",
                                             "scheduler"]
    text = " ".join(simp["advice"])
    for word in ("Dropout", "BatchNorm1d", "AdamW", "StepLR"):
        assert word in text
    assert checklist_line(r.stdout, "simplicity").startswith("WARN  ")
    # the overfit rung trains without dropout and weight decay and with a constant lr
    assert rungs(data)["overfit-1"]["status"] == "pass"
    assert r.returncode == 0, r.stdout + r.stderr


@slow
def test_validation_losses_in_overfit_evidence(tmp_path):
    # 32 examples, batches of 8: a validation pass every 4 train steps
    r, data = check(tmp_path / "chk", *FAST[:-1], LADDER, "--val", "--examples", "32",
                    module=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the generalize rung: the same script on its full data, validation falling
    gen = rungs(data)["generalize"]
    assert gen["status"] == "pass", gen
    assert gen["evidence"]["val_loss_last"] < 0.95 * gen["evidence"]["val_loss_first"]
    assert gen["evidence"]["steps"] == 60 and data["runs"]["generalize"] == "generalize"
    assert [r["name"] for r in data["rungs"]][-2:] == ["overfit-1", "generalize"]
    ev = rungs(data)["overfit-1"]["evidence"]
    assert len(ev["val_losses"]) >= 2
    assert all(v > 0 for v in ev["val_losses"])
    assert len(ev["val_accuracy"]) == len(ev["val_losses"])
    after = [a for a, _ in ev["val_accuracy"]]
    assert after == [4 * (i + 1) for i in range(len(after))]
    # one example memorised: validation stays far above the training loss
    assert ev["val_losses"][-1] > 5 * ev["last_mean"]
    assert "validation" in checklist_line(r.stdout, "overfit-1")


@slow
def test_manual_batching_overfits_by_replay(tmp_path):
    """No DataLoader: the first batch's first N rows are replayed (batches of 8, so
    overfit-10 keeps the first two batches: 8 + 2 rows)."""
    r, data = check(tmp_path / "chk", "--probe-steps", "10", "--no-generalize", LADDER,
                    "--manual")
    assert r.returncode == 0, r.stdout + r.stderr
    st = statuses(data)
    assert st["overfit-1"] == st["overfit-10"] == "pass", data["rungs"]
    assert st["wiring"] == "pass" and data["training_loader"] is None
    assert data["runs"] == {"probe": "probe", "overfit-1": "overfit-1",
                            "overfit-10": "overfit-10"}
    one, ten = rungs(data)["overfit-1"], rungs(data)["overfit-10"]
    assert one["method"] == ten["method"] == "replay"
    assert one["evidence"]["replay"]["rows"] == 1 and one["evidence"]["replay"]["batches"] == 1
    assert ten["evidence"]["replay"]["rows"] == 10 and ten["evidence"]["replay"]["batches"] == 2
    assert ten["evidence"]["replay"]["loss"] == "loss function"
    assert ten["evidence"]["replay"]["target_kept"]
    assert checklist_line(r.stdout, "overfit-10").startswith("PASS  ")


@slow
def test_crash_on_few_examples_fails_the_rung(tmp_path):
    r, data = check(tmp_path / "chk", *FAST, LADDER, "--assert-classes")
    assert r.returncode == 3, r.stdout + r.stderr
    rung = rungs(data)["overfit-1"]
    assert rung["status"] == "fail"
    assert rung["evidence"]["error"] == "AssertionError: a batch holds a single class"
    assert rung["evidence"]["exit_code"] == 1
    assert "AssertionError" in checklist_line(r.stdout, "overfit-1")
    assert "Traceback" not in r.stdout + r.stderr


@slow
def test_script_failing_in_probe_keeps_its_exit_code(tmp_path):
    out = tmp_path / "chk"
    r, data = check(out, *FAST, LADDER, "--crash-after", "3")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "RuntimeError: planted crash at step 3" in r.stderr
    assert str(out / "probe" / "output.log") in r.stderr
    assert data["status"] == "script-failed" and data["exit_code"] == 1
    assert statuses(data)["overfit-1"] == "skip"
    assert "planted crash" in rungs(data)["overfit-1"]["evidence"]["reason"]
    assert not (out / "overfit-1").exists()


@slow
def test_ctrl_c_stops_the_ladder(tmp_path):
    out = tmp_path / "chk"
    cmd = [sys.executable, "-m", "nnprof", "check", "--probe-steps", "5", "--max-steps",
           "1000000", "--examples", "1,5", "--out", str(out), LADDER, "--bug", "lr0",
           "--epochs", "1000000"]
    # a new session, as a terminal's Ctrl-C reaches the whole foreground group
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "overfit-1" / "meta.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    data = json.loads((out / "check.json").read_text())
    assert data["status"] == "interrupted" and data["exit_code"] == 130
    assert statuses(data)["overfit-1"] == statuses(data)["overfit-5"] == "skip"
    assert read_summary(out / "overfit-1")["status"] == "interrupted"
    assert not (out / "overfit-5").exists()
    assert "SKIP  overfit-5" in stdout


def assert_usage_error(code, err):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnprof: error:"), err
    assert "Traceback" not in err


@slow
def test_bad_input_through_the_cli(tmp_path):
    r = run_cli(["check", "--out", tmp_path / "chk", tmp_path / "missing.py"])
    assert_usage_error(r.returncode, r.stderr)
    assert "script not found" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args,message", [
    (["--examples", "0", LADDER], "positive"),
    (["--examples", "a", LADDER], "not an integer"),
    (["--examples", "1,,2", LADDER], "not an integer"),
    (["--ratio", "1.5", LADDER], "below 1"),
    (["--max-steps", "0", LADDER], "positive integer"),
    (["--nope", LADDER], "unrecognized"),
    ([], "no script given"),
    (["missing_script.py"], "script not found"),
])
def test_bad_input(capsys, tmp_path, args, message):
    code = cli.main(["check", "--out", str(tmp_path / "chk"), *args])
    err = capsys.readouterr().err
    assert_usage_error(code, err)
    assert message in err
    assert not (tmp_path / "chk" / "probe").exists()


def test_bad_input_syntax_error_and_out(capsys, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    assert_usage_error(cli.main(["check", str(bad)]), capsys.readouterr().err)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = cli.main(["check", "--out", str(blocker / "sub"), LADDER])
    err = capsys.readouterr().err
    assert_usage_error(code, err)
    assert "cannot create output directory" in err
    done = tmp_path / "done"
    done.mkdir()
    (done / "check.json").write_text("{}")
    code = cli.main(["check", "--out", str(done), LADDER])
    err = capsys.readouterr().err
    assert_usage_error(code, err)
    assert "already holds a check" in err


def test_help(capsys):
    assert cli.main(["check", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--examples", "--max-steps", "--ratio", "--patience", "--probe-steps",
                "--as-is", "--out"):
        assert opt in out


# -- helpers -------------------------------------------------------------------------

def test_parse_examples():
    assert parse_examples("1,10") == (1, 10)
    assert parse_examples(" 10, 1,1 ") == (1, 10)
    for bad in ("0", "a", "", "1,,2", "-3", "1.5"):
        with pytest.raises(ValueError):
            parse_examples(bad)


def test_our_options_stop_at_the_script():
    ours, script, module, rest = split_profile_args(
        ["--examples", "1", "--out", "d", "train.py", "--examples", "3"],
        check_cmd._CHECK_VALUE_OPTIONS)
    assert ours == ["--examples", "1", "--out", "d"]
    assert (script, module, rest) == ("train.py", None, ["--examples", "3"])


def test_profile_command():
    cmd = profile_command(Target(path="-odd.py", args=("--lr", "1")), "/o/probe", 20)
    assert cmd[1:] == ["-m", "nnprof", "profile", "--quiet", "--no-progress", "--no-monitors",
                       "--max-steps", "20", "--out", "/o/probe", "--", "-odd.py", "--lr", "1"]
    split = split_profile_args(cmd[4:], profile_cmd._VALUE_OPTIONS)
    assert split[1:] == ("-odd.py", None, ["--lr", "1"])
    cmd = profile_command(Target(module="pkg.train", args=("-x",)), "/o/overfit-1", 300)
    split = split_profile_args(cmd[4:], profile_cmd._VALUE_OPTIONS)
    assert split[1:] == (None, "pkg.train", ["-x"])


def test_train_losses_keeps_nan_and_drops_missing(tmp_path):
    from nnprof.run import STEP_COLUMNS
    blank = {c: "0" for c in STEP_COLUMNS}

    def row(**kw):
        return ",".join(str(dict(blank, **kw)[c]) for c in STEP_COLUMNS)

    lines = [",".join(STEP_COLUMNS),
             row(kind="train", train_index=0, loss=2.0),
             row(kind="eval", train_index="", loss=9.0),
             row(kind="train", train_index=1, loss=""),
             row(kind="train", train_index=2, loss="nan"),
             row(kind="train", train_index=3, loss=0.5),
             "5,train,4,0.1"]  # torn last line
    (tmp_path / "steps.csv").write_text("\n".join(lines) + "\n")
    got = train_losses(str(tmp_path))
    assert [i for i, _ in got] == [0, 2, 3]
    assert got[0][1] == 2.0 and got[1][1] != got[1][1] and got[2][1] == 0.5
    assert train_losses(str(tmp_path / "nowhere")) == []


def _fake_subrun(tmp_path, losses, events, passes=(), probe=None, summary=None):
    """A finished overfit sub-run: steps.csv with these train losses (and one
    eval step per ``passes`` entry, after that many train steps); ``probe``: its
    probe.json, ``summary``: its summary (by default: stopped, converged)."""
    import pandas as pd
    from nnprof.run import STEP_COLUMNS
    rows, idx = [], 0
    for i, loss in enumerate(losses):
        for after, vloss in passes:
            if after == i:
                rows.append({"index": idx, "kind": "eval", "train_index": "",
                             "loss": repr(vloss), "wall_s": 0.1, "other_s": 0.0})
                idx += 1
        # as the profiler writes it: repr(loss), so a NaN loss reads "nan"
        rows.append({"index": idx, "kind": "train", "train_index": i, "loss": repr(loss),
                     "wall_s": 0.1, "other_s": 0.0})
        idx += 1
    pd.DataFrame(rows, columns=STEP_COLUMNS).to_csv(tmp_path / "steps.csv", index=False)
    (tmp_path / "meta.json").write_text("{}")
    run = SimpleNamespace(loader_events=events, steps=Run.load(str(tmp_path)).steps,
                          metrics_passes=[{"after_train_steps": a, "confusion": [[3, 1], [0, 4]]}
                                          for a, _ in passes], probe=probe)
    summary = summary or {"status": "stopped", "notices": ["stopped at converged"]}
    return SubRun("overfit-4", str(tmp_path), 0, run=run, summary=summary)


LOADER = {"id": "L0", "file": "/x/train.py", "line": 12}
RESTRICTED = [{"event": "restricted", "file": "/x/train.py", "line": 12, "examples": 4}]


def test_judge_overfit_pass_with_validation(tmp_path):
    losses = [2.0, 1.0, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    sub = _fake_subrun(tmp_path, losses, RESTRICTED, passes=[(2, 2.1), (6, 2.2)])
    rung, curve = judge_overfit(4, sub, None, Settings(), LOADER)
    assert rung["status"] == "pass"
    ev = rung["evidence"]
    assert ev["examples"] == 4 and ev["stopped"] == "converged" and ev["run"] == tmp_path.name
    assert ev["val_losses"] == [2.1, 2.2] and ev["val_curve"] == [[2, 2.1], [6, 2.2]]
    assert ev["val_accuracy"] == [[2, 0.875], [6, 0.875]]
    # the stop rule held at the 7th loss: what came after is the run winding down
    assert curve == list(enumerate(losses))[:7] and ev["steps"] == 7


def test_judge_overfit_nan_loss_fails(tmp_path):
    sub = _fake_subrun(tmp_path, [2.0, 5.0, float("nan"), float("nan")], RESTRICTED)
    rung, curve = judge_overfit(4, sub, None, Settings(patience=2), LOADER)
    assert rung["status"] == "fail" and rung["evidence"]["nonfinite"] == 2
    assert "learning rate" in rung["advice"][0]
    assert len(curve) == 4


def test_judge_overfit_unrestricted_loader_skips(tmp_path):
    sub = _fake_subrun(tmp_path, [2.0, 0.1, 0.1], [{"event": "loader", "id": "L0"}])
    rung, _ = judge_overfit(4, sub, None, Settings(), LOADER)
    assert rung["status"] == "skip"
    assert "train.py:12" in rung["evidence"]["reason"]


def test_subrun_tail_and_exit_code(tmp_path):
    (tmp_path / "output.log").write_text(
        "epoch 1\nTraceback (most recent call last):\nValueError: bad shape\n"
        "nnprof: run written to x\n\n")
    sub = SubRun("overfit-1", str(tmp_path), 1)
    assert sub.error_line() == "ValueError: bad shape"
    assert sub.tail(2) == ["Traceback (most recent call last):", "ValueError: bad shape"]
    assert sub.failed and sub.status == "no run"
    assert SubRun("p", str(tmp_path), -9).exit_code == 137
    empty = SubRun("p", str(tmp_path / "none"), 2)
    assert empty.error_line() == "exit code 2"
    sub.summary = {"status": "stopped", "notices": ["stopped at converged"]}
    assert sub.stop_reason == "converged"


def test_checklist_text():
    record = {"script": "train.py", "rungs": [
        {"name": "simplicity", "status": "warn",
         "evidence": {"triggered": ["dropout", "weight_decay"]}, "advice": ["Drop it."]},
        {"name": "wiring", "status": "fail",
         "evidence": {"no_grad": ["a.w", "a.b"], "not_in_optimizer": ["h.w"]},
         "advice": ["Wire it."]},
        {"name": "loss-at-init", "status": "pass",
         "evidence": {"function": "cross_entropy", "classes": 10, "first_loss": 2.3,
                      "expected": 2.302585}, "advice": ["Fine."]},
        skipped("overfit-1", "no DataLoader fed the train steps"),
        {"name": "overfit-10", "status": "fail",
         "evidence": {"first": 2.3, "last_mean": 2.2, "ratio_achieved": 0.957, "ratio": 0.1,
                      "steps": 300, "val_losses": [2.4, 2.5]},
         "advice": ["Lower it."]},
    ]}
    text = render_checklist(record)
    assert "\x1b[" not in text
    lines = text.splitlines()
    assert lines[1] == "WARN  simplicity    found dropout, weight decay"
    assert lines[2] == "FAIL  wiring        no_grad: a.w, a.b; not_in_optimizer: h.w"
    assert lines[3].startswith("PASS  loss-at-init  first loss 2.300, expected 2.303")
    assert lines[4] == "SKIP  overfit-1     no DataLoader fed the train steps"
    assert lines[5].startswith("FAIL  overfit-10    loss 2.3 -> 2.2 (0.957 x first")
    assert "validation 2.4 -> 2.5" in lines[5]
    assert "  - Drop it." in lines and "  - Wire it." in lines and "  - Lower it." in lines
    assert "  - Fine." not in lines and not any("Not checked" in ln for ln in lines)
    assert "\x1b[31mFAIL" in render_checklist(record, color=True)
    crashed = {"name": "overfit-1", "status": "fail", "evidence": {"error": "OSError: x"}}
    assert short(crashed) == "script failed: OSError: x"


def test_settings_dict():
    assert Settings().to_dict() == {"examples": [1, 10], "max_steps": 300, "ratio": 0.1,
                                    "patience": 5, "probe_steps": 20, "as_is": False,
                                    "generalize": True, "max_time": None}


FALLING = [2.0, 1.0, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]


@pytest.mark.parametrize("event_classes,seen,classification,status", [
    (3, None, True, "pass"),      # labels read: examples of 3 classes
    (1, None, True, "warn"),      # labels read: all of one class
    (None, 2, True, "pass"),      # labels unreadable, the loss saw 2 classes
    (None, 1, True, "warn"),      # ... and saw one class only
    (None, None, True, "warn"),   # a classifier, classes unknown: may be trivial
    (None, None, False, "pass"),  # regression: no classes to speak of
])
def test_judge_overfit_warns_when_the_examples_may_be_one_class(
        tmp_path, event_classes, seen, classification, status):
    events = [dict(RESTRICTED[0], index=0, selection="classes" if event_classes else "first",
                   classes=event_classes)]
    probe = {"targets": {"losses": 8, "classes": seen}} if seen else {}
    sub = _fake_subrun(tmp_path, FALLING, events, probe=probe)
    rung, _ = judge_overfit(4, sub, None, Settings(), LOADER, classification=classification)
    assert rung["status"] == status, rung
    if status == "warn":
        assert rung["evidence"]["trivial"] == rung["advice"][-1]
    # one example is one class by nature: never a warning
    one, _ = judge_overfit(1, sub, None, Settings(), LOADER, classification=classification)
    assert one["status"] == "pass"


def test_judge_overfit_says_when_the_script_stopped_itself(tmp_path):
    """The script ran its own 8 steps (its epochs or max_steps) and ended: the rung
    fails, but for that reason, not the learning rate."""
    losses = [2.0, 1.9, 1.7, 1.5, 1.4, 1.3, 1.2, 1.1]
    done = {"status": "completed", "notices": []}
    sub = _fake_subrun(tmp_path, losses, RESTRICTED, summary=done)
    rung, _ = judge_overfit(4, sub, None, Settings(max_steps=300), LOADER)
    assert rung["status"] == "fail"
    assert rung["evidence"]["ended_by_script"] is True
    assert rung["advice"][0].startswith("The script ended the run itself after 8 train steps")
    assert "300" in rung["advice"][0]
    assert not any("learning rate" in a for a in rung["advice"]), rung["advice"]
    # stopped by the rung's own limit: the learning rate is still the suspect
    sub = _fake_subrun(tmp_path, losses, RESTRICTED,
                       summary={"status": "stopped", "notices": ["stopped at max-steps (8)"]})
    rung, _ = judge_overfit(4, sub, None, Settings(max_steps=8), LOADER)
    assert "ended_by_script" not in rung["evidence"]
    assert any("learning rate" in a for a in rung["advice"])


def test_the_result_line_closes_the_checklist():
    record = {"script": "t.py", "status": "inconclusive", "reason": "no overfit rung could "
              "run: a loss computed by hand", "advice": ["Use a loss function."],
              "rungs": [skipped("overfit-1", "a loss computed by hand")]}
    lines = render_checklist(record).splitlines()
    assert lines[-2] == ("result: INCONCLUSIVE: no overfit rung could run: a loss computed "
                         "by hand")
    assert lines[-1] == "  - Use a loss function."
    record = {"script": "t.py", "status": "passed", "rungs": []}
    assert render_checklist(record).splitlines()[-1] == "result: PASSED"


def test_conclude_weighs_the_rungs():
    from nnprof.check import Check, conclude

    def concluded(*rungs, adversarial=False):
        c = Check(None, Settings(), "out", rungs=list(rungs))
        conclude(c, adversarial=adversarial)
        return c

    ok = {"name": "overfit-1", "status": "pass"}
    warn = {"name": "overfit-10", "status": "warn"}
    fail = {"name": "wiring", "status": "fail"}
    skip1, skip10 = skipped("overfit-1", "why"), skipped("overfit-10", "why")
    assert (concluded(ok, skip10).status, concluded(ok, skip10).exit_code) == ("passed", 0)
    assert concluded(warn, skip1).status == "passed"
    assert (concluded(skip1, fail).status, concluded(skip1, fail).exit_code) == ("failed", 3)
    c = concluded(skip1, skip10, skipped("generalize", "no validation"))
    assert (c.status, c.exit_code) == ("inconclusive", 4)
    assert c.reason == "no overfit rung could run: why"  # each reason once
    assert "DataLoader" in c.advice[0]
    assert "samples" in concluded(skip1, adversarial=True).advice[0]
    assert concluded({"name": "wiring", "status": "pass"}).status == "passed"  # no rung asked
