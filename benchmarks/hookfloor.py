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
"""
from __future__ import annotations

import contextlib
import threading
import time

import torch
import torch.nn.functional as F
from torch.utils.data import dataloader

from nnprof.instrument.model import FUNCTIONAL_LOSSES
from nnprof.instrument.patching import compiling_check


@contextlib.contextmanager
def installed():
    compiling = compiling_check()
    clock, tid, ident = time.perf_counter_ns, threading.get_ident(), threading.get_ident
    log: list = []
    state = [False]  # inside a top-level module call
    undo = []

    def original(owner, name):
        return owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

    def patch(owner, name, new):
        old = original(owner, name)
        setattr(owner, name, new)
        undo.append(lambda: setattr(owner, name, old))

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
        patch(owner, name, timed(original(owner, name)))
    for name in FUNCTIONAL_LOSSES:
        patch(F, name, timed(getattr(F, name)))

    def step_hook(opt, args, kwargs):
        if compiling() or ident() != tid:
            return None
        log.append(clock())
        return None
    from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                       register_optimizer_step_pre_hook)
    handles = [register_optimizer_step_pre_hook(step_hook),
               register_optimizer_step_post_hook(step_hook)]
    try:
        yield log
    finally:
        for h in handles:
            h.remove()
        for u in reversed(undo):
            u()
