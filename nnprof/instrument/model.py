"""Forward and loss detection.

``nn.Module.__call__`` is patched at class level: the outermost module call of
the main thread is the ``forward`` phase; any module that is a loss (a
subclass of ``nn.modules.loss._Loss``, or a parameter-free module whose class
is named like a loss) is the ``loss`` phase, also when a model computes its
loss inside its own forward. Functional losses in ``torch.nn.functional`` are
patched too. A nested module call takes no more Python frames than without
nnprof (the hook does the two lines of torch's own dispatcher itself) plus the
``torch.compile`` guard, an attribute read and a dict lookup on its class: no
global module hook is registered, since such a hook forces every submodule onto
torch's slow call path. Under ``torch.compile`` every hook is a plain call of
what it wraps (see ``patching.compiling_check``).
"""
from __future__ import annotations

import sys
import threading
import types

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .patching import (Patches, compiling_check, in_phase_eager, keep_eager, look_like,
                       not_a_frame_root)
from .steps import LOSS, OPTIMIZER, StepClock

FUNCTIONAL_LOSSES = tuple(sorted(
    name for name in dir(F)
    if (name.endswith("_loss") or name in (
        "cross_entropy", "nll_loss", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "kl_div", "mse_loss", "l1_loss"))
    and callable(getattr(F, name)) and not name.startswith("_")
))


_UNSEEN = object()  # not 0: False == 0, so a model would be classified again at every call


def _named_like_loss(cls) -> bool:
    name = cls.__name__.lower()
    return "loss" in name or "criterion" in name


def _classify(module):
    """True: a loss; False: a model; None: decide from its first output."""
    if isinstance(module, _Loss):
        return True
    if next(module.parameters(), None) is not None:
        return False
    if _named_like_loss(type(module)):
        return True
    return None


def _loss_class(cls):
    """For calls inside a forward: True: a loss; None: a loss if parameter-free; False."""
    if issubclass(cls, _Loss):
        return True
    return None if _named_like_loss(cls) else False


def _is_scalar(out) -> bool:
    return isinstance(out, torch.Tensor) and out.numel() == 1 and out.is_floating_point()


def loss_name(cls) -> str:
    """The class name, or that of the nearest torch loss class it derives from."""
    for c in cls.__mro__:
        if c.__module__.startswith("torch.nn") and issubclass(c, _Loss) and c is not _Loss:
            return c.__name__
    return cls.__name__


def eager_submodules(module) -> int:
    """Submodule calls that one forward of ``module`` makes through ``Module.__call__``:
    none for a compiled module (``torch.compile(model)``, ``model.compile()``), whose
    submodules run inside its graph."""
    if getattr(module, "_compiled_call_impl", None) is not None or (
            type(module).__name__ == "OptimizedModule" and hasattr(module, "_orig_mod")):
        return 0
    return sum(1 for _ in module.modules()) - 1


FORWARD_WATCH = 3  # top-level model calls passed to ``on_forward``


def _direct_forward(frame):
    """The class of the module whose ``forward`` is running in ``frame`` (the caller
    of a top-level module call), or None: a module called from the ``forward`` of
    another that is not itself being called (``layer.forward(x)`` called directly)."""
    try:
        if frame is None or frame.f_code.co_name != "forward":
            return None
        owner = frame.f_locals.get("self")
    except Exception:
        return None
    return type(owner).__name__ if isinstance(owner, torch.nn.Module) else None


def _ours(clock, replay, *callbacks) -> list:
    """The functions a patched module call may run of nnprof's: the clock's and the
    replay's methods, and the callbacks' (a function, a bound method, or a callable
    object's methods), to be kept out of ``torch.compile``'s frames (``keep_eager``)."""
    def methods(obj):
        return [f for f in vars(type(obj)).values() if isinstance(f, types.FunctionType)]
    fns = methods(clock) + (methods(replay) if replay is not None else [])
    for cb in callbacks:
        fn = getattr(cb, "__func__", cb)
        if isinstance(fn, types.FunctionType):
            fns.append(fn)
        elif cb is not None:
            fns += methods(cb)
    return fns


