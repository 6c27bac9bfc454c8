"""Every Python process of a profiled job, followed: whatever started it (Lightning
running ``sys.argv`` again for its other ranks, ``mp.spawn`` and ``ddp_spawn``,
Hogwild ``mp.Process`` workers, torchrun or ``accelerate launch`` run under nnprof, the
script's own ``subprocess``), a process that trains is profiled as a run of its own
inside the job's run directory, and the runs are merged.

How a process is reached (the references are coverage.py's start-up hook for
subprocesses and py-spy's ``--subprocesses``):

* **exec and spawn**: the profiled process puts ``boot/`` first on ``PYTHONPATH`` and
  says in ``NNPROF_FOLLOW`` where the job's run is. Python then runs
  ``boot/sitecustomize.py`` at the start of every child (standard library only), which
  arms the triggers described there; nnprof itself is imported only once the child
  imports torch, or a ``multiprocessing`` child starts its target.
* **fork**: ``multiprocessing``'s ``BaseProcess._bootstrap`` is patched in the profiled
  process (and by the boot file in followed ones), so a forked child that is not a
  DataLoader worker drops the hooks it inherited and starts a run of its own.

A followed process writes ``RUN/.proc-<pid>/`` while it runs. When it ends, a process
that trained takes its name: ``rank-<R>`` when it was a rank (a process group was
initialised at its first train step, or ``RANK``/``WORLD_SIZE`` were set), else
``proc-<k>``; one that never trained is removed. Each leaves one line in
``RUN/processes.jsonl``. The process nnprof started waits (up to ``WAIT_S``) for the
followed processes that trained; when any did, its own run moves into its own
``rank-<R>``/``proc-<k>`` folder too (or, when it only launched the others, leaves a
line), and the merged view is written at ``RUN/`` (:mod:`.merge`).

Not followed, and said so in docs/distributed.md: ``python -I``/``-E``/``-S`` (they
ignore ``PYTHONPATH`` or skip ``sitecustomize``), a child given an environment without
``PYTHONPATH``, processes started on other machines, and a bare ``os.fork()`` that does
not go through ``multiprocessing`` (it stays quiet, as before).
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import sys
import time
from typing import Optional

ENV = "NNPROF_FOLLOW"
BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")
RECORD = "processes.jsonl"
STAGING = re.compile(r"^\.proc-(\d+)$")
WAIT_S = 120.0
POLL_S = 0.2


def config(environ=None) -> Optional[dict]:
    environ = os.environ if environ is None else environ
    try:
        cfg = json.loads(environ.get(ENV) or "null")
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) and cfg.get("top") else None


def _command() -> list:
    return list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def record(top: str, line: dict) -> None:
    """One line of ``RUN/processes.jsonl`` (one ``O_APPEND`` write: whole lines)."""
    data = (json.dumps(line, default=str) + "\n").encode()
    try:
        fd = os.open(os.path.join(top, RECORD), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_record(top: str) -> list:
    out = []
    try:
        with open(os.path.join(top, RECORD)) as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def rank_now() -> Optional[dict]:
    """This process's rank: its initialised process group, else torchrun's environment."""
    from . import rank_env
    env = os.environ
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
            local = int(env.get("LOCAL_RANK", rank))
            local_world = int(env.get("LOCAL_WORLD_SIZE", world))
            node = int(env.get("GROUP_RANK", env.get("NODE_RANK", 0)) or 0)
            return {"rank": rank, "world_size": world, "local_rank": local,
                    "local_world_size": local_world, "node_rank": node,
                    "run_id": env.get("TORCHELASTIC_RUN_ID")}
    except (ImportError, ValueError, RuntimeError):
        pass
    info = rank_env()
    return info.as_dict() if info is not None else None


def _note_first_train(profiler) -> None:
    """At the first train step: the rank, and that this process trains, into meta.json
    (so that a process killed later is still named and merged)."""
    rank = rank_now()
    profiler.follow_rank = rank
    path = os.path.join(profiler.path, "meta.json")
    try:
        with open(path) as fh:
            meta = json.load(fh)
        meta["rank"] = rank if rank is not None else meta.get("rank")
        meta.setdefault("follow", {})["trained"] = True
        profiler.writer.write_json("meta.json", meta)
    except (OSError, ValueError):
        pass


def _claim(top: str, rank: Optional[dict]) -> str:
    """A free ``rank-<R>`` (or ``proc-<k>``) folder, created empty (a rename then takes
    its place): the first mkdir wins, so two processes never take one name."""
    if rank is not None and rank.get("world_size", 1) > 1:
        name = f"rank-{rank['rank']}"
        try:
            os.mkdir(os.path.join(top, name))
            return name
        except FileExistsError:
            pass
    k = 0
    while True:
        name = f"proc-{k}"
        try:
            os.mkdir(os.path.join(top, name))
            return name
        except FileExistsError:
            k += 1


def _trained_rows(folder: str) -> int:
    try:
        with open(os.path.join(folder, "steps.csv")) as fh:
            return sum(1 for line in fh if ",train," in line)
    except OSError:
        return 0


def place(profiler, top: str, staging: str, kind: str, started: float) -> Optional[str]:
    """Name a finished process's run (``rank-<R>``/``proc-<k>``) and record it; drop it
    when it never trained. Returns its folder, or None."""
    command = [sys.executable, profiler.script, *(profiler.argv or [])] \
        if kind == "main" else _command()
    line = {"pid": os.getpid(), "parent_pid": os.getppid(), "kind": kind,
            "command": command, "started_unix": started, "ended_unix": time.time(),
            "steps": {"train": profiler.n_train, "eval": profiler.n_eval}}
    if profiler.n_train == 0:
        record(top, dict(line, trained=False, run=None))
        shutil.rmtree(staging, ignore_errors=True)
        return None
    rank = getattr(profiler, "follow_rank", None)
    name = _claim(top, rank)
    target = os.path.join(top, name)
    os.rename(staging, target)
    record(top, dict(line, trained=True, run=name, rank=rank))
    return target


# -- in a followed process ----------------------------------------------------------
_RUN: Optional[dict] = None  # {"profiler", "pid", "top", "staging", "kind", "started"}


def start_process(until: str = "exit", kind: Optional[str] = None) -> None:
    """Profile this process from now on (``until``: ``exit``, at interpreter exit, or
    ``process``, when :func:`end_process` is called after a multiprocessing target)."""
    global _RUN
    cfg = config()
    if cfg is None or (_RUN is not None and _RUN["pid"] == os.getpid()):
        return
    _RUN = None  # a fork of a followed process: that run is its parent's
    from .. import instrument
    inherited = instrument._ACTIVE
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
    from .. import instrument
    return instrument._ACTIVE is not None


def bootstrap_patch(patches) -> None:
    """Fork children of this profiled process: ``BaseProcess._bootstrap`` runs them
    (the same wrapper the boot file puts in place in followed processes)."""
    import multiprocessing.process as mpp
    from .boot._nnprof_boot import make_bootstrap
    original = mpp.BaseProcess.__dict__["_bootstrap"]
    if not getattr(original, "_nnprof_follows", False):
        patches.set(mpp.BaseProcess, "_bootstrap", make_bootstrap(original))


# -- in the process nnprof started ----------------------------------------------------
class Following:
    """The profiled main process's side: the environment its children inherit, the fork
    patch, and, when the run ends, the wait for the followed runs and the layout."""

    def __init__(self, profiler, options: dict) -> None:
        self.profiler = profiler
        self.top = profiler.path
        self.options = options
        self.saved: dict = {}
        self.patches = None
        self.several = False
        self.pending: list = []

    def install(self) -> "Following":
        from ..instrument.patching import Patches
        for name in (ENV, "PYTHONPATH"):
            self.saved[name] = os.environ.get(name)
        os.environ[ENV] = json.dumps(dict(self.options, top=self.top, root_pid=os.getpid(),
                                          script=self.profiler.script,
                                          argv=self.profiler.argv))
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = BOOT + (os.pathsep + old if old else "")
        self.patches = Patches()
        bootstrap_patch(self.patches)
        self.started = time.time()
        self.profiler.on_first_train = lambda: _note_first_train(self.profiler)
        self.profiler.before_summary = self.settle
        return self

    def uninstall(self) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved = {}
        if self.patches is not None:
            self.patches.uninstall()
            self.patches = None

    def _children(self) -> dict:
        """{folder name: path} of the followed runs under the job's directory."""
        from . import PROC_DIR, RANK_DIR
        out = {}
        try:
            names = os.listdir(self.top)
        except OSError:
            return out
        for name in names:
            full = os.path.join(self.top, name)
            if (STAGING.match(name) or RANK_DIR.match(name) or PROC_DIR.match(name)) \
                    and os.path.isdir(full) and not os.path.islink(full):
                out[name] = full
        return out

    def _wait(self) -> list:
        """Wait for the followed runs that trained; the names of those still running."""
        from .merge import finished
        self.uninstall()  # children started from now on are no longer the job's
        deadline = time.monotonic() + WAIT_S
        while True:
            waiting = []
            for name, path in self._children().items():
                if finished(path):
                    continue
                if STAGING.match(name) and not _meta_says_trained(path):
                    continue  # not training (yet): not waited for
                waiting.append(name)
            if not waiting or time.monotonic() >= deadline:
                return waiting
            time.sleep(POLL_S)

    def _name_leftovers(self) -> None:
        """Runs of followed processes that were killed before they could name theirs."""
        from .merge import finished
        for name, path in self._children().items():
            m = STAGING.match(name)
            if not m or not finished(path):
                continue
            meta = _read_meta(path)
            line = {"pid": int(m.group(1)), "kind": (meta.get("follow") or {}).get("kind"),
                    "command": (meta.get("follow") or {}).get("command"),
                    "started_unix": meta.get("started_unix"), "status": "killed"}
            trained = _trained_rows(path)
            if not trained:
                record(self.top, dict(line, trained=False, run=None))
                shutil.rmtree(path, ignore_errors=True)
                continue
            target_name = _claim(self.top, meta.get("rank"))
            os.rename(path, os.path.join(self.top, target_name))
            record(self.top, dict(line, trained=True, run=target_name, rank=meta.get("rank")))

    def _note_unfollowed(self) -> None:
        """Python processes of the job that could not be followed: a line each, and a
        notice with the command that would profile it."""
        recorded = {x.get("pid") for x in read_record(self.top)}
        for p in getattr(self.profiler, "unfollowable", []):
            if p["pid"] in recorded:
                continue
            cmd = list(p["command"])
            rest = [c for c in cmd[1:] if not (c.startswith("-") and not c.startswith("--")
                                                and c[1:].isalpha())]
            hint = "nnprof profile " + " ".join(rest)
            record(self.top, {"pid": p["pid"], "command": cmd, "followed": False,
                              "trained": None, "run": None, "why": p["why"], "hint": hint})
            self.profiler.notices.append(unfollowed_notice(p["pid"], cmd, p["why"], hint))

    def settle(self) -> Optional[str]:
        """Before the main run's summary: wait, name what is left, and when other
        processes trained, move this process's run into a folder of its own (or drop it
        when it trained nothing: it only launched them). Returns where it now is."""
        self.pending = self._wait()
        self._name_leftovers()
        self._note_unfollowed()
        trained = [n for n in self._children() if not STAGING.match(n)]
        if not trained:
            return self.top
        self.several = True
        own = os.path.join(self.top, f".proc-{os.getpid()}")
        os.makedirs(own, exist_ok=True)
        keep = set(self._children()) | {RECORD, os.path.basename(own)}
        for name in os.listdir(self.top):
            if name not in keep:
                os.rename(os.path.join(self.top, name), os.path.join(own, name))
        self.profiler.writer.path = own
        return place(self.profiler, self.top, own, "main", self.started)



def _read_meta(folder: str) -> dict:
    try:
        with open(os.path.join(folder, "meta.json")) as fh:
            meta = json.load(fh)
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _meta_says_trained(folder: str) -> bool:
    return bool((_read_meta(folder).get("follow") or {}).get("trained"))


def note_processes(profiler, summary: dict) -> None:
    """A single-process run whose job started other Python processes that did not
    train: the record's lines go into its summary (``processes``)."""
    lines = read_record(profiler.path)
    if not lines or summary.get("discarded"):
        return
    summary["processes"] = {"trained": [],
                            "not_trained": [x for x in lines if x.get("trained") is False],
                            "not_followed": [x for x in lines if x.get("followed") is False]}
    try:
        from ..run import write_json
        write_json(os.path.join(profiler.path, "summary.json"), summary)
    except OSError:
        pass


def unfollowed_notice(pid, command, why, hint) -> str:
    shown = " ".join(command[1:])[:80]
    return (f"process {pid} ({shown}) was not followed ({why}); if it trains, profile it "
            f"with: {hint}")
