"""--trace: the window plan, torch.profiler windows end to end, and TensorBoard's plugin."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from torch import nn

import nnprof
from conftest import ROOT, SCRIPTS, run_python
from nnprof.renderers import render
from nnprof.capture.trace import CONTINUE, MAX_EXTRA, RECORD, START, STOP, TracePlan, options

# -- the plan (pure) -------------------------------------------------------------


def simulate(plan: TracePlan, seq):
    """Feed ``seq`` ((kind, wall_s) per step) to the plan as the Tracer does.

    Returns ({step index: role}, [window dicts]); roles: warmup, recorded, after
    (the step after a window, which pays for the export)."""
    roles, windows, nxt, train_done = {}, [], None, 0
    for idx, (kind, wall) in enumerate(seq):
        if nxt is not None:
            roles[idx] = nxt
        if kind == "train":
            if nxt is None:
                plan.observe(train_done, wall)
            train_done += 1
        action = plan.boundary(train_done)
        if action == START:
            windows.append(plan.window)
            nxt = "warmup"
        elif action in (RECORD, CONTINUE):
            nxt = "recorded"
        elif action == STOP:
            nxt = "after"
        else:
            nxt = None
    return roles, windows


def periodic(n, every, fast=0.01, slow=0.1, first=None):
    """n train steps; train step i is slow when (i + 1) % every == 0."""
    return [("train", slow if (i + 1) % every == 0 or (first and i == 0) else fast)
            for i in range(n)]


def window_steps(roles, role):
    return sorted(i for i, r in roles.items() if r == role)


def test_typical_window_after_warmup_steps():
    plan = TracePlan(steps=3, warmup=5, windows=1)
    roles, windows = simulate(plan, [("train", 0.01)] * 15)
    assert [w["reason"] for w in windows] == ["typical"]
    assert window_steps(roles, "warmup") == [5]
    assert window_steps(roles, "recorded") == [6, 7, 8]
    assert window_steps(roles, "after") == [9]
    assert plan.finished


def test_no_window_before_warmup_steps():
    plan = TracePlan(steps=3, warmup=5)
    roles, windows = simulate(plan, [("train", 0.01)] * 4)
    assert windows == [] and roles == {}
    assert plan.boundary(5) == START  # after the 5th: the next step is the warm-up


def test_slow_window_predicts_the_next_periodic_slow_step():
    plan = TracePlan(steps=3, warmup=5, windows=2)
    roles, windows = simulate(plan, periodic(40, every=4))
    assert [w["reason"] for w in windows] == ["typical", "slow"]
    slow = windows[1]
    # slow steps 3, 7, 11, ...: 7 falls in the typical window (5-9), so 11, 15, 19
    # make the steady period and 23 is predicted
    assert slow["slow_train_steps"] == [11, 15, 19]
    assert slow["period"] == 4 and slow["predicted_train_step"] == 23
    assert window_steps(roles, "warmup") == [5, 22]
    assert window_steps(roles, "recorded") == [6, 7, 8, 23, 24, 25]
    assert window_steps(roles, "after") == [9, 26]
    assert plan.finished


def test_prediction_inside_the_typical_window_moves_to_the_next_period():
    plan = TracePlan(steps=3, warmup=20, windows=2)
    roles, windows = simulate(plan, periodic(40, every=4))
    # 23 is predicted but recorded by the typical window (20-24): the next, 27, is taken
    assert windows[1]["predicted_train_step"] == 27
    assert window_steps(roles, "recorded") == [21, 22, 23, 27, 28, 29]


def test_no_slow_window_without_a_steady_period():
    plan = TracePlan(steps=3, warmup=2, windows=2)
    seq = [("train", 0.1 if i in (12, 17, 23, 30, 38) else 0.01) for i in range(50)]
    roles, windows = simulate(plan, seq)
    assert [w["reason"] for w in windows] == ["typical"]
    assert plan.slow == [12, 17, 23, 30, 38] and plan.predicted is None


def test_small_or_relative_noise_is_not_slow():
    plan = TracePlan(steps=3, warmup=100, windows=2)
    # 3x the median but only 2 ms above it: under the absolute margin
    simulate(plan, [("train", 0.003 if (i + 1) % 4 == 0 else 0.001) for i in range(40)])
    assert plan.slow == []


def test_predicted_step_that_is_not_slow_cancels_the_prediction():
    plan = TracePlan(steps=3, warmup=0, windows=2)
    plan.state, plan.started = "idle", 1  # as after the typical window
    for i, wall in enumerate([0.01] * 5 + [0.1, 0.01, 0.01, 0.1, 0.01, 0.01, 0.1]):
        plan.observe(i, wall)
    assert plan.predicted == 14 and plan.period == 3
    plan.observe(14, 0.01)
    assert plan.predicted is None


def test_slow_window_waits_for_the_predicted_train_step_across_eval_steps():
    # epochs of 5 train steps and a 2-step validation; the first step of each epoch is slow
    seq = []
    for epoch in range(8):
        seq += [("train", 0.1 if i == 0 else 0.01) for i in range(5)] + [("eval", 0.005)] * 2
    plan = TracePlan(steps=3, warmup=2, windows=2)
    roles, windows = simulate(plan, seq)
    slow = windows[1]
    assert slow["period"] == 5 and slow["predicted_train_step"] == 25
    train_index = {}
    for idx, (kind, _) in enumerate(seq):
        if kind == "train":
            train_index[idx] = len(train_index)
    recorded = window_steps(roles, "recorded")[3:]  # after the typical window's 3
    assert [train_index.get(i) for i in recorded] == [None, None, 25]  # 2 eval steps, then it
    assert train_index[window_steps(roles, "warmup")[1]] == 24


def test_slow_window_is_capped_when_the_step_never_comes():
    plan = TracePlan(steps=3, warmup=0, windows=2)
    plan.state, plan.started = "idle", 1
    plan.predicted, plan.period = 5, 5
    seq = [("train", 0.01)] * 4 + [("eval", 0.01)] * 40
    roles, _ = simulate(plan, seq)
    assert len(window_steps(roles, "recorded")) == 3 + MAX_EXTRA


def test_options():
    assert options(None) is None and options({}) is None
    assert options(True) == {"steps": 3, "warmup": 5, "windows": 2}
    assert options({"steps": 4, "warmup": 0}) == {"steps": 4, "warmup": 0, "windows": 2}
    with pytest.raises(ValueError):
        options({"steps": 3, "warmup": -1})


# -- end to end ------------------------------------------------------------------

# until the CLI has --trace: the Profiler API around the script, in a subprocess
DRIVER = """
import json, runpy, sys
import nnprof
out, trace, script = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.argv = sys.argv[3:]
with nnprof.Profiler(out=out, trace=trace, progress=False, monitors=[], name="t",
                     script=script) as p:
    runpy.run_path(script, run_name="__main__")
