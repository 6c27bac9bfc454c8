"""The floor of a Python-hook profiler: what hooks alone cost, with no bookkeeping.

``installed()`` puts a pass-through hook at every point where nnprof hooks a plain
training loop, each as thin as a hook can be and still tell the phases apart: the
``torch.compile`` guard nnprof's hooks also test first, the thread test, and a clock
read appended to a list at each phase boundary (the outermost module call, ``zero_grad``,
the functional losses, ``torch.autograd.backward``, the optimizer's step pre- and
post-hooks, and a DataLoader iterator's ``__next__``). No step is formed, no phase
charged, nothing written. ``benchmarks/overhead.py`` times it beside nnprof (tool
``floor``): the difference is what nnprof's own bookkeeping costs, and the floor is what
no design with Python hooks at these points could go under on the machine measured.

``event_log(DIR)`` is the same hooks as an event log, to price the
design that ``docs/measured.md`` names as the next step: each phase boundary appends
its phase code and the time; every 16 steps (an optimizer step ends a step) the events
are folded into each step's seven phase times in one tight loop, and formatted and
written as ``steps.csv`` rows with nnprof's own row format. No loss is followed, no
step state machine runs (a loader, accumulation, evaluation steps): it is a lower
bound of such a design, not a profiler (tool ``eventlog`` in ``overhead.py``).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time

import torch
import torch.nn.functional as F
from torch.utils.data import dataloader

from nnprof.instrument.model import FUNCTIONAL_LOSSES
from nnprof.instrument.patching import compiling_check
from nnprof.rundir.phases import BACKWARD, DATA, FORWARD, LOSS, OPTIMIZER, OTHER
from nnprof.session import _NO_GPU, _ROW, FLUSH_ROWS

POP, END = -1, -2  # event codes besides the phases: a phase ends; a step ends


class _Folder:
    """Every FLUSH_ROWS steps: the flat event log (code, ns, code, ns, ...) folded into
    each step's phase times, formatted as steps.csv rows and written."""

    def __init__(self, out: str, t0: int) -> None:
        self.fd = os.open(os.path.join(out, "steps.csv"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                          0o644)
        self.t0 = self.start = self.last = t0
        self.stack: list = []
        self.phases = [0] * 7
        self.n = 0

    def __call__(self, log: list) -> None:
        stack, phases, last, t0 = self.stack, self.phases, self.last, self.t0
        lines = []
        it = iter(log)
        for code, t in zip(it, it):
            phases[stack[-1] if stack else OTHER] += t - last
            last = t
            if code == POP:
                if stack:
                    stack.pop()
            elif code == END:
                ph, wall = phases, t - self.start
                lines.append(_ROW % (
                    self.n, "train", str(self.n), (self.start - t0) * 1e-9, wall * 1e-9,
                    ph[0] * 1e-9, ph[1] * 1e-9, ph[2] * 1e-9, ph[3] * 1e-9, ph[4] * 1e-9,
                    ph[5] * 1e-9, ph[6] * 1e-9, 0.0, 0.0, 0.0, "", "", False, 1, 1, 1,
                    _NO_GPU, "", False, "", "", "", ""))
                self.n += 1
                self.start = t
                phases = [0] * 7
            else:
                stack.append(code)
        log.clear()
        self.phases, self.last = phases, last
        os.write(self.fd, "".join(lines).encode())

    def close(self) -> None:
        os.close(self.fd)


def _original(owner, name):
    return owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)


def _patcher(undo: list):
    """``patch(owner, name, new)``: sets it, returns the original, notes the undoing."""
    def patch(owner, name, new):
        old = _original(owner, name)
        setattr(owner, name, new)
        undo.append(lambda: setattr(owner, name, old))
        return old
    return patch


