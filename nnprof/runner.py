"""Run a script or module exactly as ``python`` would, under a Profiler.

The script sees ``__name__ == "__main__"``, its own ``sys.argv``, its folder as
``sys.path[0]`` and the caller's working directory. Its exit is recorded and
given back: ``sys.exit(n)`` -> n, an uncaught exception -> its traceback
(without our frames) and 1, Ctrl-C -> 130, SIGTERM -> 143, a
``--max-steps``/``--max-time`` stop -> 0.
"""
from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import os
import re
import runpy
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass
from typing import Optional

from .instrument import StopRun

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))
_RUNPY = os.path.abspath(runpy.__file__)


class TargetError(Exception):
    """The script or module cannot be run; the message is one line."""


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that the run is finalised."""


@dataclass
class Target:
    path: Optional[str] = None
    module: Optional[str] = None
    args: tuple = ()

    @property
    def name(self) -> str:
        if self.module:
            return self.module.rsplit(".", 1)[-1]
        return os.path.splitext(os.path.basename(self.path))[0] or "run"

    @property
    def display(self) -> str:
        return f"-m {self.module}" if self.module else self.path


def validate(target: Target) -> None:
    """Raise TargetError for a missing script, a folder, or a syntax error."""
    if target.module is not None:
        try:
            spec = module_spec(target.module)
        except (ImportError, ValueError) as exc:
            raise TargetError(f"cannot find module {target.module!r}: {exc}") from None
        except Exception as exc:  # a parent package's __init__ failed while being imported
            raise TargetError(f"cannot find module {target.module!r}: "
                              f"{type(exc).__name__}: {exc}") from None
        if spec is None:
            raise TargetError(f"no module named {target.module!r}")
        return
    path = target.path
    if not os.path.exists(path):
        raise TargetError(f"script not found: {path}")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "__main__.py")):
            return
        raise TargetError(f"{path} is a directory, not a script")
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        compile(source, path, "exec")
    except SyntaxError as exc:
        raise TargetError(f"syntax error in {path}, line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise TargetError(f"cannot compile {path}: {exc}") from None


def module_spec(name: str):
    """``find_spec`` as ``python -m`` sees it: the working directory first on sys.path.

    The ``nnprof`` console script starts with its own bin folder there instead.
    """
    saved = sys.path[:1]
    sys.path[0:1] = [os.getcwd()]
    try:
        return importlib.util.find_spec(name)
    finally:
        sys.path[0:1] = saved


def _ours(filename: str) -> bool:
    f = os.path.abspath(filename)
    return f.startswith(_OWN_DIR + os.sep) or f == _RUNPY or filename.startswith("<frozen runpy")


_FRAME_LINE = re.compile(r'^( *)File "([^"\n]+)", line \d+, in ')


def drop_own_frames(text: str) -> str:
    """A formatted traceback without the frames of nnprof's wrappers: those between
    the script's frames (a hooked ``Module.__call__``, ``backward``, ``__next__``)
    and those inside a loader worker's traceback that the DataLoader re-raises as
    text. A frame is its ``File ...`` line and the lines indented below it."""
    out, skip_below = [], None
    for line in text.splitlines(keepends=True):
        if skip_below is not None:
            body = line.lstrip(" ")
            if body.strip() and len(line) - len(body) > skip_below:
                continue
            skip_below = None
        m = _FRAME_LINE.match(line)
        if m and _ours(m.group(2)):
            skip_below = len(m.group(1))
            continue
        out.append(line)
    return "".join(out)


def print_script_traceback(exc: BaseException) -> None:
    """The traceback python would print, without nnprof's and runpy's frames."""
    tb = exc.__traceback__
    while tb is not None and _ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    sys.stdout.flush()
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    inner = tb
    while inner is not None and inner.tb_next is not None:
        inner = inner.tb_next
    if inner is None or not _ours(inner.tb_frame.f_code.co_filename):
        text = drop_own_frames(text)  # else nnprof raised it: its frames say where
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def exec_script(path: str) -> None:
    """Run a file as ``python path`` does: an absolute ``__file__``, ``__package__``
    None, a fresh ``__main__`` module in ``sys.modules`` while it runs (so that
    pickling and spawned workers find the script's classes)."""
    with open(path, "rb") as fh:
        code = compile(fh.read(), path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __package__=None, __spec__=None,
                         __builtins__=builtins,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _expect_worker_deaths() -> None:
    """The script is over: torch's SIGCHLD handler must no longer raise "DataLoader
    worker ... is killed by signal" into nnprof (into the traceback being printed,
    or the finalisation of the run). A Ctrl-C or SIGTERM sent to the process group
    reaches the loader workers too, and a crashed loader's other workers die with
    it; python, for its part, prints its traceback or dies of the SIGTERM without
    running Python signal handlers."""
    if hasattr(signal, "SIGCHLD") and threading.current_thread() is threading.main_thread():
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        except (ValueError, OSError):
            pass


RETRY_TERM_S = 0.05


def _in_finalizer(frame, depth: int = 64) -> bool:
    """Whether the interrupted code runs inside a ``__del__`` (a finalizer)."""
    while frame is not None and depth > 0:
        if frame.f_code.co_name == "__del__":
            return True
        frame, depth = frame.f_back, depth - 1
    return False


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


@dataclass
class Outcome:
    status: str
    exit_code: int
    stop_reason: Optional[str] = None


def run(target: Target) -> Outcome:
    """Execute the target in this process; never raises for the script's own errors."""
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        owner = os.getpid()

        def on_term(signum, frame):
            if os.getpid() != owner:
                # a forked child (a multiprocessing Pool worker being terminated, a
                # loader worker): it dies of the signal silently, as under python
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            # the process is ending. Loader workers die of the same signal, and torch's
            # SIGCHLD handler would raise "worker killed by signal" in the iterator's
            # __del__ as it is collected on the way out (printed as an ignored
            # exception): plain python, dead already, never shows that
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            except (ValueError, OSError, AttributeError):
                pass
            if _in_finalizer(frame):
                # Python prints and drops an exception raised in a __del__ (a DataLoader
                # iterator shutting its workers down when collected): the run would go on.
                # Ask again once the finalizer is over.
                retry = threading.Timer(RETRY_TERM_S, _signal, (owner, signal.SIGTERM))
                retry.daemon = True
                retry.start()
                return
            raise Terminated()
        on_term._nnprof_term = True  # a forked child may take it over (distributed.follow)
        try:
            old_term = signal.signal(signal.SIGTERM, on_term)
        except (ValueError, OSError):
            old_term = None
    try:
        if target.module is not None:
            sys.path[0:1] = [os.getcwd()]
            spec = importlib.util.find_spec(target.module)
            sys.argv = [spec.origin or target.module, *target.args]
            runpy.run_module(target.module, run_name="__main__", alter_sys=True)
        else:
            path = os.path.abspath(target.path)
            sys.argv = [target.path, *target.args]
            folder = path if os.path.isdir(path) else os.path.dirname(path)
            if sys.path:
                sys.path[0] = folder
            else:
                sys.path.insert(0, folder)
            if os.path.isdir(path):
                runpy.run_path(target.path, run_name="__main__")
            else:
                exec_script(path)
        return Outcome("completed", 0)
    except StopRun as exc:
        return Outcome("stopped", 0, str(exc))
    except SystemExit as exc:
        code = exit_code_of(exc)
        return Outcome("completed" if code == 0 else "crashed", code)
    except KeyboardInterrupt:
        _expect_worker_deaths()
        sys.stdout.flush()
        print("KeyboardInterrupt", file=sys.stderr)
        return Outcome("interrupted", 130)
    except Terminated:
        _expect_worker_deaths()
        return Outcome("interrupted", 143)
    except BaseException as exc:  # the script's own crash
        _expect_worker_deaths()
        print_script_traceback(exc)
        return Outcome("crashed", 1)
    finally:
        _expect_worker_deaths()
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
        if old_term is not None:
            try:
                signal.signal(signal.SIGTERM, old_term)
            except (ValueError, OSError):
                pass
