"""Zero-code hooks into PyTorch; ``install()`` returns a handle with ``uninstall()``.

The hooks patch PyTorch itself (modules, autograd, optimizers, schedulers,
DataLoader and its workers, collectives) and report to one step clock
(:mod:`.steps` over :mod:`.phaseclock`); :class:`Instrumentation` installs them all
for one run, :mod:`.active` knows the one installed in this process. They import
torch and the run's model (:mod:`nnprof.rundir`: the phase names, the append-only
file), nothing else of nnprof; the session, the runner and the summary's cost
estimate sit above them.
"""
from __future__ import annotations

import os
import weakref
from typing import Callable, Optional

import torch

from . import active, autograd, loader, model, optim, sched
from . import fetch
from .comm import CommWait
from .cuda import (LossCopies, PendingSteps, cuda_pool, GpuTimeline, mem_now_reader,
                   mem_peak_reader)
from .steps import StepClock, StepRecord, StopRun  # noqa: F401
from .procmem import process_rss

RSS_AFTER_TORCH = process_rss()  # nnprof's own memory: what the process adds after this

KEEP_WATCH_FROM = 16  # the losses watched for being kept: captures 16, 32, 64, ...
KEEP_AGE = 32         # ... once this many losses later


class Instrumentation:
    """All hooks of one run around one :class:`StepClock`.

    ``emit(record)`` receives finished steps in order, with device times and
    loss resolved; ``writer`` takes loader events (see ``run.RunWriter``).
    """

    def __init__(self, emit: Callable[[StepRecord], None], writer, run_dir: str,
                 t0: int, on_module=None, on_optimizer=None, on_scheduler=None,
                 probe=None, observer_factory=None, restrict_loader: Optional[dict] = None,
                 freeze_schedulers: bool = False, on_forward=None, replay=None,
                 on_direct=None, activations=None, on_calls=None) -> None:
        self.emit = emit
        self.writer = writer
        self.run_dir = run_dir
        self.t0 = t0
        self.on_module = on_module
        self.on_optimizer = on_optimizer
        self.on_scheduler = on_scheduler
        self.on_forward = on_forward
        self.on_direct = on_direct
        self.on_calls = on_calls
        self.activations = activations  # an ActivationMeter, or None
        self.probe = probe
        self.restrict_loader = restrict_loader
        self.freeze_schedulers = freeze_schedulers
        self.replay = replay
        self.cuda_available = _cuda_available()
        self._pool = None
        self._losses = None
        self.pending = PendingSteps(emit)
        # without CUDA no step has a device timeline to wait for: steps go straight out;
        # the allocator's peak is read only on steps that have a device timeline
        self.clock = StepClock(self._on_record if self.cuda_available else emit,
                               gpu_factory=self._gpu_timeline
                               if self.cuda_available else None,
                               mem_peak=mem_peak_reader() if self.cuda_available else None,
                               mem_now=mem_now_reader() if self.cuda_available else None)
        self.observer = observer_factory(self.clock, self._capture_loss) \
            if observer_factory is not None else None
        self._handles: list = []
        self.comm = CommWait()
        self._captures = 0
        self._watched: list = []   # (capture number, weakref to that step's loss)
        self.kept = {"alive": 0, "watched": 0}

    # CUDA is probed once; events start once the script has initialised CUDA
    def _gpu_timeline(self):
        if not torch.cuda.is_initialized():
            return None
        if self._pool is None:
            self._pool = cuda_pool()
        return GpuTimeline(self._pool)

    def _capture_loss(self, t, watch=None):
        """``t``: the loss to record (a tensor, or a CPU loss's value as a float);
        ``watch``: the script's tensor that backward() ran on (default ``t``), watched
        for staying alive (a leak)."""
        n = self._captures = self._captures + 1
        if n >= KEEP_WATCH_FROM and n & (n - 1) == 0:  # a few, log-spaced: 16, 32, 64, ...
            try:
                self._watched.append((n, weakref.ref(t if watch is None else watch)))
            except TypeError:
                pass
        if type(t) is float:
            return t
        if t.is_cuda:
            if self._losses is None:
                self._losses = LossCopies()
            return self._losses.capture(t)
        # the CPU scalar itself: read with .item() when its row is written (a few
        # steps later); its graph's buffers were already freed by backward()
        return t

    def _on_record(self, rec: StepRecord) -> None:
        if rec.gpu is not None or self.pending.queue:
            self.pending.add(rec)
        else:
            self.emit(rec)

    def check_kept_losses(self) -> None:
        """How many watched losses of steps long past are still alive (something keeps
        them, and their graphs): called at a few train steps, never per step."""
        old = [ref for n, ref in self._watched if n <= self._captures - KEEP_AGE]
        if old:
            alive = sum(1 for ref in old if ref() is not None)
            if alive >= self.kept["alive"]:
                self.kept = {"alive": alive, "watched": len(old)}

    def install(self) -> "Instrumentation":
        if active.current() is not None:
            raise RuntimeError("nnprof is already profiling in this process")
        try:
            self._handles.append(self.comm)
            self._handles.append(model.install(self.clock, self.on_module, self.observer,
                                               self.on_forward, self.replay,
                                               self.on_direct, self.activations,
                                               self.on_calls))
            self._handles.append(autograd.install(self.clock, self._capture_loss,
                                                  self.observer, self.comm,
                                                  self.activations))
            self._handles.append(optim.install(self.clock, self.on_optimizer, self.probe))
            self._handles.append(sched.install(self.on_scheduler, self.freeze_schedulers))
            self.loader = loader.install(self.clock, self.writer, self.run_dir, self.t0,
                                         self.restrict_loader)
            self._handles.append(self.loader)
        except BaseException:
            self.uninstall()
            raise
        active.set_current(self)
        return self

    def finish(self) -> None:
        """Close the open step and resolve every pending one (one sync on CUDA)."""
        self.clock.finish()
        sync = torch.cuda.synchronize if self.cuda_available and torch.cuda.is_initialized() \
            else None
        self.pending.drain(sync)

    def shutdown_workers(self) -> None:
        """Let live loader workers exit cleanly so their last timings are written."""
        if hasattr(self, "loader"):
            self.loader.shutdown_workers()

    def uninstall(self) -> None:
        while self._handles:
            self._handles.pop().uninstall()
        active.clear(self)


def resolve_loss(ref) -> Optional[float]:
    if ref is None or type(ref) is float:
        return ref
    if isinstance(ref, tuple):
        copies, i = ref
        return copies.read(i)
    try:
        return float(ref.item())
    except (TypeError, ValueError, RuntimeError, AttributeError):
        return None


def _cuda_available() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:
        return False


if hasattr(os, "register_at_fork"):  # a forked child's inherited hooks go quiet
    os.register_at_fork(after_in_child=fetch.detach_in_child)
