"""Warm trial processes: a fork server that has imported torch and nnprof once, from which
each trial is forked instead of started as a new interpreter.

A fresh trial, ``python -m nnprof profile ... script.py``, pays python's start-up and the
imports of torch and nnprof before its script runs; a forked one starts from a process
that has paid them already. The server (``python -m nnprof.sweep.forkserver``) is started
by the sweep with the trials' own environment and working directory, imports what
``nnprof profile`` imports, and then waits; it never runs a tensor operation, starts a
thread or initialises CUDA, so a forked trial may use GPUs, threads and DataLoader
workers as a fresh one does. In the child, before ``nnprof profile`` runs as under
``python -m nnprof``:

- its own session and process group (the sweep stops a trial's whole group), and the
  parent-death signal (it dies with the server, which dies with the sweep);
- stdin from /dev/null, stdout and stderr to the trial's ``output.log``, the same
  ``sys.stdout``/``sys.stderr`` objects as a fresh interpreter's (the server's standard
  streams are files and pipes too, so buffering and encodings agree), emptied of
  anything buffered;
- the trial's environment (``os.environ``, including its ``CUDA_VISIBLE_DEVICES``) and
  working directory, ``sys.argv`` and ``sys.orig_argv`` as ``python -m nnprof`` sets them;
- fresh random states: Python's ``random`` reseeds itself at fork; NumPy's global
  generator and torch's default one are reseeded from the OS here, as a new process
  seeds them (a torch build whose default seed is fixed keeps it: the server draws
  nothing from it);
- the trial exits through the interpreter's normal shutdown (atexit handlers, non-daemon
  threads joined), with ``nnprof profile``'s exit code.

A trial is started fresh instead where forking cannot give what a fresh process would:
off Linux, when its environment differs from the server's other than in the visible
GPUs (``PYTHON*``, ``OMP_NUM_THREADS`` and the like are read when the interpreter and
torch start), when its working directory differs (``sys.path[0]``), or when the server
could not start or has gone. The one thing forked trials share is the string-hash seed
(``PYTHONHASHSEED`` unset: fresh processes each draw one; forked trials have the
server's); set it for runs that must repeat exactly.

Protocol: JSON lines. The server says ``{"ready": pid}`` (or ``{"error": why}``); the
sweep sends ``{"id", "argv", "env", "cwd", "log"}``; the server answers ``{"id", "pid"}``
and, when a child ends, ``{"exit": pid, "returncode": rc}`` (negative: the signal). The
server ends when the sweep closes its stdin.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

# read at start-up by the interpreter or torch, or changed per slot after the fork
PER_TRIAL_ENV = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
# what nnprof profile and a training script import on their way (the server imports them
# once, by name: the command line sits above this room); torch._dynamo is what building an
# optimizer imports (about a second)
PRELOAD = ("torch", "torch.utils.data", "torch.optim", "torch._dynamo", "numpy", "pandas", "rich", "psutil", "nnprof",
           "nnprof.cli", "nnprof.cli.profile", "nnprof.cli.profiled", "nnprof.session",
           "nnprof.runner", "nnprof.summary", "nnprof.run", "nnprof.renderers.html",
           "nnprof.renderers.json", "nnprof.renderers.terminal",
           "nnprof.renderers.tensorboard", "nnprof.monitors.host", "nnprof.monitors.gpu",
           "nnprof.instrument")
# the default generator's seed in torch builds that start from a fixed one (others draw
# one from the OS in each process)
TORCH_FIXED_SEED = 67280421310721
READY_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 30.0


# -- the server (its own process) -----------------------------------------------------
def _send(fd: int, msg: dict) -> None:
    os.write(fd, (json.dumps(msg) + "\n").encode())


def _preload() -> Optional[str]:
    """Import what a trial will import; None, or why forking would not be safe."""
    import importlib
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # a missing optional module costs its trial the import, no more
            pass
    if threading.active_count() != 1:
        return "a Python thread runs in the server after its imports"
    import torch
    if torch.cuda.is_initialized():
        return "CUDA was initialised by an import"
    return None


def _reap(wfd: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(wfd, {"exit": pid, "returncode": os.waitstatus_to_exitcode(status)})


def serve(rfd: int, wfd: int) -> Optional[dict]:
    """Fork a child per request; returns only in a child, with its request (the server
    itself returns None when the sweep closes the pipe)."""
    buf = b""
    while True:
        ready, _, _ = select.select([rfd], [], [], 0.05)
        if ready:
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                return None
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                req = json.loads(line)
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                try:
                    pid = os.fork()
                except OSError as exc:
                    _send(wfd, {"id": req["id"], "error": str(exc)})
                    continue
                if pid == 0:
                    os.close(rfd)
                    os.close(wfd)
                    return req
                _send(wfd, {"id": req["id"], "pid": pid})
        _reap(wfd)


def die_with_parent(expected_parent: int = 0) -> None:
    """Linux: this process gets SIGTERM when its parent ends (the parent-death signal);
    exits at once where the parent is gone already. Also run between fork and exec."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        return
    parent = os.getppid()
    if parent == 1 or (expected_parent and parent != expected_parent):
        os._exit(143)


def become_trial(req: dict, server_pid: int) -> None:
    """In the forked child: become what ``python -m nnprof ARGV`` would be, then run it
    (``SystemExit`` ends the interpreter as it would end that process)."""
    os.setsid()
    die_with_parent(server_pid)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    np = sys.modules.get("numpy")
    if np is not None and hasattr(np, "random"):
        np.random.seed()  # a fresh process draws its global seed from the OS
    torch = sys.modules.get("torch")
    if torch is not None and torch.initial_seed() != TORCH_FIXED_SEED:
        torch.seed()  # as a fresh process's default generator: a seed from the OS
    import runpy
    sys.orig_argv = [sys.executable, "-m", "nnprof", *req["argv"]]
    sys.argv = ["-m", *req["argv"]]  # runpy puts nnprof/__main__.py's path first
    runpy.run_module("nnprof", run_name="__main__", alter_sys=True)
    raise SystemExit(0)  # nnprof's __main__ always exits itself


