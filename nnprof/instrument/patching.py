"""Reversible attribute patches: every hook is undone by its handle."""
from __future__ import annotations

import functools
import importlib
import threading
import types
import weakref

import torch


def compiling_check():
    """A function that returns True while ``torch.compile`` traces the code calling it,
    False otherwise: Dynamo folds it to a constant without a guard, so a hook that tests
    it first is traced as a plain call of what it wraps, with no graph break and nothing
    of ours in the graph's guards. ``torch.compiler.is_dynamo_compiling`` where it
    exists (torch 2.3 and later: one frame that returns False, about 50 ns, a dozen
    calls per step), else ``torch.compiler.is_compiling``, else
    ``torch._dynamo.is_compiling``. (Non-strict ``torch.export``, where this says
    False, calls modules through torch.fx's own patched call, not ours.)"""
    compiler = getattr(torch, "compiler", None)
    fn = getattr(compiler, "is_dynamo_compiling", None) or \
        getattr(compiler, "is_compiling", None)
    if fn is None:
        try:
            fn = importlib.import_module("torch._dynamo").is_compiling
        except (ImportError, AttributeError):  # a torch without Dynamo
            def fn() -> bool:
                return False
    return fn


def keep_eager(*fns) -> None:
    """Never let ``torch.compile`` compile these hooks (nor what they call) as frames of
    their own: called from the eager remainder of a compiled function (after a graph
    break, e.g. at ``backward()``), they then run as plain Python and see the call,
    instead of being compiled with their ``compiling_check`` folded to True (invisible)
    or broken at our clock reads (a graph break that plain python would not have).
    Where they are inlined into a traced graph, ``compiling_check`` keeps them out of
    it. Uses a private API of torch's frame evaluator (torch 2.6 and later); a no-op
    where it is missing."""
    try:
        from torch._C._dynamo import eval_frame as frames
        strategy = frames._FrameExecStrategy(frames._FrameAction.SKIP,
                                             frames._FrameAction.SKIP)
        for fn in fns:
            frames.set_code_exec_strategy(fn.__code__, strategy)
    except (ImportError, AttributeError, TypeError, RuntimeError):
        pass


def not_a_frame_root(fn) -> None:
    """Never let ``torch.compile`` start a frame of its own at ``fn`` (the patched
    ``Module.__call__``), while the frames it calls are compiled as usual: as under
    plain python, where torch's own ``_call_impl`` is skipped, Dynamo's frame is then
    the user's ``forward``, so its logs (``TORCH_LOGS=recompiles``) and guards name
    that function and its arguments, not ours. Same private API as :func:`keep_eager`;
    a no-op where it is missing."""
    try:
        from torch._C._dynamo import eval_frame as frames
        strategy = frames._FrameExecStrategy(frames._FrameAction.SKIP,
                                             frames._FrameAction.DEFAULT)
        frames.set_code_exec_strategy(fn.__code__, strategy)
    except (ImportError, AttributeError, TypeError, RuntimeError):
        pass


def in_phase_eager(clock, phase: int, method):
    """``method`` charged to ``phase`` when called from the clock's thread, and a
    plain call of it where ``torch.compile`` traces the call: one frame, for hooks
    such as ``zero_grad`` that compiled code may call."""
    compiling = compiling_check()
    get_ident = threading.get_ident

    def wrapper(self, *args, **kwargs):
        if compiling() or get_ident() != clock.thread_id:
            return method(self, *args, **kwargs)
        clock.push(phase)
        try:
            return method(self, *args, **kwargs)
        finally:
            clock.pop()
    keep_eager(wrapper)
    look_like(wrapper, method)
    return wrapper


def look_like(wrapper, original) -> None:
    """``wrapper`` reads as ``original`` to ``inspect`` and to libraries that introspect
    (Lightning and accelerate rebuild a DataLoader from ``inspect.signature`` of its
    ``__init__``): name, qualname, module, docstring, attributes, and ``__wrapped__``,
    through which ``inspect.signature`` finds the original's parameters."""
    if isinstance(wrapper, types.FunctionType) and callable(original):
        functools.update_wrapper(wrapper, original)


# every live Patches, so that a test can walk all that nnprof has put in place
_LIVE: "weakref.WeakSet" = weakref.WeakSet()


def installed() -> list:
    """(owner, name, original, replacement) of every patch in place now."""
    out = []
    for patches in list(_LIVE):
        out.extend((o, n, orig, new) for o, n, orig, new in patches.applied())
    return out


class Patches:
    """A stack of ``setattr`` patches, undone in reverse order. A function put in place
    of a function is made to look like it (:func:`look_like`)."""

    def __init__(self) -> None:
        self._undo: list = []
        _LIVE.add(self)

    def set(self, owner, name: str, value) -> object:
        """Replace ``owner.name`` with ``value``; return the original."""
        original = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ \
            else getattr(owner, name)
        had_own = not isinstance(owner, type) or name in owner.__dict__
        look_like(value, original)
        setattr(owner, name, value)
        self._undo.append((owner, name, original, had_own, value))
        return original

    def applied(self) -> list:
        """(owner, name, original, replacement) of the patches in place."""
        return [(o, n, orig, new) for o, n, orig, _, new in self._undo if o is not None]

    def add_undo(self, fn) -> None:
        self._undo.append((None, None, fn, None, None))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original, had_own, _ = self._undo.pop()
            if owner is None:
                original()
            elif had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
