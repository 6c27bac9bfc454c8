"""Communication wait: the part of ``backward`` spent waiting for collectives.

Under DDP (and any data-parallel wrapper that all-reduces gradients as they are
made), the gradients of a rank are ready when the autograd engine accumulates the
last of them; what ``backward()`` takes after that is the wait for the all-reduce
of the last buckets, which lasts as long as the slowest rank keeps the others
waiting. So a hook on every parameter (``register_post_accumulate_grad_hook``)
notes the time of the latest accumulation, and when the outermost ``backward()``
returns, the time since then is the step's ``comm_wait``.

Hooks are attached only where a process group of several ranks is initialised
(``torch.distributed``), to the parameters of each top-level model as it is first
called: a single-process run pays nothing. Host clock only: with NCCL on CUDA the
host does not wait in ``backward`` (the wait is queued on the device), so the figure
is the host-side part.
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


class CommWait:
    """Notes when the last gradient of a backward was accumulated."""

    def __init__(self) -> None:
        self.last_ns = 0
        self._seen: set = set()
        self._handles: list = []

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def watch(self, module) -> None:
        """Hook ``module``'s trainable parameters, once a process group of several
        ranks exists (called once per top-level model, at its first call)."""
        if distributed_world() < 2 or \
                not hasattr(torch.Tensor, "register_post_accumulate_grad_hook"):
            return
        clock = time.perf_counter_ns

        def accumulated(_param) -> None:
            self.last_ns = clock()
        try:
            for p in module.parameters():
                if p.requires_grad and id(p) not in self._seen:
                    self._seen.add(id(p))
                    self._handles.append(p.register_post_accumulate_grad_hook(accumulated))
        except Exception:  # a module whose parameters cannot be listed or hooked
            return

    def gap(self, since_ns: int, now_ns: int) -> int:
        """The wait after the last accumulation of a backward that began at
        ``since_ns`` and returned at ``now_ns``; 0 if no gradient was accumulated."""
        last = self.last_ns
        return now_ns - last if since_ns <= last <= now_ns else 0

    def uninstall(self) -> None:
        while self._handles:
            try:
                self._handles.pop().remove()
            except Exception:
                pass
        self._seen.clear()