def install(clock: StepClock, on_module=None, observer=None, on_forward=None,
            replay=None, on_direct=None, meter=None, on_calls=None) -> Patches:
    """Patch module calls, functional losses and ``Module.zero_grad``.

    A top-level module is a loss when it subclasses ``_Loss``, or has no
    parameters and either is named like a loss or returns a scalar tensor
    (decided at its first call, whose time then moves from forward to loss).
    A module called inside a forward is a loss by the same rules but the last
    (its output is not looked at: that would cost every submodule call).

    ``on_module(module, is_loss)`` is called once per distinct top-level module
    or loss module (for model discovery by later analyses);
    ``observer(name, args, kwargs, result, reduction)`` after each outermost
    loss call (``reduction``: the module's or the call's, None if unknown);
    ``on_forward(module)`` at the first ``FORWARD_WATCH`` top-level model calls
    (inside the script's autocast context, if any); ``replay`` (an overfit rung
    without a DataLoader, :mod:`.replay`) gives train forwards and loss calls their
    arguments. ``on_direct(class_name)``: a module's ``forward`` was called directly
    (``self.forward(x)``, not ``self(x)``), seen at the first top-level call of a
    module made from it; that forward's own work is then in no ``forward`` phase.
    ``on_calls(module, n)``: the ``n`` module calls made inside each of those first
    top-level model calls (a cell called at every time step counts each time, a
    compiled model's submodules, run inside its graph, not at all).
    """
    patches = Patches()
    get_ident = threading.get_ident
    compiling = compiling_check()
    is_grad_enabled = torch.is_grad_enabled
    seen: set = set()

    def note(module, is_loss):
        key = id(module)
        if key not in seen:
            seen.add(key)
            if on_module is not None:
                on_module(module, is_loss)

    kinds: dict = {}  # id(module) -> True (loss) | False (model) | None (undecided)
    nested_kinds: dict = {}  # class -> True | False | None (a loss when parameter-free)
    parts: set = set()  # the classes of nested_kinds known to be no loss (a set: cheaper)
    held: set = set()   # the classes of parts, set aside while a forward's calls are counted
    filed = [parts]     # where nested_loss files a class it finds to be no loss

    def nested_loss(module) -> bool:
        """Only reached for classes not yet known to be no loss (and, while a forward's
        calls are counted, for every class)."""
        counted[0] += 1
        kind = nested_kinds.get(type(module), _UNSEEN)
        if kind is _UNSEEN:
            kind = nested_kinds[type(module)] = _loss_class(type(module))
            if kind is False:
                filed[0].add(type(module))
        if kind is None:
            return next(module.parameters(), None) is None
        return kind

    names: dict = {}
    watch = [FORWARD_WATCH if on_forward is not None or on_calls is not None else 0]
    counted = [0]  # nested calls that reached nested_loss (all of them while counting)

    def count_start() -> None:
        """Count the module calls of the forward starting now: with ``parts`` emptied,
        every one of them passes through nested_loss (no patch is swapped: what
        torch.compile sees and guards on stays the same)."""
        held.update(parts)
        parts.clear()
        filed[0] = held
        counted[0] = 0

    def count_end(module) -> None:
        parts.update(held)
        held.clear()
        filed[0] = parts
        on_calls(module, counted[0])

    def call_loss(self, args, kwargs):
        outer = not (clock.stack and clock.stack[-1] == LOSS)
        if replay is not None and outer and is_grad_enabled():
            args, kwargs = replay.loss_call(args, kwargs, clock.in_forward)
        clock.push(LOSS).n_loss += 1  # clock.loss_enter(), one frame less
        try:
            if direct and self._compiled_call_impl is None:  # one frame less, as below
                result = self._call_impl(*args, **kwargs)
            else:
                result = original_call(self, *args, **kwargs)
        finally:
            clock.pop()
        if observer is not None and outer:
            cls = type(self)
            name = names.get(cls)
            if name is None:
                name = names[cls] = loss_name(cls)
            observer(name, args, kwargs, result, getattr(self, "reduction", None))
        return result

    def module_call(self, *args, **kwargs):
        # first: under torch.compile the hook is traced as a plain call (see patching)
        if compiling():
            return original_call(self, *args, **kwargs)
        if clock.in_forward:
            if type(self) in parts:  # the common case: a model's part
                if direct and self._compiled_call_impl is None:
                    return self._call_impl(*args, **kwargs)
                return original_call(self, *args, **kwargs)
            if get_ident() != clock.thread_id or not nested_loss(self):
                return original_call(self, *args, **kwargs)
            return call_loss(self, args, kwargs)
        if get_ident() != clock.thread_id:
            return original_call(self, *args, **kwargs)
        kind = kinds.get(id(self), _UNSEEN)
        if kind is _UNSEEN:
            kind = kinds[id(self)] = _classify(self)
            if on_direct is not None:
                owner = _direct_forward(sys._getframe(1))
                if owner is not None:
                    on_direct(owner)
            if kind is not None:  # an undecided one is noted once its output decides
                note(self, kind)
        if kind is True:
            return call_loss(self, args, kwargs)
        counting = False
        if watch[0]:
            watch[0] -= 1
            if on_forward is not None:
                on_forward(self)
            counting = on_calls is not None
        grad = is_grad_enabled()
        if grad and meter is not None and not meter.done:  # a few train steps only
            meter.forward_start(clock.train_steps, args, kwargs, self)
        if replay is not None and grad:
            args, kwargs = replay.inputs(self, args, kwargs)
        clock.forward_enter(grad, id(self))
        if counting:  # from here the finally below ends the count
            count_start()
        result = None
        try:
            if direct and self._compiled_call_impl is None:  # one frame less, as below
                result = self._call_impl(*args, **kwargs)
            else:
                result = original_call(self, *args, **kwargs)
            if replay is not None and grad:
                replay.output(result)
            if grad and meter is not None and not meter.done:
                meter.forward_end(clock.train_steps, result)
            return result
        finally:
            if kind is None and _is_scalar(result):
                # a parameter-free module that returned a scalar: a custom loss
                kinds[id(self)] = True
                note(self, True)
                clock.forward_exit(as_loss=True)
            else:
                if kind is None:
                    kinds[id(self)] = False
                    note(self, False)
                clock.forward_exit()
            if counting:
                count_end(self)

    # the patched call is no frame of Dynamo's own (its logs name the user's forward,
    # as under plain python); what it calls of ours is never compiled either, and the
    # loss module a top-level loss call runs is compiled as under plain python
    not_a_frame_root(module_call)
    not_a_frame_root(call_loss)
    keep_eager(nested_loss, note, _classify, _is_scalar, _direct_forward, count_start,
               count_end, *_ours(clock, replay, observer, on_module, on_forward, on_direct,
                                 meter, on_calls))
    original_call = patches.set(torch.nn.Module, "__call__", module_call)
    # a submodule call then skips torch's own dispatcher (``_wrapped_call_impl``: its
    # compiled call if any, else ``_call_impl``), doing its two lines itself: one
    # Python frame less per submodule call
    direct = original_call is getattr(torch.nn.Module, "_wrapped_call_impl", None)

    def make_loss(fn):
        name = fn.__name__

        def functional_loss(*args, **kwargs):
            if compiling():
                return fn(*args, **kwargs)
            stack = clock.stack
            if stack and stack[-1] == LOSS or get_ident() != clock.thread_id:
                return fn(*args, **kwargs)  # inside a loss module already
            if replay is not None and is_grad_enabled():
                args, kwargs = replay.loss_call(args, kwargs, clock.in_forward)
            clock.push(LOSS).n_loss += 1  # clock.loss_enter(), one frame less
            try:
                result = fn(*args, **kwargs)
            finally:
                clock.pop()
            if observer is not None:
                observer(name, args, kwargs, result, kwargs.get("reduction"))
            return result
        keep_eager(functional_loss)
        look_like(functional_loss, fn)
        return functional_loss

    for name in FUNCTIONAL_LOSSES:
        patches.set(F, name, make_loss(getattr(F, name)))

    patches.set(torch.nn.Module, "zero_grad",
                in_phase_eager(clock, OPTIMIZER, torch.nn.Module.zero_grad))
    return patches
