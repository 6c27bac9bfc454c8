"""The link between ranks, measured on this machine: a short all-reduce benchmark at
DDP's bucket sizes among local processes (gloo on CPU, NCCL on GPUs), read as
nccl-tests' ``all_reduce_perf`` reads it: bus bandwidth = ``2 (N - 1) / N`` x bytes /
time. ``nnprof project --link measure`` uses it (docs/scaling.md).

The processes are started with ``spawn`` on loopback and always joined or stopped
before :func:`measure` returns.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Optional

MIB = 2 ** 20
SIZES = (1 * MIB, 25 * MIB)  # DDP's first bucket and its bucket size
WARMUP = 2
ITERS = 6
TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, backend: str, sizes, queue) -> None:
    import torch
    import torch.distributed as dist
    try:
        torch.set_num_threads(1)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world)
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        if backend == "nccl":
            torch.cuda.set_device(rank)
        times = {}
        for size in sizes:
            t = torch.ones(size // 4, dtype=torch.float32, device=device)
            for _ in range(WARMUP):
                dist.all_reduce(t)
            if backend == "nccl":
                torch.cuda.synchronize()
            dist.barrier()
            start = time.perf_counter()
            for _ in range(ITERS):
                dist.all_reduce(t)
            if backend == "nccl":
                torch.cuda.synchronize()
            times[size] = (time.perf_counter() - start) / ITERS
        dist.barrier()
        if rank == 0:
            queue.put({"times": times})
        dist.destroy_process_group()
    except Exception as exc:  # said once, by the caller
        queue.put({"error": f"{exc.__class__.__name__}: {exc}"})


def measure(ranks: Optional[int] = None, backend: Optional[str] = None,
            sizes=SIZES) -> dict:
    """``{"name", "busbw_gbps", "latency_s", "source", "ranks", "backend", "times_s"}``
    of a local all-reduce among ``ranks`` processes; raises RuntimeError with a one-line
    reason when it cannot run."""
    import multiprocessing as mp

    import torch
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() > 1 \
            else "gloo"
    if ranks is None:
        ranks = torch.cuda.device_count() if backend == "nccl" else min(2, os.cpu_count() or 1)
    if ranks < 2:
        raise RuntimeError("measuring a link needs 2 processes (this machine has "
                           f"{os.cpu_count()} core(s) / {torch.cuda.device_count()} GPU(s))")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, ranks, port, backend, tuple(sizes), queue),
                         daemon=True) for r in range(ranks)]
    for p in procs:
        p.start()
    result = None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while result is None and time.monotonic() < deadline:
            try:
                result = queue.get(timeout=0.5)
            except Exception:
                if not any(p.is_alive() for p in procs) and queue.empty():
                    break
    finally:
        for p in procs:
            p.join(timeout=10)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        queue.close()
    if result is None:
        raise RuntimeError(f"the {backend} all-reduce benchmark did not finish")
    if "error" in result:
        raise RuntimeError(f"the {backend} all-reduce benchmark failed: {result['error']}")
    return fit(result["times"], ranks, backend)


def fit(times: dict, ranks: int, backend: str) -> dict:
    """Bus bandwidth and latency from the times at two sizes: ``t = lat + f s / bw``."""
    f = 2 * (ranks - 1) / ranks
    (s1, t1), (s2, t2) = sorted(times.items())[0], sorted(times.items())[-1]
    if t2 > t1 and s2 > s1:
        bw = f * (s2 - s1) / (t2 - t1)
        lat = max(0.0, t1 - f * s1 / bw)
    else:
        bw, lat = f * s2 / t2, 0.0
    return {"name": f"measured {backend} x{ranks}", "busbw_gbps": bw / 1e9, "latency_s": lat,
            "source": f"measured here: all-reduce of {s1 // MIB} and {s2 // MIB} MiB among "
                      f"{ranks} local {backend} processes ({t1 * 1e3:.2f} and "
                      f"{t2 * 1e3:.2f} ms)",
            "ranks": ranks, "backend": backend,
            "times_s": {str(k): v for k, v in sorted(times.items())}}