def main() -> None:
    # the protocol moves off stdin/stdout, which become what a trial's are not yet
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the server's own output goes where its errors go
    os.close(null)
    problem = _preload()
    if problem is not None:
        _send(wfd, {"error": problem})
        return
    # what the server holds is never garbage: out of the collector's sight, so that a
    # trial's collections (and its interpreter's shutdown, 0.5 s less with torch._dynamo
    # loaded) do not walk it, and its pages stay shared with the server
    import gc
    gc.collect()
    gc.freeze()
    server_pid = os.getpid()
    _send(wfd, {"ready": server_pid})
    req = serve(rfd, wfd)
    if req is None:
        return
    become_trial(req, server_pid)


# -- the sweep's side -------------------------------------------------------------------
def _shared_env(env: dict) -> dict:
    """What of a trial's environment its server must have had at start-up."""
    return {k: v for k, v in env.items() if k not in PER_TRIAL_ENV}


class ForkServer:
    """The sweep's handle on its server: start it, fork trials from it, learn how they
    ended. ``problem`` says why trials start fresh (None while the server serves)."""

    def __init__(self, env: dict, cwd: str, log_path: str) -> None:
        self.env = _shared_env(env)
        self.cwd = cwd
        self.problem: Optional[str] = None
        self._replies: dict = {}      # request id -> pid or error
        self._exits: dict = {}        # pid -> returncode
        self._exit_at: dict = {}      # pid -> when its exit was heard (time.monotonic())
        self._cond = threading.Condition()
        self._next_id = 0
        self._alive = False
        self._gone = False
        self._log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nnprof.sweep.forkserver"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, env=self.env, cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
        except OSError as exc:
            self.proc = None
            self.problem = f"the fork server could not start: {exc}"
            return
        self._reader = threading.Thread(target=self._read, name="nnprof-forkserver",
                                        daemon=True)
        self._reader.start()

    @classmethod
    def usable(cls) -> Optional[str]:
        """None where trials can be forked on this platform, else why not."""
        if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
            return "forked trials need Linux"
        return None

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if "ready" in msg:
                    self._alive = True
                elif "error" in msg and "id" not in msg:
                    self.problem = f"the fork server cannot fork safely: {msg['error']}"
                elif "id" in msg:
                    self._replies[msg["id"]] = msg.get("pid") or msg.get("error", "?")
                elif "exit" in msg:
                    self._exits[msg["exit"]] = msg["returncode"]
                    self._exit_at[msg["exit"]] = time.monotonic()
                self._cond.notify_all()
        with self._cond:  # the server is gone: its children were sent SIGTERM
            self._alive = False
            self.problem = self.problem or "the fork server has ended"
            self._gone = True
            self._cond.notify_all()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        if self.proc is None:
            return False
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._alive and self.problem is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.problem = f"the fork server was not ready in {timeout:.0f} s"
                    break
                self._cond.wait(left)
            return self._alive

    def compatible(self, env: dict, cwd: str) -> bool:
        """Would a child of the server be what a fresh ``python`` with ``env`` in ``cwd``
        is?"""
        return cwd == self.cwd and _shared_env(env) == self.env

    def spawn(self, argv: list, env: dict, cwd: str, log: str) -> Optional[int]:
        """The pid of a child running ``python -m nnprof ARGV``, or None (start it fresh)."""
        if not self.compatible(env, cwd) or not self.wait_ready():
            return None
        with self._cond:
            rid = self._next_id
            self._next_id += 1
        try:
            self.proc.stdin.write((json.dumps({"id": rid, "argv": argv, "env": env,
                                               "cwd": cwd, "log": log}) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            with self._cond:
                self.problem = self.problem or "the fork server has ended"
            return None
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        with self._cond:
            while rid not in self._replies and self._alive:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            got = self._replies.pop(rid, None)
        return got if isinstance(got, int) else None

    def returncode(self, pid: int) -> Optional[int]:
        """How child ``pid`` ended, None while it runs; -SIGTERM once the server is gone
        (the parent-death signal stopped it; its real status went with the server)."""
        with self._cond:
            return self._ended(pid)

    def _ended(self, pid: int) -> Optional[int]:
        if pid in self._exits:
            return self._exits[pid]
        if self._gone:
            return self._exits.setdefault(pid, -signal.SIGTERM)
        return None

    def ended_at(self, pid: int) -> Optional[float]:
        """When child ``pid``'s exit was heard (``time.monotonic()``), if it was."""
        with self._cond:
            return self._exit_at.get(pid)

    def wait_any(self, timeout: float) -> None:
        """Sleep ``timeout`` seconds, or less: until a child's exit is heard."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = len(self._exit_at)
            while len(self._exit_at) == seen and not self._gone:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def wait(self, pid: int, timeout: Optional[float]) -> Optional[int]:
        """``returncode(pid)`` once it is known, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                rc = self._ended(pid)
                if rc is not None:
                    return rc
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)

    def close(self, timeout: float = 10.0) -> None:
        """End the server (its stdin closed), killed after ``timeout``; its log removed
        when empty."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=5)
            self.proc.stdout.close()
        name = self._log.name
        self._log.close()
        try:
            if os.path.getsize(name) == 0:
                os.remove(name)
        except OSError:
            pass


if __name__ == "__main__":
    main()
