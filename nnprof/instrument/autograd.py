"""Backward: ``torch.autograd.backward`` (which ``Tensor.backward`` calls) and
``torch.autograd.grad``.

The step's loss is the loss the script computed: the output of its loss
function or module (seen by the loss observer, ``losses.LossObserver``) when
the tensor ``backward()`` is called on is that output scaled by a constant
(``accelerator.backward``, gradient accumulation's ``loss / k``, a
``GradScaler``); otherwise the backward tensor itself (a sum of several
losses, a loss computed by hand). Which one is decided from the autograd
graph alone (see ``LossObserver.unscaled``), without reading a value. It is
kept (detached, no copy on CPU) and read when the step is written, never in
the hot path on CUDA (see ``cuda.LossCopies``).
"""
from __future__ import annotations

import threading
import time

import torch

from .patching import Patches, compiling_check, keep_eager
from .steps import BACKWARD, StepClock


def install(clock: StepClock, capture_loss=None, observer=None, comm=None,
            meter=None) -> Patches:
    """``capture_loss(tensor)`` turns a scalar tensor into a loss reference;
    ``observer.unscaled(tensor)`` (optional) maps a backward tensor to the loss
    output it scales; ``comm`` (a ``comm.CommWait``, optional) measures the wait for
    collectives at the end of each backward under torch.distributed."""
    patches = Patches()
    now_ns = time.perf_counter_ns

    def timed_backward(original, tensors, args, kwargs):
        """The outermost backward, with the wait for collectives at its end noted
        (called where ``comm_active()`` said a process group of several ranks exists)."""
        root = tensors if isinstance(tensors, torch.Tensor) else \
            tensors[0] if isinstance(tensors, (list, tuple)) and tensors else None
        handle = comm.arm(root)
        t_in = now_ns()
        try:
            result = original(tensors, *args, **kwargs)
        finally:
            comm.disarm(handle)
        clock.add_comm_wait(comm.gap(t_in, now_ns()))
        return result
    comm_active = comm.active if comm is not None else None
    get_ident = threading.get_ident
    unscaled = getattr(observer, "unscaled", None)
    compiling = compiling_check()  # traced by torch.compile: a plain call

    def loss_ref(t):
        mine = t  # the script's tensor: whether it stays alive tells of a leak
        if unscaled is not None:
            t = unscaled(t)  # also lets go of the losses it was matched against
        if capture_loss is None or type(t) is not float and (  # float: a CPU loss's value
                not isinstance(t, torch.Tensor) or t.numel() != 1):
            return None
        return capture_loss(t, mine)

    def autograd_backward(tensors, *args, **kwargs):
        if compiling():
            return original_autograd_backward(tensors, *args, **kwargs)
        if get_ident() != clock.thread_id or clock.stack and clock.stack[-1] == BACKWARD:
            return original_autograd_backward(tensors, *args, **kwargs)
        first = tensors[0] if isinstance(tensors, (list, tuple)) and len(tensors) == 1 else tensors
        if meter is not None and not meter.done:
            meter.backward_start(clock.train_steps, tensors)
        clock.backward_enter(loss_ref(first))
        try:
            if comm_active is None or not comm_active():
                return original_autograd_backward(tensors, *args, **kwargs)
            return timed_backward(original_autograd_backward, tensors, args, kwargs)
        finally:
            clock.pop()

    original_autograd_backward = patches.set(torch.autograd, "backward", autograd_backward)

    def autograd_grad(*args, **kwargs):
        if compiling():
            return original_grad(*args, **kwargs)
        if get_ident() != clock.thread_id or clock.stack and clock.stack[-1] == BACKWARD:
            return original_grad(*args, **kwargs)
        clock.backward_enter(None, counts=False)
        try:
            return original_grad(*args, **kwargs)
        finally:
            clock.pop()

    original_grad = patches.set(torch.autograd, "grad", autograd_grad)
    keep_eager(autograd_backward, autograd_grad)
    return patches