"""


def profile_traced(out: Path, trace: dict, *args) -> dict:
    r = run_python(["-c", DRIVER, out, json.dumps(trace), SCRIPTS / "periodic_slow.py", *args])
    assert r.returncode == 0, r.stderr
    with open(out / "summary.json") as fh:
        return json.load(fh)


def read_trace(run_dir: Path) -> dict:
    with open(run_dir / "trace.json") as fh:
        return json.load(fh)


def profiler_steps(run_dir: Path, window: dict) -> list:
    """The ProfilerStep#N spans in a window's exported trace."""
    with open(run_dir / window["file"]) as fh:
        events = json.load(fh)["traceEvents"]
    return sorted(int(e["name"].split("#")[1]) for e in events
                  if str(e.get("name", "")).startswith("ProfilerStep#"))


EVERY = 4
SLOW_ARGS = ["--steps", "48", "--every", str(EVERY), "--slow", "0.08", "--step", "0.002"]


@pytest.fixture(scope="module")
def traced_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tb_trace") / "run"
    summary = profile_traced(out, {"steps": 3, "warmup": 5}, *SLOW_ARGS)
    return out, summary


def check_windows(out: Path, summary: dict) -> dict:
    """Typical window at 5 (warm-up) + 6-8; the slow window on a step that was slow."""
    import csv
    with open(out / "steps.csv") as fh:
        wall = {int(r["train_index"]): float(r["wall_s"]) for r in csv.DictReader(fh)}
    tr = read_trace(out)
    typical, slow = tr["windows"]
    assert typical["reason"] == "typical" and typical["complete"]
    assert typical["warmup_step"] == 5 and typical["steps"] == [6, 7, 8]
    assert typical["excluded_steps"] == [5, 6, 7, 8, 9]
    assert typical["worker"] == "typical-steps-6-8"
    assert profiler_steps(out, typical) == [6, 7, 8]
    # the slow window covers the predicted slow step, and it was one of the slow steps
    # (the sleep every 4 steps: with a DataLoader in train step i with (i + 1) % 4 == 0,
    # without one in the step after: a step ends at optimizer.step())
    assert slow["reason"] == "slow" and slow["complete"] and slow["period"] == EVERY
    p = slow["predicted_train_step"]
    assert p in slow["train_steps"] and wall[p] >= 0.08
    assert all(wall[i] >= 0.08 for i in slow["slow_train_steps"])
    assert slow["warmup_step"] == p - 1 and slow["steps"][0] == p  # train steps only here
    assert slow["worker"] == f"slow-steps-{p}-{p + 2}"
    assert profiler_steps(out, slow) == slow["steps"]
    for w in (typical, slow):
        assert (out / w["file"]).is_file() and "." not in w["worker"]
        assert w["file"].startswith(os.path.join("tensorboard", "trace", w["worker"] + "."))
        assert any(o["name"].startswith("aten::") for o in w["top_ops"])
    assert tr["excluded_steps"] == sorted(typical["excluded_steps"] + slow["excluded_steps"])
    return tr


