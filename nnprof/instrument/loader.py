"""DataLoader iteration and loader-side phases, in the main process and in workers.

* ``DataLoader.__init__``: remembers where each loader is constructed (the
  user's own frame: see ``call_site``) and how many were built there before
  it, which names it across runs.
* ``DataLoader.__iter__``: times iterator creation (worker start-up) and, for
  multi-process loading, hands the workers a picklable ``WorkerInit`` that
  wraps the user's ``worker_init_fn`` (swapped in only while the iterator is
  built, so the loader object the script sees keeps its own attribute).
* ``_BaseDataLoaderIter.__next__``: the ``data`` phase of the step clock.
* the dataset fetchers: one batch's ``fetch`` (``__getitem__``), the
  dataset's ``transform`` / ``target_transform`` / ``transforms`` (and each
  member of a ``Compose``), and ``collate``. Transforms are swapped for timing
  wrappers only for the duration of one fetch, walking nested datasets
  (``Subset.dataset``, ``ConcatDataset.datasets``).

Where the batch was made decides where its timings go (``_STATE.sink``): the
main process adds them to the open step and to its own batch file; a worker
appends them to ``loader/<pid>.csv`` in the run directory, flushed per batch.
Time per transform is kept per loader, since the main process may serve
several loaders (a training and a validation one) with different transforms.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import weakref
from typing import Optional

import torch
from torch.utils.data import DataLoader
from torch.utils.data import dataloader as dl_module
from torch.utils.data._utils import fetch as fetch_module

from ..appendfile import AppendFile
from .patching import Patches
from .frames import CodeOwners
from .restrict import Restriction
from .sites import call_site
from .steps import COLLATE, FETCH, TRANSFORM, StepClock
from .transforms import TIMING, _Swap, transform_names

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
        swap = _Swap(self.dataset, sink.by_name)
        quiet = sink.quiet()
        try:
            with swap:
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
    fetch.__wrapped__ = original
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
        if self.by_name and (now - self.last_names > 500_000_000 or self.last_names == 0):
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
        if self.by_name:
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
        self.clock.add_loader_time(FETCH, f)
        self.clock.add_loader_time(TRANSFORM, t)
        self.clock.add_loader_time(COLLATE, c)
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
            from .. import instrument
            instrument.detach_in_child()
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


# -- the loader itself -----------------------------------------------------
def describe_dataset(ds, depth: int = 0) -> str:
    name = type(ds).__name__
    if depth > 3:
        return name
    inner = getattr(ds, "dataset", None)
    many = getattr(ds, "datasets", None)
    if inner is not None and hasattr(ds, "indices"):
        return f"{name}({describe_dataset(inner, depth + 1)})"
    if isinstance(many, (list, tuple)) and many:
        return f"{name}(" + ", ".join(describe_dataset(d, depth + 1) for d in many[:4]) + ")"
    if inner is not None and not isinstance(inner, (str, bytes)) and hasattr(inner, "__getitem__"):
        return f"{name}({describe_dataset(inner, depth + 1)})"
    return name


def loader_meta(loader: DataLoader, lid: str, site: tuple) -> dict:
    ctx = loader.multiprocessing_context
    if loader.num_workers > 0:
        method = ctx.get_start_method() if ctx is not None else \
            torch.multiprocessing.get_start_method(allow_none=True) or \
            torch.multiprocessing.get_context().get_start_method()
    else:
        method = None
    try:
        length = len(loader)
    except TypeError:
        length = None
    try:
        n_items = len(loader.dataset)
    except TypeError:
        n_items = None
    return {
        "id": lid,
        "site": {"file": site[0], "line": site[1], "function": site[2],
                 "index": site[3] if len(site) > 3 else 0},
        "dataset": describe_dataset(loader.dataset),
        "dataset_len": n_items,
        "iterable": isinstance(loader.dataset, torch.utils.data.IterableDataset),
        "batch_size": loader.batch_size,
        "len": length,
        "num_workers": loader.num_workers,
        "persistent_workers": bool(loader.persistent_workers),
        "pin_memory": bool(loader.pin_memory),
        "prefetch_factor": loader.prefetch_factor if loader.num_workers > 0 else None,
        "start_method": method,
        "sampler": type(loader.sampler).__name__ if loader.sampler is not None else None,
        "shuffle": type(loader.sampler).__name__ == "RandomSampler",
        "drop_last": loader.drop_last,
        "transforms": transform_names(loader.dataset),
    }


def install(clock: StepClock, writer, run_dir: str, t0: int,
            restrict: Optional[dict] = None) -> Patches:
    """``writer.loader_event(dict)`` receives loader metadata and iterator timings.

    ``restrict`` ({"file", "line", "index", "examples"}): the DataLoader built at
    that site (the ``index``-th built there, and later ones over the same
    dataset; every one without ``index``) serves only ``examples`` items of its
    dataset (an overfit rung, see ``restrict.Restriction``).
    """
    patches = Patches()
    get_ident = threading.get_ident
    sites: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
    ids: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
    live_iters: "weakref.WeakSet" = weakref.WeakSet()
    counter = [0]

    batches = BatchFile(run_dir, t0, flush_every_s=0.25)
    _STATE.sink = MainSink(clock, batches)
    _patch_fetchers(patches)
    patches.add_undo(lambda: setattr(_STATE, "sink", None))
    patches.add_undo(batches.close)

    original_init = DataLoader.__dict__["__init__"]

    restriction = Restriction(restrict, writer)

    def init(self, *args, **kwargs):
        site = call_site()
        args, kwargs, index = restriction(original_init, self, args, kwargs, site)
        original_init(self, *args, **kwargs)
        sites[self] = site + (index,)

    patches.set(DataLoader, "__init__", init)

    def loader_id(loader) -> str:
        lid = ids.get(loader)
        if lid is None:
            lid = f"L{counter[0]}"
            counter[0] += 1
            ids[loader] = lid
            site = sites.get(loader) or ("?", 0, "?")
            try:
                writer.loader_event({"event": "loader", **loader_meta(loader, lid, site)})
            except Exception as exc:  # metadata is a nicety, never a failure
                writer.loader_event({"event": "loader", "id": lid, "error": repr(exc)})
        return lid

    original_get_iterator = DataLoader.__dict__["_get_iterator"]

    def get_iterator(self):
        if self.num_workers <= 0:
            return original_get_iterator(self)
        lid = loader_id(self)
        user_fn = self.worker_init_fn
        self.worker_init_fn = WorkerInit(user_fn, run_dir, t0, lid)
        try:
            it = original_get_iterator(self)
        finally:
            self.worker_init_fn = user_fn
        live_iters.add(it)
        return it

    patches.set(DataLoader, "_get_iterator", get_iterator)

    original_iter = DataLoader.__dict__["__iter__"]

    def loader_iter(self):
        if get_ident() != clock.thread_id:
            return original_iter(self)
        lid = loader_id(self)
        clock.loader_iter()  # a loop over a loader still open has ended
        # workers start now unless persistent ones from an earlier pass are reused
        starts = self.num_workers > 0 and (
            not self.persistent_workers or getattr(self, "_iterator", None) is None)
        t_start = time.perf_counter_ns()
        it = original_iter(self)
        t_end = time.perf_counter_ns()
        it._nnprof_loader = lid
        it._nnprof_n = 0  # persistent workers: the same iterator object, a new pass
        it._nnprof_ahead = False
        it._nnprof_starts = starts
        writer.loader_event({"event": "iter", "loader": lid, "t_s": (t_start - t0) / 1e9,
                             "duration_s": (t_end - t_start) / 1e9})
        return it

    patches.set(DataLoader, "__iter__", loader_iter)

    original_next = dl_module._BaseDataLoaderIter.__dict__["__next__"]

    owners = CodeOwners()
    getframe = sys._getframe

    def iter_next(self):
        lid = getattr(self, "_nnprof_loader", None)
        if lid is None or get_ident() != clock.thread_id:
            return original_next(self)
        _STATE.current_loader = lid
        # asked from a library (accelerate, Lightning, HF Trainer), not the loop itself
        wrapped = owners.library(getframe(1).f_code)
        n = self._nnprof_n
        self._nnprof_n = n + 1
        if n == 0 and self._nnprof_starts:
            return first_from_new_workers(self, lid, wrapped)
        if clock.loader_next(lid, wrapped, n == 0) and n == 1 and wrapped:
            self._nnprof_ahead = True  # asked twice before any model work: fetches ahead
        try:
            batch = original_next(self)
        except StopIteration:
            clock.loader_exhausted(self._nnprof_ahead)
            raise
        except BaseException:
            clock.loader_got()
            raise
        clock.loader_got()
        return batch

    def first_from_new_workers(it, lid, wrapped):
        """Workers start asynchronously: the wait for a pass's first batch is their
        start-up (spawning, imports, ``worker_init_fn``), a cost of the pass, not of a
        step. It is recorded as such; the step begins when the batch arrives."""
        t_start = time.perf_counter_ns()
        try:
            batch = original_next(it)
        finally:
            t_end = time.perf_counter_ns()
            writer.loader_event({"event": "first_batch", "loader": lid,
                                 "t_s": (t_start - t0) / 1e9,
                                 "duration_s": (t_end - t_start) / 1e9})
        clock.loader_next(lid, wrapped, True, startup=True)
        clock.loader_got()
        return batch

    patches.set(dl_module._BaseDataLoaderIter, "__next__", iter_next)

    mp_iter = dl_module._MultiProcessingDataLoaderIter
    original_shutdown = mp_iter.__dict__["_shutdown_workers"]

    def timed_shutdown(self):
        lid = getattr(self, "_nnprof_loader", None)
        if lid is None or getattr(self, "_shutdown", True) or get_ident() != clock.thread_id:
            return original_shutdown(self)
        t_start = time.perf_counter_ns()
        try:
            return original_shutdown(self)
        finally:
            t_end = time.perf_counter_ns()
            writer.loader_event({"event": "shutdown", "loader": lid,
                                 "t_s": (t_start - t0) / 1e9,
                                 "duration_s": (t_end - t_start) / 1e9})

    patches.set(mp_iter, "_shutdown_workers", timed_shutdown)

    def shutdown_workers():
        for it in list(live_iters):
            try:
                it._shutdown_workers()
            except Exception:
                pass

    patches.shutdown_workers = shutdown_workers
    patches.batches = batches
    return patches


def detach_in_child() -> None:
    """A forked child must not write the parent's batch lines."""
    sink = _STATE.sink
    if isinstance(sink, MainSink):
        sink.file.abandon()
    _STATE.sink = None
