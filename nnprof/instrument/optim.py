"""Optimizer ``step`` (torch's global step hooks) and ``zero_grad``.

The global pre/post step hooks of ``torch.optim.optimizer`` fire for every
optimizer, built-in or custom, without wrapping each class. A step that
raises skips the post hook; the phase stack is then cleaned at the next step
boundary.
"""
from __future__ import annotations

import threading
import weakref

import torch
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .patching import Patches, compiling_check, in_phase_eager, keep_eager
from .steps import OPTIMIZER, StepClock


def install(clock: StepClock, on_optimizer=None, probe=None) -> Patches:
    """``on_optimizer(opt)`` is called once per distinct optimizer that steps;
    ``probe.before_step(opt)`` / ``after_step(opt)`` around steps while
    ``probe.active`` (the wiring probe of the first steps)."""
    patches = Patches()
    get_ident = threading.get_ident
    compiling = compiling_check()  # a compiled optimizer step is not seen
    active: list = []
    alive: dict = {}  # id -> weak reference: a dict's get is C, a WeakValueDictionary's is not
    pairs: dict = {}

    def params_of(opt) -> set:
        return {id(p) for g in opt.param_groups for p in g["params"]}

    def partners(a: int, b: int) -> bool:
        """Optimizers that share no parameter can be a pair that steps together (a GAN's
        D and G); one over the same parameters as the other replaced it."""
        key = (a, b)
        known = pairs.get(key)
        if known is None:
            ra, rb = alive.get(a), alive.get(b)
            oa, ob = ra() if ra is not None else None, rb() if rb is not None else None
            if oa is None or ob is None:
                return True
            try:
                known = not (params_of(oa) & params_of(ob))
            except Exception:
                known = True
            pairs[key] = known
        return known
    clock.partners = partners

    def pre(opt, args, kwargs):
        if compiling() or get_ident() != clock.thread_id:
            return None
        ref = alive.get(id(opt))
        if ref is None or ref() is not opt:  # first step of this optimizer
            alive[id(opt)] = weakref.ref(opt)  # Optimizer has a __dict__: weakly referable
            for k in [k for k in pairs if id(opt) in k]:  # an id reused by a new optimizer
                del pairs[k]
            if on_optimizer is not None:
                on_optimizer(opt)
        active.append(opt)
        clock.push(OPTIMIZER)
        if probe is not None and probe.active:
            probe.before_step(opt)  # charged to 'optimizer', first steps only
        return None

    def post(opt, args, kwargs):
        if compiling() or get_ident() != clock.thread_id or not active:
            return None
        active.pop()
        clock.optimizer_step_exit(id(opt))
        if probe is not None and probe.active:
            probe.after_step(opt)
        return None

    keep_eager(pre, post)
    h1 = register_optimizer_step_pre_hook(pre)
    h2 = register_optimizer_step_post_hook(post)
    patches.add_undo(h1.remove)
    patches.add_undo(h2.remove)

    patches.set(torch.optim.Optimizer, "zero_grad",
                in_phase_eager(clock, OPTIMIZER, torch.optim.Optimizer.zero_grad))
    return patches
