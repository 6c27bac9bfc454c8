"""Reversible attribute patches: every hook is undone by its handle."""
from __future__ import annotations

import importlib
import threading

import torch


def compiling_check():
    """A function that returns True while ``torch.compile`` traces the code calling it,
    False otherwise (about 50 ns): Dynamo folds it to a constant without a guard, so a
    hook that tests it first is traced as a plain call of what it wraps, with no graph
    break and nothing of ours in the graph's guards. ``torch.compiler.is_compiling``
    since torch 2.3, ``torch._dynamo.is_compiling`` before."""
    fn = getattr(getattr(torch, "compiler", None), "is_compiling", None)
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
    wrapper.__wrapped__ = method
    wrapper.__name__ = getattr(method, "__name__", "wrapper")
    wrapper.__doc__ = getattr(method, "__doc__", None)
    return wrapper


class Patches:
    """A stack of ``setattr`` patches, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list = []

    def set(self, owner, name: str, value) -> object:
        """Replace ``owner.name`` with ``value``; return the original."""
        original = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ \
            else getattr(owner, name)
        had_own = not isinstance(owner, type) or name in owner.__dict__
        setattr(owner, name, value)
        self._undo.append((owner, name, original, had_own))
        return original

    def add_undo(self, fn) -> None:
        self._undo.append((None, None, fn, None))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original, had_own = self._undo.pop()
            if owner is None:
                original()
            elif had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
