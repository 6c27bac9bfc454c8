"""Communication wait: the part of ``backward`` spent waiting for collectives.

Under DDP (and FSDP, and any data-parallel wrapper that reduces gradients as backward
makes them) the autograd graph finishes when the rank's last gradient is computed;
the wrapper then waits, in a callback the autograd engine runs at the end of the
backward (``finalize_backward``), until every gradient bucket is reduced: as long as
the slowest rank keeps the others waiting. So nnprof queues a callback of its own at
the start of each outermost backward (from a hook on the tensor ``backward()`` is
called on, the first node the engine runs): the engine runs callbacks in the order
they were queued, so it runs before the wrapper's and notes when the graph finished;
the time from then until ``backward()`` returns is the step's ``comm_wait``. Two
Python calls per backward, whatever the size of the model.

Only where a process group of two or more ranks is initialised (``torch.distributed``):
a single-process run pays one ``is_initialized()`` call per backward. Host clock only:
with NCCL on CUDA the host does not wait in ``backward`` (the wait is queued on the
device), so the figure is the host-side part.
"""
from __future__ import annotations

import time

import torch


def distributed_world() -> int:
    """The size of the default process group, 0 when there is none."""
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_world_size())
    except Exception:
        pass
    return 0


def _c10d_world():
    """c10d's world object, whose ``_default_pg`` says in one attribute read whether the
    default process group exists (asked at every backward), or None where this torch
    has no such attribute."""
    try:
        import torch.distributed as dist
        if dist.is_available():
            world = getattr(dist.distributed_c10d, "_world", None)
            if world is not None and "_default_pg" in getattr(world, "__dict__", {}):
                return world
    except Exception:
        pass
    return None


def _initialised():
    """``dist.is_initialized`` (three frames), for a torch without c10d's world object."""
    try:
        import torch.distributed as dist
        if dist.is_available():
            return dist.is_initialized
    except Exception:
        pass
    return lambda: False


class CommWait:
    """Times the end of a backward: from the graph's end to ``backward()``'s return."""

    def __init__(self) -> None:
        self.graph_done_ns = 0
        self._c10d = _c10d_world()
        self._initialised = _initialised() if self._c10d is None else None
        self._world = 0
        try:
            self._queue = torch.autograd.Variable._execution_engine.queue_callback
        except AttributeError:  # an autograd engine without callbacks: nothing measured
            self._queue = None
        clock = time.perf_counter_ns

        def done() -> None:
            self.graph_done_ns = clock()

        def on_root_grad(grad):
            self._queue(done)
            return None

        self._on_root_grad = on_root_grad

    def active(self) -> bool:
        """A process group of two or more ranks exists (checked cheaply per backward)."""
        world = self._c10d
        if world is not None:
            if world._default_pg is None:
                return False  # the common case, no process group: one attribute read
        elif not self._initialised():
            return False
        if self._queue is None:
            return False
        if not self._world:
            self._world = distributed_world()
        return self._world >= 2

    def arm(self, tensor):
        """Before the backward of ``tensor``: a handle to :meth:`disarm`, or None."""
        if not isinstance(tensor, torch.Tensor) or not tensor.requires_grad \
                or tensor.grad_fn is None:
            return None
        try:
            return tensor.register_hook(self._on_root_grad)
        except RuntimeError:
            return None

    def gap(self, since_ns: int, now_ns: int) -> int:
        """The wait after the graph of a backward that began at ``since_ns`` finished,
        to ``now_ns`` when it returned; 0 if that graph's end was not seen."""
        done = self.graph_done_ns
        return now_ns - done if since_ns <= done <= now_ns else 0

    @staticmethod
    def disarm(handle) -> None:
        if handle is not None:
            handle.remove()

    def uninstall(self) -> None:
        self.graph_done_ns = 0
