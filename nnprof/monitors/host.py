"""Host sampling (psutil): system CPU, this process, its child processes.

Every ``1 / sample_hz`` seconds (default 10 Hz) a daemon thread ``nnprof-host``
appends to ``samples.csv`` (source ``host``):

* ``cpu_percent``: the machine's CPU busy share, mean over its CPUs (0-100);
  ``core<i>_percent`` per CPU, at most once a second (over that second), so
  that a many-core machine does not flood the file.
* ``process_cpu_percent``: this process, in % of one core (above 100 with
  several busy threads); ``process_rss_bytes``: its resident memory (also kept in
  ``last_rss``, which the profiler writes into each step's row: no syscall per step).
* ``workers``: live child processes (DataLoader workers, and any process the
  script starts; py-spy is left out); ``workers_cpu_percent``: their sum;
  ``worker_<pid>_cpu_percent``: each one; ``workers_rss_bytes``: their resident memory
  together (a page shared with this process, as after a fork, is counted in each).

CPU shares come from differences of ``cpu_times()`` computed here, not from
``psutil.cpu_percent()``, whose module-level state a script may use itself.
A child's first value counts from its creation time, so a worker found late
(children are listed every ``CHILD_SCAN_S`` or less often when that is costly) loses no CPU time.
"""
from __future__ import annotations

import os
import time
from typing import Optional

from . import Monitor
from .samples import SamplingMonitor

CHILD_SCAN_S = 0.25    # listing children walks all of /proc: not at every sample,
MAX_SCAN_S = 1.0       # ... yet a new worker is found within a second
SCAN_COST_FACTOR = 50  # and at most ~2% of a core on a machine with many processes
PERCORE_EVERY_S = 1.0  # per-CPU rows at most this often
IGNORED_CHILDREN = ("py-spy",)


def _busy_total(t) -> tuple:
    """(busy, total) seconds of one CPU's ``cpu_times``, psutil's own formula."""
    total = sum(t)
    # on Linux guest time is already counted in user and nice
    total -= getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)
    busy = total - t.idle - getattr(t, "iowait", 0.0)
    return busy, total


def _share(busy0, total0, busy1, total1) -> float:
    dt = total1 - total0
    if dt <= 0:
        return 0.0
    return min(100.0, max(0.0, 100.0 * (busy1 - busy0) / dt))


def _child_pids(pid: int) -> Optional[list]:
    """This process's descendants, from each thread's ``/proc/<pid>/task/<tid>/children``
    (Linux 3.5+; tens of microseconds, where psutil's ``children()`` reads every
    process's ``stat``: a millisecond or more, holding the GIL); None where the kernel
    does not have those files."""
    out: list = []
    todo, readable = [pid], False
    while todo:
        q = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{q}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{q}/task/{t}/children") as f:
                    found = f.read().split()
            except OSError:
                continue
            readable = True
            for c in found:
                out.append(int(c))
                todo.append(int(c))
    return out if readable else None