@pytest.mark.slow
def test_windows_cover_typical_and_slow_steps(traced_run):
    out, summary = traced_run
    tr = check_windows(out, summary)
    assert (tr["windows"][1]["predicted_train_step"] + 1) % EVERY == 0


@pytest.mark.slow
def test_traced_steps_are_left_out_of_the_statistics(traced_run):
    out, s = traced_run
    excluded = read_trace(out)["excluded_steps"]
    assert s["trace"]["excluded_steps"] == excluded and len(excluded) == 10
    assert s["steps"]["train"] == 48  # counts keep every step
    assert s["budget"]["evidence"]["train_steps"] == 48 - 10
    assert any("traced by torch.profiler" in n for n in s["notices"]), s["notices"]
    assert [w["reason"] for w in s["trace"]["windows"]] == ["typical", "slow"]
    assert len(s["trace"]["windows"][0]["top_ops"]) <= 10
    text = render("terminal", s)
    assert "trace:" in text and "typical, steps 6-8" in text


@pytest.mark.slow
def test_loop_without_dataloader_places_windows_on_the_right_steps(tmp_path):
    # steps are handed over one step late there (held until the next optimizer step)
    out = tmp_path / "run"
    s = profile_traced(out, {"steps": 3, "warmup": 5}, *SLOW_ARGS, "--no-loader")
    check_windows(out, s)


@pytest.mark.slow
def test_run_ending_inside_a_window_saves_it(tmp_path):
    out = tmp_path / "run"
    s = profile_traced(out, {"steps": 3, "warmup": 5}, "--steps", "8", "--every", "100")
    (w,) = read_trace(out)["windows"]
    assert w["steps"] == [6, 7] and not w["complete"] and (out / w["file"]).is_file()
    assert any("ended inside the typical window" in n for n in s["notices"]), s["notices"]


