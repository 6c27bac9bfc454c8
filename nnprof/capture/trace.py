"""``--trace``: torch.profiler over a few chosen steps, for TensorBoard's PyTorch Profiler.

nnprof's own clock says which phase of a step is slow; a torch.profiler trace
says which operators inside it. Tracing every step would slow the whole run,
so a :class:`Tracer` records at most ``windows`` short windows (default 2),
each of ``steps`` steps (default 3) after one torch-profiler warm-up step:

1. **typical**: once ``warmup`` train steps have run (default 5: past the
   start-up costs), the next step is the profiler's warm-up step and the
   ``steps`` after it are recorded.
2. **slow**, where it can be arranged. Train step times are watched outside
   the windows: a step is *slow* when its wall time is more than
   ``SLOW_FACTOR`` (2) x the median of the last ``HISTORY`` (64) watched train
   steps and at least ``SLOW_MARGIN_S`` (5 ms) above it. When the last three
   slow train steps are evenly spaced (two equal gaps of ``k`` >= 2 train
   steps: a checkpoint or a log every k steps, the first step of each epoch
   when epochs have a fixed length), the next one is predicted at
   ``last + k``: the train step before it is the warm-up step, and the window
   records from the predicted step on, until ``steps`` steps are recorded and
   the predicted train step is among them (at most ``steps + 8`` steps, should
   evaluation steps come in between). A predicted step that comes and is not
   slow cancels the prediction. Without a steady period there is no second
   window.

The schedule is our own: :class:`TracePlan` (pure, no torch) decides at each
step boundary, and :class:`Tracer` drives one ``torch.profiler.profile`` per
window (CPU activity, plus CUDA when available) whose ``schedule`` callable
returns the plan's current action (WARMUP, then RECORD). The Tracer calls
``prof.step()`` at each boundary of the window (from ``Profiler._emit``;
nothing is done per step when tracing is off, and little between windows)
and ``prof.stop()`` after its last step, which saves it. ``ProfilerStep#N``
in the trace is step ``index`` N of ``steps.csv``. (Kineto itself prints two
``USDT: ... profiler_start/stop`` lines to stderr per window.)

Each window is exported with ``torch.profiler.tensorboard_trace_handler`` into
``RUN/tensorboard/trace/`` as worker ``<reason>-steps-<first>-<last>`` (step
indices; no dots, so that torch-tb-profiler lists it), and ``trace.json``
gets, per window: the reason, the file, the warm-up and recorded step indices,
the steps it slowed (``excluded_steps``: the warm-up step, the recorded steps
and the step after them, which pays for the export) and the top operators by
self time from ``prof.key_averages()``. Those steps are left out of nnprof's
phase statistics, bottleneck and budget (``summary.py``), with a notice.

Which steps a window touched is decided by time (a step that overlaps the
window), so it is exact also where steps are reported one step late (loops
without a DataLoader hold a step back until the next optimizer step shows
whether it belongs to it); the boundary count that places the windows is
corrected for that held step. Any failure of the profiler ends tracing with
a one-line notice; the run goes on.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from typing import Callable, Optional

DEFAULT_STEPS = 3
DEFAULT_WARMUP = 5
DEFAULT_WINDOWS = 2
SLOW_FACTOR = 2.0
SLOW_MARGIN_S = 0.005
HISTORY = 64
MIN_HISTORY = 3
MAX_EXTRA = 8
TOP_OPS = 15
TRACE_DIR = os.path.join("tensorboard", "trace")

# plan actions at a boundary (what to do to the profiler before the next step)
START, RECORD, CONTINUE, STOP = "start", "record", "continue", "stop"


def options(trace) -> Optional[dict]:
    """Normalised ``{"steps", "warmup", "windows"}`` from the ``trace`` argument (None: off)."""
    if not trace:
        return None
    if trace is True:
        trace = {}
    out = {"steps": int(trace.get("steps") or DEFAULT_STEPS),
           "warmup": int(DEFAULT_WARMUP if trace.get("warmup") is None else trace["warmup"]),
           "windows": int(DEFAULT_WINDOWS if trace.get("windows") is None else trace["windows"])}
    if out["steps"] < 1 or out["warmup"] < 0 or out["windows"] < 1:
        raise ValueError(f"trace needs steps >= 1, warmup >= 0, windows >= 1, got {out}")
    return out


class TracePlan:
    """Where the windows go (see the module docstring); pure, so it is tested alone.

    Per step: :meth:`observe` for each finished train step that no window
    touched, then :meth:`boundary` once per step boundary, which returns what
    to do before the next step: ``START`` (begin a window: the next step is the
    profiler's warm-up), ``RECORD`` (start recording), ``CONTINUE`` (keep
    recording), ``STOP`` (the window is complete) or None.
    """

    def __init__(self, steps: int = DEFAULT_STEPS, warmup: int = DEFAULT_WARMUP,
                 windows: int = DEFAULT_WINDOWS, slow_factor: float = SLOW_FACTOR,
                 slow_margin_s: float = SLOW_MARGIN_S, history: int = HISTORY) -> None:
        self.steps = steps
        self.warmup = warmup
        self.windows = windows
        self.slow_factor = slow_factor
        self.slow_margin_s = slow_margin_s
        self.walls: deque = deque(maxlen=history)
        self.slow: list = []            # train indices of the slow steps seen
        self.predicted: Optional[int] = None
        self.period: Optional[int] = None
        self.state = "idle"             # idle, warmup, record, done
        self.window: Optional[dict] = None
        self.started = 0
        self.recorded = 0

    def observe(self, train_index: int, wall_s: float) -> bool:
        """A finished train step outside the windows; True when it was slow."""
        walls = self.walls
        slow = False
        if len(walls) >= MIN_HISTORY:
            med = statistics.median(walls)
            slow = wall_s > self.slow_factor * med and wall_s - med >= self.slow_margin_s
        walls.append(wall_s)
        if slow:
            self.slow.append(train_index)
            s = self.slow
            if len(s) >= 3 and s[-1] - s[-2] == s[-2] - s[-3] >= 2:
                self.period = s[-1] - s[-2]
                self.predicted = s[-1] + self.period
        elif self.predicted is not None and train_index == self.predicted and \
                self.state == "idle":
            self.predicted = self.period = None  # the period did not hold
        return slow

    def boundary(self, train_done: int) -> Optional[str]:
        """The action before the next step; ``train_done`` train steps have finished."""
        state = self.state
        if state == "idle":
            if self.started == 0:
                if train_done >= self.warmup:
                    return self._start({"reason": "typical"})
                return None
            if self.predicted is None:
                return None
            while self.predicted - 1 < train_done:   # passed (inside a window): the next one
                self.predicted += self.period
            if self.predicted - 1 == train_done:
                return self._start({"reason": "slow", "predicted_train_step": self.predicted,
                                    "period": self.period,
                                    "slow_train_steps": list(self.slow[-3:])})
            return None
        if state == "warmup":
            self.state, self.recorded = "record", 0
            return RECORD
        if state == "record":
            self.recorded += 1
            w = self.window
            done = self.recorded >= self.steps
            if w["reason"] == "slow":
                done = (done and train_done > w["predicted_train_step"]) or \
                    self.recorded >= self.steps + MAX_EXTRA
            if not done:
                return CONTINUE
            self.state = "done" if self.started >= self.windows else "idle"
            if w["reason"] == "slow":
                self.predicted = self.period = None
            return STOP
        return None

    def _start(self, window: dict) -> str:
        self.window = window
        self.started += 1
        self.state = "warmup"
        return START

    @property
    def finished(self) -> bool:
        return self.state == "done"


class Tracer:
    """Drives torch.profiler from the step boundaries as :class:`TracePlan` says.

    ``clock`` is the run's :class:`nnprof.instrument.steps.StepClock` (its
    ``last`` is the time of the boundary being handled); ``notices`` the
    run's notice list. ``on_step`` is called for every step record, in order.
    """

    def __init__(self, run_dir: str, notices: list, clock, steps: int = DEFAULT_STEPS,
                 warmup: int = DEFAULT_WARMUP, windows: int = DEFAULT_WINDOWS,
                 now: Callable[[], int] = time.perf_counter_ns) -> None:
        self.run_dir = run_dir
        self.trace_dir = os.path.join(run_dir, TRACE_DIR)
        self.notices = notices
        self.clock = clock
        self.now = now
        self.settings = {"steps": steps, "warmup": warmup, "windows": windows}
        self.plan = TracePlan(steps, warmup, windows)
        self.active = True
        self.windows: list = []     # dicts written to trace.json
        self._prof = None
        self._cur: Optional[dict] = None
        self._n = 0                 # records seen = steps.csv index of the next record
        self._n_train = 0
        self._last_boundary = None
        self._first_recorded = 0
        self._error: Optional[str] = None
        self._finished = False

    # -- per step ------------------------------------------------------------
    def on_step(self, rec) -> None:
        try:
            self._on_step(rec)
        except Exception as exc:  # never into the script
            self._fail(exc)

    def _on_step(self, rec) -> None:
        idx = self._n
        self._n += 1
        train_idx = None
        if rec.kind == "train":
            train_idx = self._n_train
            self._n_train += 1
        touched = False
        for w in self.windows:
            role = _role(w["_t"], rec.start, rec.end)
            if role is not None:
                touched = True
                w["excluded_steps"].append(idx)
                if role == "warmup":
                    w["warmup_step"] = idx
                elif role == "recorded":
                    w["steps"].append(idx)
                    if train_idx is not None:
                        w["train_steps"].append(train_idx)
        if not touched and train_idx is not None:
            self.plan.observe(train_idx, (rec.end - rec.start) / 1e9)
        if self.plan.finished and self._prof is None:
            last = self.windows[-1]["_t"] if self.windows else None
            if last is None or rec.start >= last["b"]:
                self.active = False  # nothing more can be touched
            return
        boundary = getattr(self.clock, "last", None)
        if boundary is not None and boundary == self._last_boundary:
            return  # a second record handed over at the same boundary
        self._last_boundary = boundary
        # a step closed at this boundary but held back is not handed over yet
        pending = 1 if boundary is not None and rec.end < boundary else 0
        action = self.plan.boundary(self._n_train + pending)
        if action is not None:
            self._act(action, self._n + pending)

    def _act(self, action: str, next_index: int) -> None:
        t = self.now()
        if action == START:
            self._start_window(next_index, t)
        elif action == RECORD:
            self._cur["_t"]["r"] = t
            self._first_recorded = next_index
            self._prof.step()
        elif action == CONTINUE:
            self._prof.step()
        elif action == STOP:
            w = self._cur
            w["_t"]["s"] = t
            w["worker"] = f"{w['reason']}-steps-{self._first_recorded}-{next_index - 1}"
            prof, self._prof = self._prof, None
            try:
                prof.stop()  # RECORD -> stop: the trace is saved (on_trace_ready)
                w["complete"] = w["file"] is not None
            finally:
                w["_t"]["b"] = self.now()
                self._cur = None
                self._write()

    def _start_window(self, next_index: int, t: int) -> None:
        import torch
        from torch.profiler import ProfilerAction, ProfilerActivity, profile
        plan = self.plan
        w = dict(plan.window)
        w.update({"worker": None, "file": None, "warmup_step": None, "steps": [],
                  "train_steps": [], "excluded_steps": [], "complete": False, "top_ops": [],
                  "_t": {"a": t, "r": math.inf, "s": math.inf, "b": math.inf}})
        self.windows.append(w)
        self._cur = w
        actions = {"warmup": ProfilerAction.WARMUP, "record": ProfilerAction.RECORD}

        def schedule(_step: int):  # our plan decides; torch's step number is not used
            return actions.get(plan.state, ProfilerAction.NONE)
        acts = [ProfilerActivity.CPU]
        if torch.cuda.is_available() and \
                ProfilerActivity.CUDA in torch.profiler.supported_activities():
            acts.append(ProfilerActivity.CUDA)
        prof = profile(activities=acts, schedule=schedule, on_trace_ready=self._ready)
        prof.step_num = next_index  # ProfilerStep#N = steps.csv index N
        self._prof = prof
        prof.start()

    def _ready(self, prof) -> None:
        """on_trace_ready: export for TensorBoard, summarise the operators."""
        import torch
        w = self._cur
        name = w["worker"]
        if not name:
            return
        os.makedirs(self.trace_dir, exist_ok=True)
        before = set(os.listdir(self.trace_dir))
        torch.profiler.tensorboard_trace_handler(self.trace_dir, worker_name=name)(prof)
        made = sorted(f for f in set(os.listdir(self.trace_dir)) - before
                      if f.startswith(name + "."))
        if made:
            w["file"] = os.path.join(TRACE_DIR, made[-1])
        w["top_ops"], w["profiled_ms"] = top_ops(prof.key_averages())

    # -- end of run ----------------------------------------------------------
    def finish(self) -> None:
        """Stop a window still open (saved if it was recording) and write ``trace.json``."""
        if self._finished:
            return
        self._finished = True
        try:
            self._finish()
        except Exception as exc:  # never costs the summary
            self._fail(exc)

    def _finish(self) -> None:
        prof, self._prof = self._prof, None
        if prof is not None:
            w = self._cur
            w["_t"]["s"] = w["_t"]["b"] = self.now()
            if w["steps"]:  # else it ended before recording: nothing is saved
                w["worker"] = f"{w['reason']}-steps-{w['steps'][0]}-{w['steps'][-1]}"
            try:
                prof.stop()
            except Exception as exc:
                self._fail(exc)
            if w.get("file"):
                w["complete"] = False
                self.notices.append(f"--trace: the run ended inside the {w['reason']} window; "
                                    f"it was saved with the steps recorded so far.")
        self._cur = None
        self.active = False
        if not any(w.get("file") for w in self.windows) and self._error is None:
            self.notices.append(
                f"--trace: no window was recorded: the run ended before "
                f"{self.settings['warmup']} warm-up train steps and the window after them.")
        self._write()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._error = f"{exc.__class__.__name__}: {first}".rstrip(": ")
            self.notices.append(f"--trace: torch.profiler failed, tracing stopped "
                                f"({self._error})")
        prof, self._prof = self._prof, None
        self.active = False
        if prof is not None:
            try:
                prof.stop()
            except Exception:
                pass
        if self._cur is not None:
            self._cur["_t"]["b"] = self.now()
            self._cur["_t"]["s"] = min(self._cur["_t"]["s"], self._cur["_t"]["b"])
            self._cur = None
        try:
            self._write()
        except Exception:
            pass

    def result(self) -> dict:
        windows = [{k: v for k, v in w.items() if k != "_t"} for w in self.windows]
        excluded = sorted({i for w in windows for i in w["excluded_steps"]})
        return {"settings": self.settings, "windows": windows, "excluded_steps": excluded,
                "error": self._error}

    def _write(self) -> None:
        from ..rundir import write_json
        write_json(os.path.join(self.run_dir, "trace.json"), self.result())


def _role(t: dict, start: int, end: int) -> Optional[str]:
    """How a step [start, end] relates to a window's times (ns): a = profiler
    started (warm-up), r = recording started, s = stop began, b = saved."""
    if end <= t["a"] or start >= t["b"]:
        return None
    if end <= t["r"]:
        return "warmup"
    if end <= t["s"]:
        return "recorded"
    return "after"


def top_ops(averages, n: int = TOP_OPS):
    """(top operators, profiled step time in ms) from ``prof.key_averages()``.

    Operators are ranked by self device time when any was recorded, else by
    self CPU time; ``ProfilerStep*`` (the steps' spans) gives the profiled time.
    """
    ops, step_us = [], 0.0
    for e in averages:
        key = str(e.key)
        if key.startswith("ProfilerStep"):  # "ProfilerStep*": the steps themselves
            step_us += float(e.cpu_time_total)
            continue
        ops.append({"name": key, "calls": int(e.count),
                    "self_cpu_ms": float(e.self_cpu_time_total) / 1e3,
                    "cpu_total_ms": float(e.cpu_time_total) / 1e3,
                    "self_device_ms": float(getattr(e, "self_device_time_total", 0.0)) / 1e3})
    by_device = any(o["self_device_ms"] > 0 for o in ops)
    key = "self_device_ms" if by_device else "self_cpu_ms"
    ops.sort(key=lambda o: o[key], reverse=True)
    if not by_device:
        for o in ops:
            del o["self_device_ms"]
    return ops[:n], step_us / 1e3
