"""LR schedulers: which ones the script builds; switched off in overfit rungs."""
from __future__ import annotations

import types

from torch.optim import lr_scheduler

from .patching import Patches


def _classes():
    # ReduceLROnPlateau does not run LRScheduler.__init__ even where it derives from it
    base = getattr(lr_scheduler, "LRScheduler", None) or lr_scheduler._LRScheduler
    return [base, lr_scheduler.ReduceLROnPlateau]


def install(on_scheduler=None, disable: bool = False) -> Patches:
    """``on_scheduler(s)`` after each scheduler is built; ``disable``: ``step()``
    keeps the learning rate as it is (and ``get_last_lr()`` working)."""
    patches = Patches()
    seen: set = set()

    def frozen_step(self, *args, **kwargs):
        self.last_epoch = getattr(self, "last_epoch", -1) + 1
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def make_init(original):
        def init(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if id(self) not in seen:
                seen.add(id(self))
                if disable:  # also for subclasses with a step() of their own
                    self.step = types.MethodType(frozen_step, self)
                if on_scheduler is not None:
                    on_scheduler(self)
        return init

    for cls in _classes():
        patches.set(cls, "__init__", make_init(cls.__dict__["__init__"]))
    if disable:  # the step run inside __init__ too
        for cls in _classes():
            if "step" in cls.__dict__:
                patches.set(cls, "step", frozen_step)
    return patches
