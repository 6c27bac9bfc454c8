"""Device-side phase times from CUDA events, resolved without a per-step sync.

At every phase boundary of a step an event is recorded on the current stream.
The device time of a segment is the elapsed time between its two events: how
long the GPU took to get from one boundary to the next, idle waiting included,
so a phase whose kernels run after the host has moved on is still charged with
them. A step's events are read once its last event has completed
(``Event.query()``), checked as later steps finish; the run's end synchronises
once. The loss scalar is copied to pinned host memory on the same stream, so
reading it never blocks either.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Optional


class GpuTimeline:
    """Events of one step; ``phases()`` gives device seconds per phase."""

    __slots__ = ("pool", "events", "seg_phases", "closed")

    def __init__(self, pool: "EventPool") -> None:
        self.pool = pool
        self.events = [pool.take()]
        self.seg_phases: list = []
        self.closed = False

    def mark(self, phase: int) -> None:
        if self.closed:
            return
        self.events.append(self.pool.take())
        self.seg_phases.append(phase)

    def close(self) -> None:
        self.closed = True

    def absorb(self, later: "GpuTimeline") -> None:
        # the later step's first event begins a segment owned by no phase
        self.seg_phases.append(None)
        self.events.extend(later.events)
        self.seg_phases.extend(later.seg_phases)

    def ready(self) -> bool:
        return self.events[-1].query()

    def phases(self, n: int = 7) -> list:
        out = [0.0] * n
        ev = self.events
        for i, phase in enumerate(self.seg_phases):
            if phase is not None:
                out[phase] += ev[i].elapsed_time(ev[i + 1]) / 1e3
        return out

    def release(self) -> None:
        self.pool.give_back(self.events)
        self.events = []


class EventPool:
    """Reuses timing events; ``make`` creates and records one (injectable for tests)."""

    def __init__(self, make: Callable[[], object], record: Callable[[object], None]) -> None:
        self.make = make
        self.record = record
        self.free: list = []

    def take(self):
        ev = self.free.pop() if self.free else self.make()
        self.record(ev)
        return ev

    def give_back(self, events) -> None:
        self.free.extend(events)


class PendingSteps:
    """Steps waiting for their events; ``poll`` passes on those complete, in order."""

    def __init__(self, emit: Callable) -> None:
        self.emit = emit
        self.queue: deque = deque()

    def add(self, rec) -> None:
        self.queue.append(rec)
        self.poll()

    def poll(self) -> None:
        q = self.queue
        while q and (q[0].gpu is None or q[0].gpu.ready()):
            self._resolve(q.popleft())

    def drain(self, synchronize: Optional[Callable[[], None]] = None) -> None:
        if self.queue and synchronize is not None:
            synchronize()
        while self.queue:
            self._resolve(self.queue.popleft())

    def _resolve(self, rec) -> None:
        if rec.gpu is not None:
            try:
                rec.gpu_phases = rec.gpu.phases()
            finally:
                rec.gpu.release()
                rec.gpu = None
        self.emit(rec)


def cuda_pool():
    """An EventPool on real CUDA events."""
    import torch
    return EventPool(lambda: torch.cuda.Event(enable_timing=True), lambda ev: ev.record())


class LossCopies:
    """Copies scalar losses to pinned host memory without blocking."""

    def __init__(self, size: int = 256) -> None:
        import torch
        self.buf = torch.empty(size, dtype=torch.float32, pin_memory=True)
        self.size = size
        self.i = 0

    def capture(self, t):
        i = self.i
        self.i = (i + 1) % self.size
        self.buf[i].copy_(t.detach().reshape(()), non_blocking=True)
        return (self, i)

    def read(self, i) -> float:
        return float(self.buf[i])


def mem_peak_reader() -> Callable[[], Optional[int]]:
    """A function returning the caching allocator's peak allocated bytes on the
    current device (``torch.cuda.max_memory_allocated()``), or None.

    A host-side statistic: no device sync. The peak is never reset here, so a
    script that reads ``max_memory_allocated()`` itself sees what it would see
    without nnprof. The nested stats are read directly where torch has them
    (``max_memory_allocated`` flattens every allocator statistic first); after
    a failure the reader returns None for the rest of the run.
    """
    import torch
    raw = getattr(torch._C, "_cuda_memoryStats", None)
    current = torch.cuda.current_device
    broken = [False]

    def read() -> Optional[int]:
        if broken[0]:
            return None
        try:
            if raw is not None:
                return int(raw(current())["allocated_bytes"]["all"]["peak"])
            return int(torch.cuda.max_memory_allocated())
        except Exception:
            broken[0] = True
            return None
    return read


def mem_now_reader() -> Callable[[], tuple]:
    """A function returning the caching allocator's (allocated, reserved) bytes now on
    the current device, or (None, None): host-side counters, no device sync."""
    import torch
    raw = getattr(torch._C, "_cuda_memoryStats", None)
    current = torch.cuda.current_device
    broken = [False]

    def read() -> tuple:
        if broken[0]:
            return None, None
        try:
            if raw is not None:
                st = raw(current())
                return (int(st["allocated_bytes"]["all"]["current"]),
                        int(st["reserved_bytes"]["all"]["current"]))
            return int(torch.cuda.memory_allocated()), int(torch.cuda.memory_reserved())
        except Exception:
            broken[0] = True
            return None, None
    return read
