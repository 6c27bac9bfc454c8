"""nnprof's own cost per step, estimated from calibrated hook costs.

At the end of a run (after the run's hooks are removed) the hooks' real code is
timed for a few tens of milliseconds against a scratch :class:`StepClock`, each
hook against the bare call it wraps, one call at a time between small bursts of
tensor work (as in a real step, where the hooks meet cold caches):

* ``phase_ns``: a phase wrapper (``zero_grad``, loss, backward, optimizer step),
  i.e. the ``torch.compile`` guard, an extra Python frame or two and a push/pop of
  the phase clock (timed on the ``Module.zero_grad`` hook itself);
* ``forward_ns``: an outermost module call (opens the forward phase);
* ``nested_ns``: a module called inside a forward (the fast path; a compiled
  model's submodules make no such call, see ``model.eager_submodules``);
* ``step_ns``: closing one step and opening the next.

The estimate for a step is the sum of those costs times the hook calls the step
made (from ``steps.csv``: forwards, backwards, optimizer steps; and the module
calls counted inside the models' first forwards, see ``model.install``'s
``on_calls``: a cell called at every time step counts each time), plus the
measured time spent writing its row (``record_ns_per_step``: timed live, two clock
reads per step). Loader-side costs in worker processes and the samplers' threads are
not in it. ``benchmarks/overhead.py`` prints it next to the measured overhead.
"""
from __future__ import annotations

import sys
import time
from typing import Optional

import torch

from .steps import OPTIMIZER, StepClock

SAMPLES = 150


class _Evictor:
    """A small forward and backward of plain tensor ops (no module calls, no hooks of
    ours), run between two timed calls so that each call meets the cold caches it
    meets in a real training step. Timed back to back, hooks cost about a third."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 128, generator=g)
        self.w1 = torch.randn(128, 256, generator=g, requires_grad=True)
        self.w2 = torch.randn(256, 8, generator=g, requires_grad=True)

    def __call__(self) -> None:
        with torch.enable_grad():
            self.x.mm(self.w1).relu().mm(self.w2).sum().backward()
        self.w1.grad = self.w2.grad = None


def _cold(fn, arg, evict, n: int = SAMPLES) -> float:
    """Lower-quartile ns of one ``fn(arg)`` call, each call after an eviction (the
    quartile rather than the median: calls cut by another process taking the core
    are the slow ones, and they say nothing about our code)."""
    clock = time.perf_counter_ns
    times = []
    for _ in range(n):
        evict()
        t = clock()
        fn(arg)
        times.append(clock() - t)
    times.sort()
    return float(times[len(times) // 4])


def calibrate() -> dict:
    """ns per hook call on this machine, now. Must run with no nnprof hooks installed
    (it patches ``nn.Module.__call__`` for a few milliseconds, with a scratch clock)."""
    from . import model as model_hooks
    sink = []
    clock = StepClock(sink.append)
    evict = _Evictor()

    def noop(_):
        return None
    out = {}

    def step(_):
        clock.push(OPTIMIZER)
        clock.optimizer_step_exit(1)
        sink.clear()
    step(None)
    out["step_ns"] = _cold(step, None, evict) - _cold(noop, None, evict)

    inner = torch.nn.Identity()
    outer = torch.nn.Linear(1, 1)
    x = torch.zeros(1, 1)

    def zero_grad(m):  # a real phase hook (torch.compile guard, frame, push/pop)
        m.zero_grad()
    bare_inner, bare_outer = _cold(inner, x, evict), _cold(outer, x, evict)
    bare_phase = _cold(zero_grad, inner, evict)
    patches = model_hooks.install(clock)
    try:
        out["phase_ns"] = _cold(zero_grad, inner, evict) - bare_phase
        clock.in_forward = True
        out["nested_ns"] = _cold(inner, x, evict) - bare_inner
        clock.in_forward = False
        out["forward_ns"] = _cold(outer, x, evict) - bare_outer
    finally:
        patches.uninstall()
        clock.in_forward = False
    return {k: round(max(0.0, v), 1) for k, v in out.items()}


def estimate(costs: dict, steps, modules_per_model: Optional[float],
             row_ns: Optional[float]) -> Optional[dict]:
    """nnprof's estimated time per step from ``costs`` (see :func:`calibrate`) and the
    hook calls of the steps in ``steps`` (a steps.csv frame)."""
    if not costs or steps is None or not len(steps):
        return None
    mean = steps[["n_forward", "n_backward", "n_optimizer"]].fillna(0).mean()
    fwd, bwd, opt = float(mean["n_forward"]), float(mean["n_backward"]), float(mean["n_optimizer"])
    loader = float((steps["loader"].notna() & (steps["loader"].astype(str) != "")).mean()) \
        if "loader" in steps.columns else 0.0
    modules = float(modules_per_model or 0.0)
    # zero_grad and the step hook per optimizer step, loss and backward per backward,
    # next() and the fetcher per loader batch
    phase_calls = 2 * opt + 2 * bwd + 2 * loader
    parts = {
        "phase_hooks_s": phase_calls * costs.get("phase_ns", 0.0) * 1e-9,
        "forward_hooks_s": fwd * costs.get("forward_ns", 0.0) * 1e-9,
        "submodule_calls_s": fwd * modules * costs.get("nested_ns", 0.0) * 1e-9,
        "step_bookkeeping_s": costs.get("step_ns", 0.0) * 1e-9,
        "recording_s": (row_ns or 0.0) * 1e-9,
    }
    per_step = sum(parts.values())
    wall = float(steps["wall_s"].mean())
    return {"per_step_s": per_step, "share": per_step / wall if wall > 0 else None,
            "parts": parts, "calls_per_step": {
                "phase": phase_calls, "forward": fwd, "submodule": fwd * modules},
            "costs_ns": costs, "basis": "calibrated hook costs x hook calls per step"}


def python_work(fn, n: int) -> tuple:
    """(Python bytecodes, Python calls) that ``fn(n)`` executes in this thread, counted
    by a trace function: no timing in it, so the same on every run. Tracing is slow; it
    replaces any trace function (a debugger's, coverage's) for the call."""
    counts = [0, 0]

    def local(frame, event, arg):
        if event == "opcode":
            counts[0] += 1
        return local

    def tracer(frame, event, arg):
        counts[1] += 1
        frame.f_trace_opcodes = True
        return local
    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn(n)
    finally:
        sys.settrace(old)
    return counts[0], counts[1]


def python_work_per_step(run, n: int = 16) -> tuple:
    """(bytecodes, calls) per step of ``run(k)`` (k steps): the difference of ``2n`` and
    ``n`` steps, so that what a call costs once (a framework's set-up) cancels."""
    a, b = python_work(run, n), python_work(run, 2 * n)
    return (b[0] - a[0]) / n, (b[1] - a[1]) / n
