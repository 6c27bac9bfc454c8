"""Forward and loss detection.

``nn.Module.__call__`` is patched at class level: the outermost module call of
the main thread is the ``forward`` phase; any module that is a loss (a
subclass of ``nn.modules.loss._Loss``) is the ``loss`` phase, also when a model
computes its loss inside its own forward. Functional losses in
``torch.nn.functional`` are patched too. A nested module call costs one Python
frame and two attribute reads: no global module hook is registered, since such
a hook forces every submodule onto torch's slow call path.
"""
from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .patching import Patches
from .steps import LOSS, OPTIMIZER, StepClock

FUNCTIONAL_LOSSES = tuple(sorted(
    name for name in dir(F)
    if (name.endswith("_loss") or name in (
        "cross_entropy", "nll_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "kl_div", "mse_loss", "l1_loss"))
    and callable(getattr(F, name)) and not name.startswith("_")
))


def _classify(module):
    """True: a loss; False: a model; None: decide from its first output."""
    if isinstance(module, _Loss):
        return True
    if next(module.parameters(), None) is not None:
        return False
    name = type(module).__name__.lower()
    if "loss" in name or "criterion" in name:
        return True
    return None


def _is_scalar(out) -> bool:
    return isinstance(out, torch.Tensor) and out.numel() == 1 and out.is_floating_point()


def install(clock: StepClock, on_module=None) -> Patches:
    """Patch module calls, functional losses and ``Module.zero_grad``.

    A top-level module is a loss when it subclasses ``_Loss``, or has no
    parameters and either is named like a loss or returns a scalar tensor
    (decided at its first call, whose time then moves from forward to loss).

    ``on_module(module, is_loss)`` is called once per distinct top-level module
    or loss module (for model discovery by later analyses).
    """
    patches = Patches()
    get_ident = threading.get_ident
    is_grad_enabled = torch.is_grad_enabled
    seen: set = set()

    def note(module, is_loss):
        key = id(module)
        if key not in seen:
            seen.add(key)
            if on_module is not None:
                on_module(module, is_loss)

    kinds: dict = {}  # id(module) -> True (loss) | False (model) | None (undecided)

    def module_call(self, *args, **kwargs):
        if clock.in_forward or get_ident() != clock.thread_id:
            if clock.in_forward and isinstance(self, _Loss) and get_ident() == clock.thread_id:
                clock.push(LOSS)
                try:
                    return original_call(self, *args, **kwargs)
                finally:
                    clock.pop()
            return original_call(self, *args, **kwargs)
        kind = kinds.get(id(self), 0)
        if kind == 0:
            kind = kinds[id(self)] = _classify(self)
            note(self, kind is True)
        if kind is True:
            clock.push(LOSS)
            try:
                return original_call(self, *args, **kwargs)
            finally:
                clock.pop()
        clock.forward_enter(is_grad_enabled())
        result = None
        try:
            result = original_call(self, *args, **kwargs)
            return result
        finally:
            if kind is None and _is_scalar(result):
                # a parameter-free module that returned a scalar: a custom loss
                kinds[id(self)] = True
                clock.forward_exit(as_loss=True)
            else:
                if kind is None:
                    kinds[id(self)] = False
                clock.forward_exit()

    original_call = patches.set(torch.nn.Module, "__call__", module_call)

    def make_loss(fn):
        def functional_loss(*args, **kwargs):
            if get_ident() != clock.thread_id:
                return fn(*args, **kwargs)
            clock.push(LOSS)
            try:
                return fn(*args, **kwargs)
            finally:
                clock.pop()
        functional_loss.__wrapped__ = fn
        functional_loss.__name__ = fn.__name__
        functional_loss.__doc__ = fn.__doc__
        return functional_loss

    for name in FUNCTIONAL_LOSSES:
        patches.set(F, name, make_loss(getattr(F, name)))

    original_zero_grad = torch.nn.Module.zero_grad

    def module_zero_grad(self, *args, **kwargs):
        if get_ident() != clock.thread_id:
            return original_zero_grad(self, *args, **kwargs)
        clock.push(OPTIMIZER)
        try:
            return original_zero_grad(self, *args, **kwargs)
        finally:
            clock.pop()

    patches.set(torch.nn.Module, "zero_grad", module_zero_grad)
    return patches
