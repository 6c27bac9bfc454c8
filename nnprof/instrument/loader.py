"""DataLoader iteration and loader-side phases, in the main process and in workers.

* ``DataLoader.__init__``: remembers where each loader is constructed (the
  user's own frame: see ``call_site``) and how many were built there before
  it, which names it across runs.
* ``DataLoader.__iter__``: times iterator creation (worker start-up) and, for
  multi-process loading, hands the workers a picklable ``WorkerInit`` that
  wraps the user's ``worker_init_fn`` (swapped in only while the iterator is
  built, so the loader object the script sees keeps its own attribute).
* ``_BaseDataLoaderIter.__next__``: the ``data`` phase of the step clock.
* ``_MultiProcessingDataLoaderIter._shutdown_workers``: the time a pass's
  workers take to shut down.
* the dataset fetchers (``fetch.py``): one batch's ``fetch``
  (``__getitem__``), the dataset's ``transform`` / ``target_transform`` /
  ``transforms`` (and each member of a ``Compose``, ``transforms.py``), and
  ``collate``, in the main process or in the worker that made the batch.
"""
from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import Optional

import torch
from torch.utils.data import DataLoader
from torch.utils.data import dataloader as dl_module

from .fetch import _STATE, BatchFile, MainSink, WorkerInit, _patch_fetchers
from .frames import CodeOwners
from .patching import Patches
from .restrict import Restriction
from .sites import call_site
from .steps import StepClock
from .transforms import transform_names

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
        if self._nnprof_starts and n < self._num_workers:
            if n == 0:
                return first_from_new_workers(self, lid, wrapped)
            if not wrapped:
                return from_worker_starting(self, lid, n)
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

    def from_worker_starting(it, lid, n):
        """Indices go to a pass's workers in turn, so batch ``n`` (``n`` below the
        number of workers) is worker ``n``'s first. The workers start together but
        finish starting apart (one of two spawned on two busy cores may take a few
        hundred ms longer): the wait for that batch is the rest of the pass's start-up
        (``fill`` in loaders.jsonl), no step's. A worker that was ready makes it ~0."""
        asked = clock.clock()
        t_start = time.perf_counter_ns()
        try:
            batch = original_next(it)
        except StopIteration:  # fewer batches than workers
            clock.loader_next(lid, False, False, asked=asked)
            clock.loader_exhausted(it._nnprof_ahead)
            raise
        except BaseException:
            clock.loader_next(lid, False, False, asked=asked)
            clock.loader_got()
            raise
        t_end = time.perf_counter_ns()
        writer.loader_event({"event": "fill", "loader": lid, "batch": n,
                             "t_s": (t_start - t0) / 1e9,
                             "duration_s": (t_end - t_start) / 1e9})
        clock.loader_next(lid, False, False, asked=asked)
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
