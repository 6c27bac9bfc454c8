"""Trial processes: each an ordinary ``python -m nnprof profile`` child run in its
own run directory, in its own process group, so that stopping a trial stops its
loader workers too; and a trial dies with the sweep that started it (Linux:
the parent-death signal), however the sweep ends.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Optional

from ..check.subrun import OUTPUT_LOG
from .forkserver import ForkServer, die_with_parent

GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long


def profile_command(target, run_dir: str, args: list, budget: Optional[float] = None,
                    max_steps: Optional[int] = None, max_time: Optional[float] = None) -> list:
    cmd = [sys.executable, "-m", "nnprof", "profile", "--quiet", "--no-progress",
           "--out", run_dir]
    if budget is not None:
        cmd += ["--budget", repr(float(budget))]
    if max_steps is not None:
        cmd += ["--max-steps", str(max_steps)]
    if max_time is not None:
        cmd += ["--max-time", repr(float(max_time))]
    cmd += ["-m", target.module] if target.module else ["--", target.path]
    return cmd + list(args)


def visible_gpus() -> list:
    """The GPUs trials may use: CUDA_VISIBLE_DEVICES as set, else what NVML counts."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import pynvml
        pynvml.nvmlInit()
        try:
            return [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return []


def threads_per_trial(parallel: int, cores: int) -> Optional[int]:
    """The CPU threads each trial is given: its share of the cores when trials run side
    by side; None (torch's own choice, as under plain python) for one at a time."""
    if parallel <= 1:
        return None
    return max(1, cores // parallel)


def slot_env(slot: int, parallel: int, cores: int, gpus: list) -> dict:
    """The environment of a trial in ``slot``: its share of the cores, its GPU."""
    env = dict(os.environ)
    for name in ("NNPROF_RUNG",):
        env.pop(name, None)
    threads = threads_per_trial(parallel, cores)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


class TrialProcess:
    """One running trial: forked from the sweep's warm server where it can be
    (:mod:`.forkserver`), else a fresh ``python -m nnprof profile``. ``poll()`` tells its
    exit without reaping it first, so that what is left of its process group (loader
    workers) can still be stopped."""

    def __init__(self, cmd: list, run_dir: str, env: dict,
                 server: Optional[ForkServer] = None) -> None:
        self.run_dir = run_dir
        self.started = time.monotonic()
        self.ended: Optional[float] = None
        self.returncode: Optional[int] = None
        self.proc = self.log = None
        log = os.path.join(run_dir, OUTPUT_LOG)
        # cmd is [python, -m, nnprof, ...]: the server runs what follows "nnprof"; the
        # log is there from the start, as for a fresh trial
        pid = None
        if server is not None:
            open(log, "wb").close()
            pid = server.spawn(cmd[3:], env, os.getcwd(), log)
        self.server = server if pid is not None else None
        if pid is not None:
            self.pid = pid
            return
        self.log = open(log, "wb")
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
        except BaseException:
            self.log.close()
            raise
        self.pid = self.proc.pid

    @property
    def forked(self) -> bool:
        return self.server is not None

    def _raw_poll(self) -> Optional[int]:
        return self.server.returncode(self.pid) if self.forked else self.proc.poll()

    def _raw_wait(self, timeout: Optional[float]) -> Optional[int]:
        if self.forked:
            return self.server.wait(self.pid, timeout)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def poll(self) -> Optional[int]:
        if self.returncode is not None:
            return self.returncode
        if self._raw_poll() is None:
            return None
        self._finish()
        return self.returncode

    def _finish(self) -> None:
        self._kill_group(signal.SIGKILL)  # workers the trial left behind
        self.returncode = self._raw_poll()
        self.ended = (self.server.ended_at(self.pid) if self.forked else None) or \
            time.monotonic()
        if self.log is not None:
            try:
                self.log.close()
            except OSError:
                pass

    def _kill_group(self, sig) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace_s: float = GRACE_S) -> int:
        """SIGTERM to the whole group (the trial writes its run directory), SIGKILL
        after ``grace_s``; returns the exit code."""
        if self.returncode is not None:
            return self.exit_code
        self._kill_group(signal.SIGTERM)
        if self._raw_wait(grace_s) is None:
            self._kill_group(signal.SIGKILL)
            self._raw_wait(None)
        self._finish()
        return self.exit_code

    @property
    def exit_code(self) -> Optional[int]:
        rc = self.returncode
        return None if rc is None else (128 - rc if rc < 0 else rc)

    @property
    def duration_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started


def tail_lines(run_dir: str, n: int = 15) -> list:
    from ..check.subrun import _OWN_LINES
    try:
        with open(os.path.join(run_dir, OUTPUT_LOG), errors="replace") as fh:
            lines = [ln.rstrip() for ln in fh if not ln.startswith(_OWN_LINES)]
    except OSError:
        return []
    while lines and not lines[-1].strip():
        lines.pop()
    return lines[-n:]


def trial_summary(run_dir: str) -> Optional[dict]:
    """The trial's summary: ``summary.json``, or rebuilt from what it streamed."""
    from ..run import Run
    try:
        return Run.load(run_dir).summary()
    except Exception:
        return None


def mark_pruned(run_dir: str, at: int, resource: str, value) -> Optional[dict]:
    """Status ``pruned`` in the trial's ``summary.json``, and its report made again."""
    return mark_run(run_dir, "pruned", {"pruned": {"at": at, "resource": resource,
                                                   "value": value}},
                    f"pruned by nnprof sweep at {resource} {at}")


def mark_run(run_dir: str, status: Optional[str], extra: dict, notice: str,
             exit_code: Optional[int] = None) -> Optional[dict]:
    """Put ``status`` (None: keep the trial's own) in the trial's ``summary.json``,
    written from what it streamed when the trial was stopped before it could write
    it, and make its report again."""
    from ..run import Run, write_json
    from ..rundir.files import json_safe as _clean
    try:
        run = Run.load(run_dir)
        stored = run.summary_file
        summary = stored if stored is not None else run.summary()
    except Exception:
        return None
    if status is None and stored is not None:
        return stored
    summary["status"] = status or "interrupted"
    if stored is None and exit_code is not None:
        summary["exit_code"] = exit_code
    summary.update(extra)
    summary.setdefault("notices", []).append(notice)
    summary = _clean(summary)
    try:
        write_json(os.path.join(run_dir, "summary.json"), summary)
        from ..renderers import write_run_reports
        write_run_reports(Run.load(run_dir), summary)
    except Exception:
        pass
    return summary
