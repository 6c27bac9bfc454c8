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

A followed process (:mod:`.followed`) writes ``RUN/.proc-<pid>/`` while it runs. When it ends, a process
that trained takes its name: ``rank-<R>`` when it was a rank (a process group was
initialised at its first train step, or ``RANK``/``WORLD_SIZE`` were set), else
``proc-<k>``; one that never trained is removed. Each leaves one line in
``RUN/processes.jsonl``. The process nnprof started waits (up to ``WAIT_S``) for the
followed processes that trained; when any did, its own run moves into its own
``rank-<R>``/``proc-<k>`` folder too (or, when it only launched the others, leaves a
line), and the merged view is written at ``RUN/`` (:mod:`.merge`); the record and the naming are :mod:`.processes`.

Not followed, and said so in docs/distributed.md: ``python -I``/``-E``/``-S`` (they
ignore ``PYTHONPATH`` or skip ``sitecustomize``), a child given an environment without
``PYTHONPATH``, processes started on other machines, and a bare ``os.fork()`` that does
not go through ``multiprocessing`` (it stays quiet, as before).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

from .processes import (ENV, RECORD, STAGING, _claim, _meta_says_trained,
                        _note_first_train, _read_meta, _trained_rows, place, read_record,
                        record, unfollowed_notice)

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")
WAIT_S = 120.0
POLL_S = 0.2


def bootstrap_patch(patches) -> None:
    """Fork children of this profiled process: ``BaseProcess._bootstrap`` runs them
    (the same wrapper the boot file puts in place in followed processes)."""
    import multiprocessing.process as mpp
    from .boot._nnprof_boot import make_bootstrap
    original = mpp.BaseProcess.__dict__["_bootstrap"]
    if not getattr(original, "_nnprof_follows", False):
        patches.set(mpp.BaseProcess, "_bootstrap", make_bootstrap(original))



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
        from ..rundir import write_json
        write_json(os.path.join(profiler.path, "summary.json"), summary)
    except OSError:
        pass



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
