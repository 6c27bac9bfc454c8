"""Making a batch: fetch, transform and collate timings, in the main process and in
loader workers, and where they go (``_STATE.sink``).

The main process adds them to the open step and to its own batch file
(``MainSink``); a worker appends them to ``loader/<pid>.csv`` in the run
directory, flushed per batch (``WorkerSink``, installed by the picklable
``WorkerInit``). Time per transform is kept per loader, since the main process
may serve several loaders (a training and a validation one) with different
transforms.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Optional

from torch.utils.data._utils import fetch as fetch_module

from ..rundir.appendfile import AppendFile
from . import active
from .patching import Patches, look_like
from .steps import StepClock
from .transforms import TIMING, _Swap, transform_slots

BATCH_HEADER = "loader,worker,pid,start_ns,end_ns,fetch_ns,transform_ns,collate_ns,items\n"


class _State:
    """Module-level so that forked workers inherit it and spawned ones rebuild it."""
    sink = None
    current_loader: Optional[str] = None
    fetch_patched = False
    collate_ns = 0


_STATE = _State()


# -- fetch timing (main process and workers) ---------------------------------
class _TimedCollate:
    __slots__ = ("fn",)

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, data):
        t0 = time.perf_counter_ns()
        try:
            return self.fn(data)
        finally:
            _STATE.collate_ns += time.perf_counter_ns() - t0


def _timed_fetch(original):
    def fetch(self, possibly_batched_index):
        sink = _STATE.sink
        if sink is None or not sink.accepts():
            return original(self, possibly_batched_index)
        if not isinstance(self.collate_fn, _TimedCollate):
            self.collate_fn = _TimedCollate(self.collate_fn)
        st = _STATE
        TIMING.t_total = 0
        st.collate_ns = 0
        t0 = time.perf_counter_ns()
        slots = transform_slots(self.dataset)
        quiet = sink.quiet()
        try:
            if slots:
                with _Swap(slots, sink.by_name):
                    batch = original(self, possibly_batched_index)
            else:  # no transform to time (the usual case for tensors and tokens)
                batch = original(self, possibly_batched_index)
        finally:
            sink.loud(quiet)
        t1 = time.perf_counter_ns()
        try:
            items = len(possibly_batched_index)
        except TypeError:
            items = 1
        total = t1 - t0
        fetch_ns = max(0, total - TIMING.t_total - st.collate_ns)
        sink.batch(t0, t1, fetch_ns, TIMING.t_total, st.collate_ns, items)
        return batch
    look_like(fetch, original)
    return fetch


def _patch_fetchers(patches: Optional[Patches]) -> None:
    for cls in (fetch_module._MapDatasetFetcher, fetch_module._IterableDatasetFetcher):
        original = cls.__dict__["fetch"]
        if getattr(original, "__wrapped__", None) is not None:
            continue
        if patches is not None:
            patches.set(cls, "fetch", _timed_fetch(original))
        else:
            cls.fetch = _timed_fetch(original)
    _STATE.fetch_patched = True


class BatchFile:
    """Appends one line per batch to ``loader/<pid>.csv``; raw fd, own buffer."""

    def __init__(self, run_dir: str, t0: int, flush_every_s: float = 0.0) -> None:
        self.dir = os.path.join(run_dir, "loader")
        os.makedirs(self.dir, exist_ok=True)
        self.pid = os.getpid()
        self.out = AppendFile(os.path.join(self.dir, f"{self.pid}.csv"), BATCH_HEADER)
        self.t0 = t0
        self.by_name: dict = {}  # loader id -> {transform name: ns}
        self.flush_every = int(flush_every_s * 1e9)
        self.last_flush = 0
        self.last_names = 0

    def row(self, loader, worker, start, end, f, t, c, items) -> None:
        self.out.append(f"{loader},{worker},{self.pid},{start - self.t0},{end - self.t0},"
                        f"{f},{t},{c},{items}\n")
        if end - self.last_flush >= self.flush_every:
            self.flush(end)

    def flush(self, now: Optional[int] = None) -> None:
        now = time.perf_counter_ns() if now is None else now
        self.out.flush()
        self.last_flush = now
        if (now - self.last_names > 500_000_000 or self.last_names == 0) and \
                any(self.by_name.values()):  # loaders without transforms: nothing to write
            self.write_names()
            self.last_names = now

    def write_names(self) -> None:
        path = os.path.join(self.dir, f"{self.pid}.json")
        try:
            with open(path + ".tmp", "w") as fh:
                json.dump({"pid": self.pid, "transform_ns": self.by_name}, fh)
            os.replace(path + ".tmp", path)
        except OSError:
            pass

    def close(self) -> None:
        self.flush()
        if any(self.by_name.values()):
            self.write_names()
        self.out.close()

    def abandon(self) -> None:
        """In a forked child: drop the parent's pending lines, write nothing."""
        self.out.abandon()


class MainSink:
    """Main-process loading (``num_workers=0``): timings go to the open step too."""

    def __init__(self, clock: StepClock, batches: BatchFile) -> None:
        self.clock = clock
        self.file = batches

    @property
    def by_name(self) -> dict:
        return self.file.by_name.setdefault(_STATE.current_loader or "", {})

    def accepts(self) -> bool:
        return threading.get_ident() == self.clock.thread_id

    def quiet(self) -> int:
        """Making a batch is loader work: the model hooks must not see the module calls
        of ``nn.Module`` transforms (torchvision v2) as forward passes, nor a loss or a
        backward inside ``__getitem__`` as training. They pass calls through untouched
        in any thread but the clock's, so the clock's thread is hidden while it fetches."""
        tid, self.clock.thread_id = self.clock.thread_id, -1
        return tid

    def loud(self, tid: int) -> None:
        self.clock.thread_id = tid

    def batch(self, start, end, f, t, c, items) -> None:
        self.clock.add_batch_times(f, t, c)  # FETCH, TRANSFORM, COLLATE
        self.file.row(_STATE.current_loader or "", -1, start, end, f, t, c, items)


class WorkerSink:
    """Inside a loader worker process."""

    def __init__(self, run_dir: str, t0: int, loader: str, worker_id: int) -> None:
        self.file = BatchFile(run_dir, t0)
        self.by_name = self.file.by_name.setdefault(loader, {})
        self.loader = loader
        self.worker = worker_id

    def accepts(self) -> bool:
        return True

    def quiet(self) -> int:
        return 0

    def loud(self, tid: int) -> None:
        pass

    def batch(self, start, end, f, t, c, items) -> None:
        self.file.row(self.loader, self.worker, start, end, f, t, c, items)


class WorkerInit:
    """Picklable ``worker_init_fn``: starts worker-side timing, then the user's own."""

    def __init__(self, original, run_dir: str, t0: int, loader: str) -> None:
        self.original = original
        self.run_dir = run_dir
        self.t0 = t0
        self.loader = loader

    def __call__(self, worker_id: int):
        try:
            detach_in_child()
            _patch_fetchers(None)
            sink = WorkerSink(self.run_dir, self.t0, self.loader, worker_id)
            _STATE.sink = sink
            from multiprocessing import util
            util.Finalize(sink, sink.file.close, exitpriority=10)
        except Exception:  # timing is optional; the user's loader is not
            _STATE.sink = None
        if self.original is not None:
            return self.original(worker_id)
        return None


def detach_in_child() -> None:
    """In a forked child (a loader worker, or the script's own fork): the inherited
    hooks go quiet, and the parent's batch lines are not written here."""
    active.quiet_inherited()
    sink = _STATE.sink
    if isinstance(sink, MainSink):
        sink.file.abandon()
    _STATE.sink = None