class HostMonitor(SamplingMonitor, Monitor):
    name = "host"
    label = "host monitor"
    default_enabled = True

    def __init__(self, run_dir: str, t0: int, options: Optional[dict] = None) -> None:
        super().__init__(run_dir, t0, options)
        self.last_rss: Optional[int] = None
        self._init_sampling()

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        import psutil
        self._ps = psutil
        self.proc = psutil.Process(os.getpid())
        self._cpus = [_busy_total(t) for t in psutil.cpu_times(percpu=True)]
        self._cores_base = list(self._cpus)
        self._cores_at = time.monotonic()
        self._self = (self._own_cpu(), time.time())
        self._children: dict = {}   # pid -> [Process, cpu_s, wall]
        self.follow_env = "NNPROF_FOLLOW" if os.environ.get("NNPROF_FOLLOW") else None
        self.unfollowable: list = []
        try:
            self._own_cmd = self.proc.cmdline()
        except psutil.Error:
            self._own_cmd = None
        self._ignored: set = set()
        self._scanned = -1e9
        self._scan_every = CHILD_SCAN_S
        self._begin_sampling()

    @staticmethod
    def _proc_cpu(p) -> float:
        t = p.cpu_times()
        return t.user + t.system

    @staticmethod
    def _own_cpu() -> float:
        """This process's CPU seconds: the ``times()`` system call (a microsecond),
        the same counts psutil reads from ``/proc/self/stat``."""
        t = os.times()
        return t.user + t.system

    def sample(self) -> dict:
        """Take one sample, append it to ``samples.csv`` and return it."""
        ps = self._ps
        t_s = (time.perf_counter_ns() - self.t0) / 1e9
        out: dict = {}
        cpus = [_busy_total(t) for t in ps.cpu_times(percpu=True)]
        if len(cpus) == len(self._cpus):
            shares = [_share(*a, *b) for a, b in zip(self._cpus, cpus)]
            out["cpu_percent"] = sum(shares) / len(shares) if shares else 0.0
            mono = time.monotonic()
            if mono - self._cores_at >= PERCORE_EVERY_S:
                for i, (a, b) in enumerate(zip(self._cores_base, cpus)):
                    out[f"core{i}_percent"] = _share(*a, *b)
                self._cores_base, self._cores_at = cpus, mono
        else:  # CPUs went on- or offline
            self._cores_base, self._cores_at = cpus, time.monotonic()
        self._cpus = cpus

        now = time.time()
        cpu = self._own_cpu()
        c0, w0 = self._self
        out["process_cpu_percent"] = max(0.0, 100.0 * (cpu - c0) / (now - w0)) if now > w0 else 0.0
        self._self = (cpu, now)
        rss = int(self.proc.memory_info().rss)
        out["process_rss_bytes"] = self.last_rss = rss

        if time.monotonic() - self._scanned >= self._scan_every:
            self._scan_children()
        per, workers_rss = {}, 0
        for pid, entry in list(self._children.items()):
            p, c0, w0 = entry
            try:
                cpu = self._proc_cpu(p)
                now = time.time()
                if p.status() == ps.STATUS_ZOMBIE:
                    raise ps.ZombieProcess(pid)
                workers_rss += int(p.memory_info().rss)
            except (ps.NoSuchProcess, ps.AccessDenied):
                del self._children[pid]
                continue
            per[pid] = max(0.0, 100.0 * (cpu - c0) / (now - w0)) if now > w0 else 0.0
            entry[1], entry[2] = cpu, now
        out["workers"] = len(per)
        out["workers_cpu_percent"] = sum(per.values())
        out["workers_rss_bytes"] = workers_rss
        for pid, v in sorted(per.items()):
            out[f"worker_{pid}_cpu_percent"] = v
        self._writer.add(t_s, "host", out)
        return out

    def _check_followable(self, p) -> None:
        """A Python child that nnprof cannot follow (it ignores ``PYTHONPATH`` or skips
        ``sitecustomize``: ``-I``/``-E``/``-S``, or its environment was replaced): noted
        once, at its first sighting, so that the report names it. Forks (the command
        line of this process) are followed through ``multiprocessing`` instead."""
        if self.follow_env is None:
            return
        try:
            cmd = p.cmdline()
            if not cmd or not os.path.basename(cmd[0]).startswith("python") \
                    or cmd == self._own_cmd:
                return
            flags = [c for c in cmd[1:] if c.startswith("-") and not c.startswith("--")]
            opts = "".join(c[1:] for c in flags[:4] if c[1:].isalpha())
            isolated = any(ch in opts for ch in "IES")
            if isolated or self.follow_env not in p.environ():
                self.unfollowable.append({"pid": p.pid, "command": cmd,
                                          "why": "isolated (-I/-E/-S)" if isolated
                                          else "its environment has no NNPROF_FOLLOW"})
        except (self._ps.NoSuchProcess, self._ps.AccessDenied, self._ps.ZombieProcess, OSError):
            pass

    def _scan_children(self) -> None:
        ps = self._ps
        began = time.monotonic()
        pids = _child_pids(self.proc.pid)
        if pids is None:  # no /proc/<pid>/task/<tid>/children: psutil walks all of /proc
            try:
                pids = [p.pid for p in self.proc.children(recursive=True)]
            except (ps.NoSuchProcess, ps.AccessDenied):
                pids = []
        self._scanned = time.monotonic()
        self._scan_every = min(MAX_SCAN_S, max(CHILD_SCAN_S,
                                               SCAN_COST_FACTOR * (self._scanned - began)))
        for pid in pids:
            if pid in self._children or pid in self._ignored:
                continue
            try:
                p = ps.Process(pid)
                if any(n in p.name() for n in IGNORED_CHILDREN):
                    self._ignored.add(p.pid)
                    continue
                # counted from its birth: a worker found late loses no CPU time
                self._children[p.pid] = [p, 0.0, p.create_time()]
                self._check_followable(p)
            except (ps.NoSuchProcess, ps.AccessDenied):
                continue
