"""Profiler: one profiled run, from instrumentation to the written summary."""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import socket
import sys
import time
from typing import Optional

import torch

from ._version import __version__
from .instrument import Instrumentation, StepRecord, StopRun, resolve_loss
from .instrument.probe import TrainingProbe
from .monitors import start_monitors, stop_monitors
from .monitors.machine import gpu_total_memory, host_memory, own_bytes, usable_cores
from .progress import Progress
from .rundir.appendfile import AppendFile
from .rundir.place import check_writable, default_out
from .run import SCHEMA_VERSION, Run, RunWriter, write_json

# one steps.csv row (see run.STEP_COLUMNS); %-formatting is the cheapest here
_ROW = "%d,%s,%s," + ",".join(["%.6f"] * 12) + ",%s,%s,%d,%d,%d,%d,%s,%s,%d,%s,%s,%s,%s\n"
_NO_GPU = ",,,,,,"
_now = time.perf_counter_ns
FLUSH_ROWS = 16           # steps.csv is written every 16 steps ...
FLUSH_NS = 250_000_000    # ... or every 0.25 s, whichever comes first
DEFAULT_MONITORS = ("host", "gpu")  # py-spy only on request (--pyspy)
STATUSES = ("completed", "stopped", "crashed", "interrupted")


def rung_config(notices: list) -> Optional[dict]:
    """The overfit-rung settings that ``nnprof check`` passes in ``NNPROF_RUNG``."""
    text = os.environ.get("NNPROF_RUNG")
    if not text:
        return None
    try:
        rung = json.loads(text)
    except ValueError:
        notices.append("NNPROF_RUNG is not valid JSON: ignored")
        return None
    return rung if isinstance(rung, dict) else None


