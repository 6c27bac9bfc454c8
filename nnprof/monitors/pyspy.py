"""py-spy: sampled Python stacks of the script and of its loader workers.

One ``py-spy record`` subprocess attaches to this process (and, with
``--subprocesses``, to every child it forks or spawns: the DataLoader
workers) and writes collapsed stacks to ``pyspy/profile.txt``. At the end a
flame graph is drawn from that file (``pyspy/flamegraph.svg``): one py-spy
run writes one format, and the collapsed stacks are the one we can parse.

Options chosen so that ``analyses/hotspots.py`` can attribute samples:
``--format raw`` (collapsed stacks, one line per distinct stack and a count),
``--subprocesses`` (a ``process PID:"cmdline"`` frame per process level, so
workers are told apart from the main process), ``--threads`` (a
``thread (TID): name`` frame), ``--function`` (frames carry the function's
first line, so one function is one entry), ``--full-filenames`` (torch's,
nnprof's and the standard library's frames are told from the user's by
path), ``--nonblocking`` (the script is not paused at each sample). Idle
threads are left out (no ``--idle``): shares are of time spent running.

Fails soft: a missing executable or a refused attach (ptrace) leaves a
one-line notice and the run goes on without it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional

from . import Monitor

STACKS_FILE = "profile.txt"
FLAMEGRAPH_FILE = "flamegraph.svg"
LOG_FILE = "pyspy.log"
ATTACH_WAIT_S = 2.0     # how long start() waits for py-spy to report that it samples
STOP_WAIT_S = 15.0      # how long stop() waits for py-spy to write its file after SIGINT

NOT_FOUND = "py-spy not found: pip install py-spy (then run again with --pyspy)"
NO_PTRACE = ("py-spy cannot attach to the script (ptrace not permitted): run as root, or "
             "`sudo sysctl kernel.yama.ptrace_scope=0`, or in Docker `--cap-add SYS_PTRACE`; "
             "the run went on without py-spy")


def find_pyspy() -> Optional[str]:
    """The py-spy next to this interpreter (its virtualenv) first, then on PATH."""
    here = os.path.dirname(sys.executable)
    for name in ("py-spy", "py-spy.exe"):
        path = os.path.join(here, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("py-spy")


def _denied(log: str) -> bool:
    text = log.lower()
    return any(s in text for s in ("permission denied", "operation not permitted", "ptrace",
                                   "elevated permissions", "os error 1)", "eperm"))


class PySpyMonitor(Monitor):
    name = "pyspy"
    default_enabled = False

    def __init__(self, run_dir: str, t0: int, options: Optional[dict] = None) -> None:
        super().__init__(run_dir, t0, options)
        self.dir = os.path.join(run_dir, "pyspy")
        self.output = os.path.join(self.dir, STACKS_FILE)
        self.log_path = os.path.join(self.dir, LOG_FILE)
        self.proc: Optional[subprocess.Popen] = None
        self.rate = int(self.options.get("pyspy_rate") or 100)

    def command(self, exe: str) -> list:
        return [exe, "record", "--pid", str(os.getpid()), "--subprocesses", "--threads",
                "--function", "--full-filenames", "--rate", str(self.rate), "--format", "raw",
                "--output", self.output, "--nonblocking"]

    def start(self) -> None:
        exe = find_pyspy()
        if exe is None:
            self.notice = NOT_FOUND
            return
        os.makedirs(self.dir, exist_ok=True)
        log = open(self.log_path, "w")
        try:
            # its own session: a Ctrl-C at the terminal must not stop it before
            # stop() does (SIGINT is what makes it write its file)
            self.proc = subprocess.Popen(self.command(exe), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True)
        except OSError as exc:
            self.notice = f"py-spy could not be started ({exe}): {exc}"
            return
        finally:
            log.close()
        self._write_info(exe)
        deadline = time.monotonic() + ATTACH_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._failed(self.proc.returncode)
                return
            if "Sampling process" in self._log():
                return
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.notice = (f"py-spy did not finish writing within {STOP_WAIT_S:g} s and "
                               f"was killed; see {self.log_path}")
                return
            except OSError:
                pass
        elif proc.returncode != 0:
            self._failed(proc.returncode)
            return
        if not os.path.exists(self.output) or os.path.getsize(self.output) == 0:
            errors = [ln.strip() for ln in self._log().splitlines() if "error:" in ln.lower()]
            self.notice = "py-spy recorded no samples" + (
                f": {errors[-1][:200]}" if errors else " (the script ran too briefly, or idle)")
            return
        self._flamegraph()

    # -- helpers -------------------------------------------------------------
    def _failed(self, code) -> None:
        log = self._log()
        if _denied(log):
            self.notice = NO_PTRACE
        else:
            last = self._last_line()
            self.notice = (f"py-spy stopped early (exit {code})"
                           + (f": {last}" if last else "") + "; the run went on without it")
        self.proc = None

    def _log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def _last_line(self) -> str:
        lines = [ln.strip() for ln in self._log().splitlines() if ln.strip()]
        return lines[-1][:200] if lines else ""

    def _write_info(self, exe: str) -> None:
        from ..rundir import write_json
        try:
            write_json(os.path.join(self.dir, "pyspy.json"),
                       {"rate_hz": self.rate, "pid": os.getpid(), "executable": exe,
                        "format": "raw", "stacks": STACKS_FILE})
        except OSError:
            pass

    def _flamegraph(self) -> None:
        from ..capture.flamegraph import flamegraph_svg
        try:
            with open(self.output, errors="replace") as fh:
                svg = flamegraph_svg(fh.read(), title="nnprof: py-spy samples")
            with open(os.path.join(self.dir, FLAMEGRAPH_FILE), "w") as fh:
                fh.write(svg)
        except Exception as exc:  # the stacks are what matters; the picture is a nicety
            self.notice = f"py-spy flame graph not drawn: {exc.__class__.__name__}: {exc}"
