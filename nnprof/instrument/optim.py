"""Optimizer ``step`` (torch's global step hooks) and ``zero_grad``.

The global pre/post step hooks of ``torch.optim.optimizer`` fire for every
optimizer, built-in or custom, without wrapping each class. A step that
raises skips the post hook; the phase stack is then cleaned at the next step
boundary.
"""
from __future__ import annotations

import threading

import torch
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)

from .patching import Patches
from .steps import OPTIMIZER, StepClock, in_phase


def install(clock: StepClock, on_optimizer=None, probe=None) -> Patches:
    """``on_optimizer(opt)`` is called once per distinct optimizer that steps;
    ``probe.before_step(opt)`` / ``after_step(opt)`` around steps while
    ``probe.active`` (the wiring probe of the first steps)."""
    patches = Patches()
    get_ident = threading.get_ident
    seen: set = set()
    active: list = []

    def pre(opt, args, kwargs):
        if get_ident() != clock.thread_id:
            return None
        if id(opt) not in seen:
            seen.add(id(opt))
            if on_optimizer is not None:
                on_optimizer(opt)
        active.append(opt)
        clock.push(OPTIMIZER)
        if probe is not None and probe.active:
            probe.before_step(opt)  # charged to 'optimizer', first steps only
        return None

    def post(opt, args, kwargs):
        if get_ident() != clock.thread_id or not active:
            return None
        active.pop()
        clock.optimizer_step_exit(id(opt))
        if probe is not None and probe.active:
            probe.after_step(opt)
        return None

    h1 = register_optimizer_step_pre_hook(pre)
    h2 = register_optimizer_step_post_hook(post)
    patches.add_undo(h1.remove)
    patches.add_undo(h2.remove)

    patches.set(torch.optim.Optimizer, "zero_grad",
                in_phase(clock, OPTIMIZER, torch.optim.Optimizer.zero_grad))
    return patches
