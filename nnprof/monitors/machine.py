"""The machine a run runs on, read once when it starts (``meta.json``) and failing soft:
the cores this process may use, the host's memory and what the process can reach,
the GPU's memory, and what nnprof itself added to the process before the script."""
from __future__ import annotations

import math
import os
from typing import Optional


def usable_cores(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The cores this process may run on (its CPU affinity), capped by a container's CPU
    quota where one is set (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``): a container
    given 1.5 CPUs on a 64-core host has 2, not 64. At least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 0.05)))
    return max(1, cores)


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> Optional[float]:
    """The CPUs a container's quota allows (quota over period), or None where none is set
    or it cannot be read."""
    v1 = [os.path.join(root, d) for d in ("cpu", "cpu,cpuacct")]
    candidates = [(os.path.join(root, "cpu.max"), None)] + [
        (os.path.join(d, "cpu.cfs_quota_us"), os.path.join(d, "cpu.cfs_period_us")) for d in v1]
    for first, period_file in candidates:
        try:
            with open(first) as f:
                text = f.read().split()
            if period_file is None:  # v2: "max 100000" or "150000 100000"
                quota, period = text[0], text[1]
            else:
                with open(period_file) as f:
                    quota, period = text[0], f.read().split()[0]
            if quota in ("max", "-1"):
                return None
            q, p = float(quota), float(period)
            return q / p if q > 0 and p > 0 else None
        except (OSError, IndexError, ValueError):
            continue
    return None


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