class Profiler:
    """Profiles the training that runs between :meth:`start` and :meth:`stop`.

    ``budget`` is the wall time one step may take, in seconds; ``max_steps``
    and ``max_time`` stop the script cleanly (raising :class:`StopRun` inside
    it at the next step boundary). ``trace`` ({"steps", "warmup", "windows"},
    or True for the defaults) records a few steps with torch.profiler
    (:mod:`nnprof.capture.trace`).
    """

    def __init__(self, out: Optional[str] = None, budget: float = 1.0, name: str = "run",
                 script: Optional[str] = None, argv: Optional[list] = None,
                 max_steps: Optional[int] = None, max_time: Optional[float] = None,
                 progress: Optional[bool] = None, monitors=None,
                 monitor_options: Optional[dict] = None, trace: Optional[dict] = None,
                 memory_trace: bool = False) -> None:
        if budget is None or not budget > 0:
            raise ValueError("budget must be a positive number of seconds")
        from .capture.trace import options as trace_options
        self.trace_options = trace_options(trace)  # None: no torch.profiler windows
        self.path = os.path.abspath(out or default_out(name))
        self.budget = float(budget)
        self.budget_ns = int(self.budget * 1e9)
        self.script = script
        self.argv = list(argv) if argv is not None else None
        self.max_steps = max_steps
        self.max_time = max_time
        self.progress = Progress(enabled=progress)
        self.monitor_names = list(DEFAULT_MONITORS if monitors is None else monitors)
        self.monitor_options = dict(monitor_options or {})
        self._monitors: list = []
        self._host = None
        self.notices: list = []
        self.rung = rung_config(self.notices)
        self._rung_losses: list = []
        self.n_steps = 0
        self.n_train = 0
        self.n_eval = 0
        self.n_over = 0
        self._rows: list = []
        self._written_train = 0
        self._flushed_at = 0
        self._summary: Optional[dict] = None
        self._inst: Optional[Instrumentation] = None
        self._tracer = None
        self._memtrace = None
        if memory_trace:
            from .capture.memtrace import MemoryTrace
            self._memtrace = MemoryTrace(self.path, self.notices)
        self._emit_ns = 0
        self.status: Optional[str] = None
        # set by nnprof.distributed.follow when the job's processes are followed:
        # called at the first train step; and once the run's files are closed, before
        # the summary: returns where the run now is, or None to drop it (never trained)
        self.on_first_train = None
        self.before_summary = None
        self.meta_extra: dict = {}
        self.discarded = False

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Profiler":
        problem = check_writable(self.path)
        if problem:
            raise OSError(problem)
        self.t0 = time.perf_counter_ns()
        self.started = time.time()
        self.writer = RunWriter(self.path)
        self.writer.write_json("meta.json", self._meta())
        self._metrics = AppendFile(os.path.join(self.path, "metrics.jsonl"))
        self.probe = TrainingProbe(self._write_pass, self.rung)
        restrict = None
        if self.rung and self.rung.get("loader_site"):
            site = self.rung["loader_site"]
            restrict = {"file": site.get("file"), "line": site.get("line"),
                        "index": site.get("index"), "examples": self.rung.get("examples", 1)}
        self.replay = None
        if self.rung and self.rung.get("replay"):
            from .instrument.replay import Replay
            self.replay = Replay(self.rung.get("examples", 1), stop=self._replay_stop)
        self._inst = Instrumentation(
            self._emit, self.writer, self.path, self.t0, on_module=self.probe.on_module,
            on_optimizer=self.probe.on_optimizer, on_scheduler=self.probe.on_scheduler,
            probe=self.probe.wiring, observer_factory=self.probe.make_observer,
            restrict_loader=restrict, freeze_schedulers=self.probe.simplify,
            on_forward=self.probe.on_forward, replay=self.replay,
            on_direct=self.probe.on_direct, activations=self.probe.activations,
            on_calls=self.probe.on_calls)
        clock = self._inst.clock
        clock.max_train_steps = self.max_steps
        if self.max_time is not None:
            clock.deadline = self.t0 + int(self.max_time * 1e9)
        self._inst.install()
        if self.trace_options is not None:
            self._start_tracer()
        self._monitors = start_monitors(self.monitor_names, self.path, self.t0,
                                        self.monitor_options)
        self._host = next((m for m in self._monitors if hasattr(m, "last_rss")), None)
        self.probe.own_bytes = own_bytes()
        return self

    def stop(self, status: str = "completed", exit_code: Optional[int] = 0,
             shutdown_workers: bool = False) -> dict:
        """Finish the run, write ``summary.json``, return the summary."""
        if self._summary is not None:
            return self._summary
        inst = self._inst
        self.status = status
        self.unfollowable = list(getattr(self._host, "unfollowable", None) or [])
        self.notices.extend(stop_monitors(self._monitors))
        self._monitors = []
        self._host = None
        if inst is not None:
            try:
                inst.finish()
                self._write_rows(time.perf_counter_ns())
                if shutdown_workers:
                    inst.shutdown_workers()
                try:
                    inst.check_kept_losses()
                    self.writer.write_json("probe.json", dict(
                        self.probe.result(), kept_losses=inst.kept,
                        replay=self.replay.result() if self.replay is not None else None))
                except OSError as exc:  # a full disk must not end the script's own run
                    self.notices.append(f"cannot write probe.json: {exc.strerror or exc}")
            finally:
                if self._tracer is not None:
                    self._tracer.finish()  # a window still open is saved; never raises
                if self._memtrace is not None:
                    self._memtrace.finish(self.n_train)
                inst.uninstall()
                self.writer.close()
                self._metrics.close()
            if self.n_train or self.before_summary is None:
                self._write_costs()  # a followed process that never trained is dropped
        self.progress.close()
        if self.before_summary is not None:
            try:
                where = self.before_summary()
            except Exception as exc:  # the run stays where it is
                where = self.path
                self.notices.append(f"processes of the job not placed ({exc.__class__.__name__}: "
                                    f"{exc})")
            if where is None:
                self.discarded = True
                self._summary = {"status": status, "exit_code": exit_code, "discarded": True}
                return self._summary
            self.path = self.writer.path = where
        for f in (self.writer.steps, self.writer.loaders, self._metrics):
            if f.error:
                self.notices.append(f"{f.error}: the run directory is incomplete")
        from .summary import build_summary
        run = Run.load(self.path)
        summary = build_summary(run, status=status, exit_code=exit_code,
                                notices=self.notices, wall_s=(time.perf_counter_ns() - self.t0) / 1e9)
        self._summary = summary
        if self._save_summary(summary):
            self._write_reports(run, summary)
        return summary

    def _save_summary(self, summary: dict) -> bool:
        try:
            write_json(os.path.join(self.path, "summary.json"), summary)
            return True
        except OSError as exc:
            summary.setdefault("notices", []).append(
                f"cannot write summary.json: {exc.strerror or exc} (nnprof report shows the "
                "run as incomplete)")
            return False

    def _write_costs(self) -> None:
        """``overhead.json``: the calibrated cost of each kind of hook (measured now, with
        the hooks removed) and the measured cost of recording each step, from which the
        summary estimates nnprof's own time per step (:mod:`nnprof.instrument.cost`)."""
        try:
            from .instrument.cost import calibrate
            costs = calibrate()
        except Exception as exc:  # an estimate is never worth a failed run
            self.notices.append(f"overhead estimate unavailable ({exc.__class__.__name__})")
            return
        steps = max(1, self.n_steps)
        try:
            self.writer.write_json("overhead.json", {
                "hook_costs_ns": costs, "record_ns_per_step": self._emit_ns / steps,
                "steps": self.n_steps})
        except OSError as exc:
            self.notices.append(f"cannot write overhead.json: {exc.strerror or exc}")

    def _write_reports(self, run: Run, summary: dict) -> None:
        """report.html and tensorboard/; a report that fails costs a notice, not the run."""
        try:
            from .renderers import write_run_reports
            problems = write_run_reports(run, summary)
        except Exception as exc:
            problems = [f"reports not written: {exc.__class__.__name__}: {exc}"]
        if problems:
            summary.setdefault("notices", []).extend(problems)
            self._save_summary(summary)

    def _start_tracer(self) -> None:
        """--trace: torch.profiler windows driven from the step boundaries (nnprof.capture.trace)."""
        try:
            from .capture.trace import Tracer
            self._tracer = Tracer(self.path, self.notices, self._inst.clock,
                                  **self.trace_options)
        except Exception as exc:
            self.notices.append(f"--trace: torch.profiler unavailable, no trace "
                                f"({exc.__class__.__name__}: {exc})")

    # -- context manager (the notebook API) ---------------------------------
    def __enter__(self) -> "Profiler":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.stop("completed", 0)
            return False
        if issubclass(exc_type, StopRun):
            self.stop("stopped", 0)
            return True
        if issubclass(exc_type, KeyboardInterrupt):
            self.stop("interrupted", 130)
            return False
        self.stop("crashed", 1)
        return False

    def summary(self) -> dict:
        """The findings of the finished run (same as ``summary.json``)."""
        if self._summary is None:
            raise RuntimeError("the run has not finished yet")
        return self._summary

    @property
    def run(self) -> Run:
        return Run.load(self.path)

    @property
    def steps(self):
        return self.run.steps

    # -- called from the hooks -----------------------------------------------
    # Steps are formatted in batches, off the per-step path: a tight loop over
    # a few rows runs much faster than the same code once between two steps.
    def _emit(self, rec: StepRecord) -> None:
        t_in = _now()
        host = self._host
        if host is not None:
            rec.rss = host.last_rss
        rows = self._rows
        rows.append(rec)
        tracer = self._tracer
        if tracer is not None and tracer.active:
            tracer.on_step(rec)  # may start, step or stop torch.profiler (--trace)
        if rec.kind == "train":
            self.n_train += 1
            if self.n_train == 1 and self.on_first_train is not None:
                try:
                    self.on_first_train()
                except Exception:
                    pass
            if self.n_train >= 64 and self.n_train & (self.n_train - 1) == 0:
                self._inst.check_kept_losses()  # at train steps 64, 128, 256, ...
            if self._memtrace is not None:
                self._memtrace.on_train_step(self.n_train)
            if rec.end - rec.start > self.budget_ns:
                self.n_over += 1
            if self.rung is not None:
                self._converged(rec)
            obs = self.probe.observer
            if obs is not None and obs.pass_counts is not None and \
                    rec.start >= obs.pass_last_ns:
                obs.flush()  # the evaluation pass before this step is over: its metrics now
        else:
            self.n_eval += 1
        if len(rows) >= FLUSH_ROWS or rec.end - self._flushed_at >= FLUSH_NS:
            self._write_rows(rec.end)
            if self.progress.enabled:  # redrawn at most every 0.25 s: at a write of rows
                self.progress.update(rec.end, self.n_train, self.n_eval,
                                     (rec.end - rec.start) / 1e9, self.budget, self.n_over)
        self._emit_ns += _now() - t_in  # our own cost per step (the overhead estimate)

    def _write_rows(self, now: int) -> None:
        rows, self._rows = self._rows, []
        lines = []
        t0, budget_ns = self.t0, self.budget_ns
        for rec in rows:
            wall = rec.end - rec.start
            if rec.kind == "train":
                tidx = str(self._written_train)
                self._written_train += 1
            else:
                tidx = ""
            loss = resolve_loss(rec.loss_ref if rec.loss_ref is not None else rec.eval_loss_ref)
            ph, lp, gp = rec.phases, rec.loader_phases, rec.gpu_phases
            lines.append(_ROW % (
                self.n_steps, rec.kind, tidx, (rec.start - t0) * 1e-9, wall * 1e-9,
                ph[0] * 1e-9, ph[1] * 1e-9, ph[2] * 1e-9, ph[3] * 1e-9, ph[4] * 1e-9,
                ph[5] * 1e-9, ph[6] * 1e-9, lp[0] * 1e-9, lp[1] * 1e-9, lp[2] * 1e-9,
                rec.loader or "", "" if loss is None else repr(loss), wall > budget_ns,
                rec.n_forward, rec.n_backward, rec.n_optimizer,
                _NO_GPU if gp is None else ",".join(["%.6f" % v for v in gp]),
                "" if rec.gpu_mem_peak is None else rec.gpu_mem_peak, rec.pass_start,
                "" if rec.comm_wait is None else "%.6f" % (rec.comm_wait * 1e-9),
                "" if rec.rss is None else rec.rss,
                "" if rec.gpu_mem_alloc is None else rec.gpu_mem_alloc,
                "" if rec.gpu_mem_reserved is None else rec.gpu_mem_reserved))
            self.n_steps += 1
        self.writer.write_rows(lines)
        self._flushed_at = now

    def _write_pass(self, record: dict) -> None:
        self._metrics.append(json.dumps(record) + "\n")
        self._metrics.flush()

    def _converged(self, rec: StepRecord) -> None:
        """Overfit rungs stop once the recent train losses fell far enough."""
        loss = resolve_loss(rec.loss_ref)
        if loss is None or not math.isfinite(loss):
            return
        losses = self._rung_losses
        losses.append(loss)
        ratio, patience = float(self.rung.get("ratio", 0.1)), int(self.rung.get("patience", 5))
        if len(losses) >= patience and losses[0] > 0 and \
                sum(losses[-patience:]) / patience <= ratio * losses[0]:
            self._inst.clock.stop_reason = "converged"

    def _replay_stop(self) -> None:
        """Replay turned out unsafe (its reason is in probe.json): the rung's run ends."""
        if self._inst is not None:
            self._inst.clock.stop_reason = "replay impossible"

    def _meta(self) -> dict:
        from .rundir.ranks import rank_env
        cuda = torch.cuda.is_available()
        rank = rank_env()
        return {
            "schema_version": SCHEMA_VERSION,
            "nnprof_version": __version__,
            "script": self.script,
            "argv": self.argv,
            "budget_s": self.budget,
            "max_steps": self.max_steps,
            "max_time_s": self.max_time,
            "started_at": datetime.datetime.fromtimestamp(self.started).isoformat(
                timespec="seconds"),
            "started_unix": self.started,
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "rank": rank.as_dict() if rank is not None else None,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(terse=True),
            "cpu_count": os.cpu_count(),
            "usable_cores": usable_cores(),
            "cuda_available": cuda,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "gpu_total_memory_bytes": gpu_total_memory() if cuda else None,
            **host_memory(),
            "torch_threads": torch.get_num_threads(),
            **self.meta_extra,
        }


def profile(out: Optional[str] = None, budget: float = 1.0, name: str = "run",
            max_steps: Optional[int] = None, max_time: Optional[float] = None,
            progress: Optional[bool] = False, monitors=None,
            monitor_options: Optional[dict] = None, trace: Optional[dict] = None) -> Profiler:
    """Profile the code in a ``with`` block::

        with nnprof.profile(budget=1.0) as run:
            train()
        run.summary()
    """
    return Profiler(out=out, budget=budget, name=name, script=sys.argv[0] if sys.argv else None,
                    argv=list(sys.argv), max_steps=max_steps, max_time=max_time,
                    progress=progress, monitors=monitors, monitor_options=monitor_options,
                    trace=trace)