@pytest.mark.slow
def test_run_too_short_for_a_window(tmp_path):
    out = tmp_path / "run"
    s = profile_traced(out, {"steps": 3, "warmup": 5}, "--steps", "6", "--every", "100")
    (w,) = read_trace(out)["windows"]  # it ended in the warm-up step
    assert w["file"] is None and w["steps"] == [] and w["excluded_steps"] == [5]
    assert any("no window was recorded" in n for n in s["notices"]), s["notices"]


def test_profiler_failure_is_one_notice(tmp_path, monkeypatch):
    def boom(self):
        raise RuntimeError("no profiler here\nsecond line")
    monkeypatch.setattr(torch.profiler.profile, "start", boom)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nnprof.Profiler(out=str(tmp_path / "run"), trace={"steps": 1, "warmup": 1},
                         progress=False, monitors=[]) as p:
        for _ in range(6):
            model(torch.ones(2, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
    s = p.summary()
    hits = [n for n in s["notices"] if n.startswith("--trace")]
    assert hits == ["--trace: torch.profiler failed, tracing stopped "
                    "(RuntimeError: no profiler here)"]
    assert s["steps"]["train"] == 6 and s["status"] == "completed"


def test_no_trace_no_tracer(tmp_path):
    model = nn.Linear(4, 1)
    with nnprof.Profiler(out=str(tmp_path / "run"), progress=False, monitors=[]) as p:
        for _ in range(3):
            model(torch.ones(2, 4)).sum().backward()
    assert p._tracer is None and p.summary()["trace"] is None
    assert not (tmp_path / "run" / "trace.json").exists()


# -- TensorBoard with the PyTorch Profiler plugin ------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, **params):
    url = f"http://127.0.0.1:{port}/data/plugin/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read().decode())


def _poll(fn, timeout=60.0):
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            got = fn()
            if got:
                return got
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for tensorboard ({last})")


@pytest.mark.slow
def test_tensorboard_plugin_lists_our_windows_and_scalars(traced_run):
    for mod in ("tensorboard", "torch_tb_profiler"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install torch-tb-profiler)")
    out, _ = traced_run
    windows = read_trace(out)["windows"]
    port = _free_port()
    log = open(out.parent / "tensorboard.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(out / "tensorboard"),
         "--port", str(port), "--bind_all", "--load_fast", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        runs = _poll(lambda: (lambda r: r if "trace" in r["runs"] and not r["loading"]
                              else None)(_get(port, "pytorch_profiler/runs")))
        assert runs["runs"] == ["trace"]
        assert "Overview" in _get(port, "pytorch_profiler/views", run="trace")
        workers = _get(port, "pytorch_profiler/workers", run="trace", view="Overview")
        assert sorted(workers) == sorted(w["worker"] for w in windows)
        for w in windows:
            spans = _get(port, "pytorch_profiler/spans", run="trace", worker=w["worker"])
            span = spans[0] if spans else None
            overview = _get(port, "pytorch_profiler/overview", run="trace", worker=w["worker"],
                            span=span)
            # the plugin's step breakdown has our steps, numbered as steps.csv
            assert [int(r[0]) for r in overview["steps"]["rows"]] == w["steps"]
            table = _get(port, "pytorch_profiler/operation/table", run="trace",
                         worker=w["worker"], span=span, group_by="Operation")
            assert any(row["name"].startswith("aten::") for row in table["data"])
        tags = _poll(lambda: (lambda t: t if "validation" in t or "train" in t else None)(
            _get(port, "scalars/tags")))
        assert {"step/wall_s", "phase/forward_s", "phase/backward_s", "train/loss"} <= \
            set(tags["train"])
        series = _get(port, "scalars/scalars", run="train", tag="step/wall_s")
        assert [p[1] for p in series] == list(range(48))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
