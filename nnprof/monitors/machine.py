"""The machine a run runs on, read once when it starts (``meta.json``) and failing soft:
the cores this process may use, the host's memory and what the process can reach,
the GPU's memory, and what nnprof itself added to the process before the script."""
from __future__ import annotations

import os
from typing import Optional


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def own_bytes() -> Optional[int]:
    """What nnprof added to the process's resident memory before the script started (its
    imports past torch, its monitors' threads and buffers): not counted against the
    script."""
    from ..instrument import RSS_AFTER_TORCH
    from ..instrument.procmem import process_rss
    now = process_rss()
    return max(0, now - RSS_AFTER_TORCH) if now and RSS_AFTER_TORCH else None


def host_memory() -> dict:
    """The machine's memory, and what this process could reach: what is available now
    plus what it holds already."""
    try:
        import psutil
        vm = psutil.virtual_memory()
        own = psutil.Process().memory_info().rss
        return {"host_memory_bytes": int(vm.total), "host_available_bytes": int(vm.available + own)}
    except Exception:
        return {"host_memory_bytes": None, "host_available_bytes": None}


def gpu_total_memory() -> Optional[int]:
    try:
        import torch
        return int(torch.cuda.get_device_properties(0).total_memory)
    except Exception:
        return None
