"""In a followed process (:mod:`.follow`): its own run, started when it imports torch
(exec, spawn) or when its ``multiprocessing`` target starts (spawn, forkserver, fork),
ended at its exit or when the target returns, then named and recorded
(:func:`.processes.place`). SIGTERM ends it as it would, once its run is written.

Reached from the boot file (``boot/_nnprof_boot.py``) by name; imports nothing of
:mod:`.follow`.
"""
from __future__ import annotations

import atexit
import os
import sys
import time
from typing import Optional

from ..instrument import active
from .processes import _command, _note_first_train, config, place

_RUN: Optional[dict] = None  # {"profiler", "pid", "top", "staging", "kind", "started"}


def start_process(until: str = "exit", kind: Optional[str] = None) -> None:
    """Profile this process from now on (``until``: ``exit``, at interpreter exit, or
    ``process``, when :func:`end_process` is called after a multiprocessing target)."""
    global _RUN
    cfg = config()
    if cfg is None or (_RUN is not None and _RUN["pid"] == os.getpid()):
        return
    _RUN = None  # a fork of a followed process: that run is its parent's
    inherited = active.current()
    if inherited is not None:  # forked from a profiled process: its hooks went quiet
        try:
            inherited.uninstall()
        except Exception:
            return
    from ..session import Profiler
    top = cfg["top"]
    staging = os.path.join(top, f".proc-{os.getpid()}")
    command = _command()
    if until == "process" or not sys.argv or sys.argv[0] in ("", "-c"):
        script, argv = cfg.get("script"), list(cfg.get("argv") or [])  # the job's script
    else:
        script, argv = sys.argv[0], list(sys.argv[1:])
    profiler = Profiler(out=staging, budget=cfg.get("budget", 1.0), name="proc",
                        script=script, argv=argv,
                        progress=False, monitors=cfg.get("monitors") or [],
                        monitor_options=cfg.get("monitor_options") or {})
    kind = kind or ("exec" if until == "exit" else "spawn")
    profiler.meta_extra = {"follow": {"kind": kind, "parent_pid": os.getppid(),
                                      "command": command, "trained": False}}
    profiler.on_first_train = lambda: _note_first_train(profiler)
    started = time.time()
    profiler.before_summary = lambda: place(profiler, top, staging, kind, started)
    try:
        profiler.start()
    except Exception:
        return
    _RUN = {"profiler": profiler, "pid": os.getpid(), "top": top, "staging": staging,
            "kind": kind, "term": _take_sigterm()}
    if until == "exit":
        atexit.register(_at_exit)


def _take_sigterm():
    """SIGTERM ends a followed process as it would (killed by the signal), once its run
    is written: a Pool's workers are terminated at its end, torchrun stops the other
    ranks when one fails. Taken only where the signal would kill the process anyway
    (no handler of the script's own); returns the handler to put back, or None."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL and not getattr(current, "_nnprof_term", False):
            return None
        signal.signal(signal.SIGTERM, _on_sigterm)
        return current
    except (ValueError, OSError):
        return None


_TERM = {"stopping": False, "pending": False}


def _on_sigterm(signum, frame) -> None:
    if _TERM["stopping"]:  # the run is being written: the signal waits until it is
        _TERM["pending"] = True
        return
    end_process(None, status="interrupted")
    _die_of_sigterm()


def _die_of_sigterm() -> None:
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _at_exit() -> None:
    crashed = getattr(sys, "last_exc", None) is not None or \
        getattr(sys, "last_type", None) is not None
    end_process(1 if crashed else None)


def end_process(code: Optional[int], status: Optional[str] = None) -> None:
    """Finish this process's followed run (its exit code when known)."""
    global _RUN
    run = _RUN
    if run is None or run["pid"] != os.getpid():
        return
    _RUN = None
    status = status or ("completed" if code in (0, None) else "crashed")
    _TERM["stopping"] = True
    try:
        run["profiler"].stop(status, code, shutdown_workers=True)
    except Exception:
        pass
    finally:
        _TERM["stopping"] = False
    if _TERM["pending"]:
        _die_of_sigterm()
    if run.get("term") is not None and status != "interrupted":
        import signal
        try:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, run["term"])
        except (ValueError, OSError):
            pass


def run_process(process, original, args, kwargs) -> int:
    """A multiprocessing child (spawn, forkserver or fork) profiled around its target."""
    start_process("process", kind="fork" if _forked() else "spawn")
    code = original(process, *args, **kwargs)
    end_process(code)
    return code


def _forked() -> bool:
    return active.current() is not None
