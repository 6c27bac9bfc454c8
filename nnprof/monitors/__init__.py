"""Background monitors: what the hardware and the interpreter do during a run, and
the machine it runs on (:mod:`.machine`, read once at the start).

One small interface for the family; each monitor fails soft (sets ``notice``
and records nothing) when its tool or hardware is missing, and never raises
into the training script. Registered here, picked by name. Monitors import the
run's model (:mod:`nnprof.rundir`), the hooks' process-memory readers
(:mod:`nnprof.instrument`) and the flame graph (:mod:`nnprof.capture.flamegraph`);
the session starts and stops them.
"""
from __future__ import annotations

import importlib
from typing import Optional


class Monitor:
    """A sampler that runs beside the training.

    Class attributes: ``name`` (registry key and file stem), ``default_enabled``
    (on without a flag). ``options`` carries the CLI settings (rates, ...).
    Files go into ``run_dir``; timestamps are ``time.perf_counter_ns() - t0``
    in seconds, the clock of ``steps.csv``'s ``start_s``.
    """

    name = "monitor"
    default_enabled = False

    def __init__(self, run_dir: str, t0: int, options: Optional[dict] = None) -> None:
        self.run_dir = run_dir
        self.t0 = t0
        self.options = options or {}
        self.notice: Optional[str] = None

    def start(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


# name -> "module:Class"; imported on use, so a missing optional tool costs nothing
REGISTRY = {
    "host": "nnprof.monitors.host:HostMonitor",
    "gpu": "nnprof.monitors.gpu:GpuMonitor",
    "pyspy": "nnprof.monitors.pyspy:PySpyMonitor",
}


def monitor_class(name: str):
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def start_monitors(names, run_dir: str, t0: int, options: Optional[dict] = None) -> list:
    """Start the named monitors; a monitor that cannot start leaves a notice."""
    started = []
    for name in names:
        try:
            mon = monitor_class(name)(run_dir, t0, options)
        except Exception as exc:  # an optional monitor must never stop the run
            stub = Monitor(run_dir, t0, options)
            stub.name = name
            stub.notice = f"{name} monitor unavailable: {exc.__class__.__name__}: {exc}"
            started.append(stub)
            continue
        try:
            mon.start()
        except Exception as exc:
            mon.notice = mon.notice or f"{name} monitor failed to start: {exc}"
        started.append(mon)
    return started


def stop_monitors(monitors: list) -> list:
    """Stop them all; returns their notices."""
    notices = []
    for mon in monitors:
        if type(mon) is not Monitor:
            try:
                mon.stop()
            except Exception as exc:
                mon.notice = mon.notice or f"{mon.name} monitor failed: {exc}"
        if mon.notice:
            notices.append(mon.notice)
    return notices
