"""``nnprof profile --nproc-per-node N ...``: nnprof starts torchrun, which starts the
ranks, each an ordinary ``nnprof profile`` writing ``RUN/rank-<R>/``; once torchrun
has ended, this process merges the ranks' runs at ``RUN/``.

torchrun starts each worker in a session of its own, so a signal to the terminal's
process group reaches only nnprof: it forwards SIGINT, SIGTERM and SIGHUP to torchrun,
which passes them to every worker and kills them after its own timeout. nnprof notes
every process torchrun started while it runs; any still alive when torchrun has ended
(torchrun itself killed, a worker that ignored the signal) gets SIGTERM and then
SIGKILL, with its process group (its loader workers).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Optional

from . import PARENT_MERGES

# torchrun's options that nnprof profile takes and passes on (dest -> torchrun flag)
TORCHRUN_OPTIONS = {
    "nproc_per_node": "--nproc-per-node", "nnodes": "--nnodes", "node_rank": "--node-rank",
    "rdzv_endpoint": "--rdzv-endpoint", "rdzv_backend": "--rdzv-backend",
    "rdzv_id": "--rdzv-id", "master_addr": "--master-addr", "master_port": "--master-port",
    "max_restarts": "--max-restarts",
}
GRACE_S = 45.0        # after a forwarded signal, torchrun's own 30 s to stop its workers
REAP_GRACE_S = 5.0    # SIGTERM to SIGKILL for processes left behind
FORWARDED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                  if hasattr(signal, n))


def wants_launch(opts) -> bool:
    return any(getattr(opts, k, None) is not None for k in TORCHRUN_OPTIONS)


def torchrun_command(opts, profile_args: list, target) -> list:
    """``python -m torch.distributed.run [torchrun options] -m nnprof profile ...``."""
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    for dest, flag in TORCHRUN_OPTIONS.items():
        value = getattr(opts, dest, None)
        if value is not None:
            cmd += [flag, str(value)]
    if (opts.nnodes in (None, "1") and opts.rdzv_endpoint is None
            and opts.master_addr is None and opts.master_port is None):
        cmd.append("--standalone")  # one node: a free port, a rendezvous of its own
    cmd += ["-m", "nnprof", "profile", *profile_args]
    if target.module is not None:
        cmd += ["-m", target.module]
    else:
        cmd += ["--", target.path]
    return cmd + list(target.args)


class Launch:
    """torchrun as a child, its processes noted, signals forwarded, leftovers reaped."""

    def __init__(self, cmd: list, env: Optional[dict] = None) -> None:
        self.cmd = cmd
        self.env = dict(os.environ if env is None else env)
        self.env[PARENT_MERGES] = "1"
        self.signals: list = []
        self.seen: dict = {}  # pid -> create time, every process torchrun started
        self.proc: Optional[subprocess.Popen] = None
        self.signal_t = 0.0

    def _forward(self, signum, frame) -> None:
        if not self.signals:
            self.signal_t = time.monotonic()
        self.signals.append(signum)
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signum)
            except OSError:
                pass

    def _note_children(self) -> None:
        try:
            import psutil
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    self.seen.setdefault(child.pid, child.create_time())
                except psutil.Error:
                    continue
        except Exception:
            pass

    def run(self) -> int:
        """torchrun's exit code (128 + N if it died of signal N)."""
        old = {}
        for sig in FORWARDED:
            try:
                old[sig] = signal.signal(sig, self._forward)
            except (ValueError, OSError):
                pass
        try:
            self.proc = subprocess.Popen(self.cmd, env=self.env, start_new_session=True)
            killed = False
            while self.proc.poll() is None:
                self._note_children()
                try:
                    self.proc.wait(0.25)
                except subprocess.TimeoutExpired:
                    pass
                if self.signals and not killed and \
                        time.monotonic() - self.signal_t > GRACE_S:
                    killed = True
                    self._kill_all(signal.SIGKILL)
            rc = self.proc.returncode
        finally:
            if self.proc is not None and self.proc.poll() is None:  # our own crash
                self._kill_all(signal.SIGKILL)
            self.reap()
            for sig, handler in old.items():
                try:
                    signal.signal(sig, handler)
                except (ValueError, OSError):
                    pass
        return 128 - rc if rc < 0 else rc

    def _alive(self) -> list:
        try:
            import psutil
        except ImportError:
            return []
        out = []
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.Error:
                continue
        return out

    def _kill_all(self, sig) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except OSError:
                pass
        own = os.getpgid(0)
        for pid in self._alive():
            try:
                pgid = os.getpgid(pid)
                if pgid != own:
                    os.killpg(pgid, sig)
                else:
                    os.kill(pid, sig)
            except OSError:
                continue

    def reap(self) -> None:
        """Stop what torchrun left running: SIGTERM, then SIGKILL after a grace period."""
        if not self._alive():
            return
        self._kill_all(signal.SIGTERM)
        deadline = time.monotonic() + REAP_GRACE_S
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive():
            self._kill_all(signal.SIGKILL)