@contextlib.contextmanager
def installed():
    compiling = compiling_check()
    clock, tid, ident = time.perf_counter_ns, threading.get_ident(), threading.get_ident
    log: list = []
    state = [False]  # inside a top-level module call
    undo = []
    patch = _patcher(undo)

    original_call = torch.nn.Module.__call__

    def module_call(self, *args, **kwargs):
        if compiling():
            return original_call(self, *args, **kwargs)
        if state[0] or ident() != tid:
            return original_call(self, *args, **kwargs)
        state[0] = True
        log.append(clock())
        try:
            return original_call(self, *args, **kwargs)
        finally:
            state[0] = False
            log.append(clock())
    patch(torch.nn.Module, "__call__", module_call)

    def timed(fn):
        def hook(*args, **kwargs):
            if compiling() or ident() != tid:
                return fn(*args, **kwargs)
            log.append(clock())
            try:
                return fn(*args, **kwargs)
            finally:
                log.append(clock())
        return hook
    for owner, name in ((torch.optim.Optimizer, "zero_grad"), (torch.nn.Module, "zero_grad"),
                        (torch.autograd, "backward"),
                        (dataloader._BaseDataLoaderIter, "__next__")):
        patch(owner, name, timed(_original(owner, name)))
    for name in FUNCTIONAL_LOSSES:
        patch(F, name, timed(getattr(F, name)))

    def step_hook(opt, args, kwargs):
        if compiling() or ident() != tid:
            return None
        log.append(clock())
        return None
    with _step_hooks(step_hook, step_hook, undo):
        yield log


@contextlib.contextmanager
def _step_hooks(pre, post, undo: list):
    """The optimizer's global step hooks ``pre`` and ``post`` while the block runs; then
    those removed and the patches undone (``undo``, last first)."""
    from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                       register_optimizer_step_pre_hook)
    handles = [register_optimizer_step_pre_hook(pre), register_optimizer_step_post_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for u in reversed(undo):
            u()


@contextlib.contextmanager
def event_log(out: str):
    """The same hook points as :func:`installed`, as an event log folded into written
    steps every FLUSH_ROWS steps (see the module docstring)."""
    compiling = compiling_check()
    clock, tid, ident = time.perf_counter_ns, threading.get_ident(), threading.get_ident
    log: list = []
    push = log.append
    fold = _Folder(out, clock())
    steps = [0]
    state = [False]  # inside a top-level module call
    undo = []
    patch = _patcher(undo)

    # written out as installed()'s are, not shared with them: a shared hook would time a
    # call more than either design makes
    def module_call(self, *args, **kwargs):
        if compiling():
            return original_call(self, *args, **kwargs)
        if state[0] or ident() != tid:
            return original_call(self, *args, **kwargs)
        state[0] = True
        push(FORWARD)
        push(clock())
        try:
            return original_call(self, *args, **kwargs)
        finally:
            state[0] = False
            push(POP)
            push(clock())
    original_call = patch(torch.nn.Module, "__call__", module_call)

    def timed(fn, phase):
        def hook(*args, **kwargs):
            if compiling() or ident() != tid:
                return fn(*args, **kwargs)
            push(phase)
            push(clock())
            try:
                return fn(*args, **kwargs)
            finally:
                push(POP)
                push(clock())
        return hook
    for owner, name, phase in ((torch.optim.Optimizer, "zero_grad", OPTIMIZER),
                               (torch.nn.Module, "zero_grad", OPTIMIZER),
                               (torch.autograd, "backward", BACKWARD),
                               (dataloader._BaseDataLoaderIter, "__next__", DATA)):
        patch(owner, name, timed(_original(owner, name), phase))
    for name in FUNCTIONAL_LOSSES:
        patch(F, name, timed(getattr(F, name), LOSS))

    def pre(opt, args, kwargs):
        if compiling() or ident() != tid:
            return None
        push(OPTIMIZER)
        push(clock())
        return None

    def post(opt, args, kwargs):
        if compiling() or ident() != tid:
            return None
        now = clock()
        push(POP)
        push(now)
        push(END)
        push(now)
        steps[0] += 1
        if steps[0] % FLUSH_ROWS == 0:
            fold(log)
        return None
    try:
        with _step_hooks(pre, post, undo):
            yield log
    finally:
        fold.close()
