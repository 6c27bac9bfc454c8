"""One step's record: its phases and counts, open while measured, then written."""
from __future__ import annotations

from typing import Optional

from ..rundir.phases import (BACKWARD, COLLATE, DATA, FETCH, FORWARD,  # noqa: F401
                             LOADER_PHASES, LOSS, OPTIMIZER, OTHER, PHASES, PREP, TRANSFORM)


class StepRecord:
    """One step, open while it is measured, then handed to the sink.

    Times are nanoseconds of ``time.perf_counter_ns``. ``phases`` holds the
    seven main-process phases (they sum to ``end - start``); ``loader_phases``
    the main-process fetch/transform/collate time (zero when loader workers did
    the loading); ``gpu_phases`` the device-side seconds per phase when CUDA
    events were recorded (None otherwise); ``loss_ref`` the last scalar that
    ``backward()`` was called on, read when the step is written;
    ``gpu_mem_peak`` the CUDA caching allocator's peak allocated bytes
    (``torch.cuda.max_memory_allocated()``) read when the step closed, on
    steps with a device timeline only (None otherwise). nnprof never resets
    that statistic, so it is the high-water mark since the process started or
    the script last called ``torch.cuda.reset_peak_memory_stats()``.
    ``gpu_mem_alloc`` / ``gpu_mem_reserved`` the allocator's allocated and reserved
    bytes when the step closed (steps with a device timeline only); ``rss`` the host
    process's resident bytes at its latest sample when the step was recorded.
    ``comm_wait`` the part of ``backward`` spent waiting for collectives (ns), None
    where it is not measured (no distributed process group of several ranks).
    """

    # Defaults live on the class: a new record sets five attributes, not twenty-seven
    # (one is opened per step, between two of the script's calls).
    end = 0
    kind = "eval"
    n_forward = 0
    n_backward = 0
    n_optimizer = 0
    optimizers: tuple = ()
    loss_ref = None
    eval_loss_ref = None
    gpu_phases: Optional[list] = None
    gpu_mem_peak: Optional[int] = None
    train_activity = False
    base = PREP
    n_batches = 1       # loader requests (wrapped loaders: several per step)
    ahead = 0           # of them, the batch a wrapper holds ahead of the loop
    pass_start = False  # the first step of a pass that started loader workers
    other_mark = 0      # 'other' time when the last top-level backward ended
    comm_wait: Optional[int] = None
    rss: Optional[int] = None              # host resident bytes, last sample
    gpu_mem_alloc: Optional[int] = None    # allocator's bytes at the step's end
    gpu_mem_reserved: Optional[int] = None
    n_loss = 0          # loss calls (a gradient-free step with none is no eval step)
    eval_keys: tuple = ()  # top-level modules called without gradients, no loader

    def __init__(self, start: int, loader: Optional[str] = None, gpu=None) -> None:
        self.start = self.end = start
        self.phases = [0, 0, 0, 0, 0, 0, 0]
        self.loader_phases = [0, 0, 0]
        self.loader = loader
        self.gpu = gpu

    @property
    def spare(self) -> int:
        """Batches this step holds beyond its own (and the one held ahead)."""
        return self.n_batches - 1 - self.ahead

    @property
    def wall(self) -> int:
        return self.end - self.start

    @property
    def active(self) -> bool:
        return bool(self.n_forward or self.n_backward or self.n_optimizer)

    def absorb(self, later: "StepRecord") -> None:
        """Merge the directly following ``later`` step into this one."""
        self.end = later.end
        for i, v in enumerate(later.phases):
            self.phases[i] += v
        for i, v in enumerate(later.loader_phases):
            self.loader_phases[i] += v
        self.n_forward += later.n_forward
        self.n_backward += later.n_backward
        self.n_optimizer += later.n_optimizer
        self.n_loss += later.n_loss
        self.optimizers = self.optimizers + later.optimizers
        if later.gpu_mem_alloc is not None:
            self.gpu_mem_alloc, self.gpu_mem_reserved = later.gpu_mem_alloc, \
                later.gpu_mem_reserved
        if later.comm_wait is not None:
            self.comm_wait = later.comm_wait + (self.comm_wait or 0)
        if later.n_backward:
            self.kind = "train"
        if later.loss_ref is not None:
            self.loss_ref = later.loss_ref
        if later.eval_loss_ref is not None:
            self.eval_loss_ref = later.eval_loss_ref
        if self.gpu is not None and later.gpu is not None:
            self.gpu.absorb(later.gpu)
        if later.gpu_mem_peak is not None:
            self.gpu_mem_peak = later.gpu_mem_peak if self.gpu_mem_peak is None \
                else max(self.gpu_mem_peak, later.gpu_mem_peak)
