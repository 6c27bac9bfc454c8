"""Scaling projection: the step time, throughput and bound that a measured run implies
for K loader workers per rank, N data-parallel ranks over M nodes, and S times the
batch per rank (docs/scaling.md holds the model, its assumptions and a worked example).

Per rank, one step takes the longest of three times:

* **main**: the loop's own work, measured (``wall - data`` of the steady train steps,
  less the communication wait a distributed run measured); the phases that handle the
  batch (``prep``, ``forward``, ``loss``, ``backward``) scale with S, ``optimizer`` and
  ``other`` do not. Without workers the main process also makes the batch (the
  loader's measured time per batch); with workers it receives it (``ipc``). Plus the
  gradient all-reduce's exposed part (below).
* **input**: with K workers, the loader's time per batch over K (the workers run side
  by side, each making whole batches).
* **cores**: the CPU work of a node's ranks per step (each main process's measured CPU
  use over its work, and the loader's CPU per batch) over the node's usable cores.

**Communication** (DDP): the gradient bytes in DDP's buckets (the first 1 MiB, then
25 MiB each), each a ring all-reduce of ``2 (N - 1) / N`` of its bytes over the link's
bus bandwidth plus the link's latency; reduced while the backward runs, so the exposed
part is what exceeds the backward, and at least the last bucket's (ready only when the
backward ends). On CPU (gloo) a reduction needs a core: with no core to spare beside
the ranks' main processes it does not overlap, and all of it is exposed. The bandwidth
is the measured one (``nnprof project --link measure``, or a distributed run's own
exposed wait scaled by ``2 (N - 1) / N``), or a named preset (:data:`LINKS`), or a
number given in GB/s.

**Memory**, per rank: the measured peak, plus (S - 1) times what scales with the batch
(activations and temporaries, :mod:`.memory`), plus DDP's buckets (the gradient bytes
again) when N > 1, against the device's memory, or the host's shared by a node's ranks.

The bound is the largest part of the step: ``input`` (workers, or the batch made in the
main process), ``compute``, ``communication``, ``optimizer``, ``cores`` (the node's
cores are oversubscribed), or ``memory`` when a rank does not fit.
"""
from __future__ import annotations

import math
from typing import Optional

MIB = 2 ** 20
FIRST_BUCKET = 1 * MIB     # DDP's first bucket (bucket_cap_mb's smaller first one)
BUCKET = 25 * MIB          # DDP's bucket_cap_mb default
SAFETY = 0.10              # memory: keep this share free, as the memory analysis does
SCALED = ("prep", "forward", "loss", "backward")
FIXED = ("optimizer", "other")

# name: (bus bandwidth in GB/s as nccl-tests' all_reduce_perf reports it for large
# messages, latency per all-reduce in seconds, what it stands for). Typical figures:
# measure your own with --link measure on the target, or give --link GBPS.
LINKS = {
    "nvlink4": (450.0, 25e-6, "NVLink 4 within a node (8x H100 SXM)"),
    "nvlink3": (230.0, 25e-6, "NVLink 3 within a node (8x A100 SXM)"),
    "pcie5": (40.0, 30e-6, "PCIe 5.0 x16 between GPUs of a node, no NVLink"),
    "pcie4": (20.0, 30e-6, "PCIe 4.0 x16 between GPUs of a node, no NVLink"),
    "ib-ndr8": (370.0, 60e-6, "InfiniBand NDR, 8 x 400 Gb/s rails per node (one per GPU)"),
    "ib-ndr": (46.0, 60e-6, "InfiniBand NDR, one 400 Gb/s port per node"),
    "ib-hdr": (23.0, 60e-6, "InfiniBand HDR, one 200 Gb/s port per node"),
    "eth-100g": (11.0, 100e-6, "100 Gb/s Ethernet per node"),
    "eth-25g": (2.8, 100e-6, "25 Gb/s Ethernet per node"),
    "eth-10g": (1.1, 150e-6, "10 Gb/s Ethernet per node"),
}

ADVICE = {
    "input": "feed it faster: {workers_hint}; cheaper transforms (docs/verdicts.md#input-bound)",
    "cores": "the node's {cores} cores are oversubscribed ({demand:.1f} cores of work per "
             "step time): fewer workers or ranks per node, or a machine with more cores",
    "communication": "the all-reduce is exposed ({exposed}): more work per all-reduce "
                     "(--batch-scale, or gradient accumulation with no_sync), gradients in "
                     "bf16 (a DDP communication hook), or a faster link",
    "compute": "the model's own work bounds it and scales with the ranks: nothing to "
               "change first for scaling",
    "optimizer": "the optimizer step does not shrink with more ranks: a fused or foreach "
                 "optimizer, or ZeRO-style sharding",
    "memory": "a rank does not fit ({need} of {capacity}): a smaller batch per rank, "
              "activation checkpointing, or sharded optimizer state",
}


def link_from(spec) -> Optional[dict]:
    """A link from a preset name or a bandwidth in GB/s (None for None)."""
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec
    text = str(spec).strip().lower()
    if text in LINKS:
        bw, lat, what = LINKS[text]
        return {"name": text, "busbw_gbps": bw, "latency_s": lat, "source": f"preset: {what}"}
    try:
        bw = float(text)
    except ValueError:
        raise ValueError(f"unknown link {spec!r} (a preset: {', '.join(LINKS)}; or GB/s; "
                         "or measure)") from None
    if not bw > 0 or not math.isfinite(bw):
        raise ValueError(f"a link's bandwidth must be a positive number of GB/s, got {spec!r}")
    return {"name": f"{bw:g} GB/s", "busbw_gbps": bw, "latency_s": 50e-6, "source": "given"}


def _num(v) -> Optional[float]:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _mean(phases: dict, name: str) -> float:
    return _num((phases.get(name) or {}).get("mean_s")) or 0.0


def buckets(grad_bytes: int) -> list:
    """DDP's bucket sizes for ``grad_bytes`` of gradients, in the order they are reduced
    (the last one is ready when the backward ends)."""
    if grad_bytes <= 0:
        return []
    out = [min(FIRST_BUCKET, grad_bytes)]
    rest = grad_bytes - out[0]
    while rest > 0:
        out.append(min(BUCKET, rest))
        rest -= out[-1]
    return out


def allreduce_s(nbytes: float, ranks: int, link: dict) -> float:
    """One ring all-reduce of ``nbytes`` among ``ranks``, as nccl-tests' bus bandwidth
    counts it: ``2 (N - 1) / N`` of the bytes cross the link, plus its latency."""
    if ranks <= 1 or nbytes <= 0:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / (link["busbw_gbps"] * 1e9) + link["latency_s"]


def basis_from(summary: dict, meta: dict) -> dict:
    """What the projection stands on, read from a run's summary and meta, each with
    where it came from."""
    from .loader import training_loader
    phases = summary.get("phases") or {}
    env = summary.get("environment") or {}
    dist = summary.get("distributed") or {}
    rank = meta.get("rank") or {}
    loader = training_loader(summary.get("loader") or []) or {}
    memory = summary.get("memory") or {}
    br = memory.get("breakdown") or {}
    fits = memory.get("fits") or {}
    host = summary.get("host") or {}
    step = _num((summary.get("step_time") or {}).get("mean_s"))
    data = _mean(phases, "data")
    comm = _mean(phases, "comm_wait")
    ranks = int(dist.get("world_size") or rank.get("world_size") or 1)
    nodes = int(dist.get("nodes") or 1)
    cuda = bool(env.get("cuda_available")) and (env.get("device") or "cpu") != "cpu"
    cores = int(env.get("usable_cores") or env.get("cpu_count") or 1)
    workers = int(loader.get("num_workers") or 0)
    batch_s = _num(loader.get("batch_s"))
    main = (step - data) if step is not None else None
    b = {
        "step_s": step, "data_s": data, "main_s": main, "comm_wait_s": comm,
        "phases_s": {p: _mean(phases, p) for p in SCALED + FIXED},
        "device": "cuda" if cuda else "cpu", "cores": cores,
        "ranks": ranks, "nodes": nodes, "ranks_per_node": max(1, math.ceil(ranks / nodes)),
        "workers": workers, "loader": bool(loader), "batch_size": loader.get("batch_size")
        or (br.get("batch_size") if br else None),
        "loader_batch_s": batch_s, "loader_where": loader.get("where"),
        "backward": _mean(phases, "backward") > 0,
        "grad_bytes": int(br.get("gradients") or 0) or None,
        "peak_bytes": _num(fits.get("peak_at_1x_bytes")) or _num(br.get("peak_bytes")),
        "scaling_bytes": _num(fits.get("scaling_bytes")),
        "memory_total_bytes": _num(fits.get("total_bytes")) or _num(
            meta.get("gpu_total_memory_bytes") if cuda else meta.get("host_available_bytes")),
        "memory_against": fits.get("against") or ("device memory" if cuda
                                                  else "available host memory"),
        "sources": {},
    }
    src = b["sources"]
    src["main_s"] = "measured: the steady train steps' wall less data"
    # the main process's CPU use over its own work (the loader's share taken out when
    # it made the batches itself)
    pcpu = _num((host.get("process_cpu_percent") or {}).get("mean"))
    if pcpu is not None and step:
        own = pcpu / 100.0 * step - (batch_s or 0.0 if workers == 0 else 0.0)
        b["main_cpu"] = min(float(cores), max(0.05, own / main)) if main else 1.0
        src["main_cpu"] = "measured: the process's CPU use during the run"
    else:
        b["main_cpu"] = 0.2 if cuda else float(min(cores, int(env.get("torch_threads") or 1)))
        src["main_cpu"] = "assumed: no host samples (the intra-op threads on CPU)"
    wcpu = _num((host.get("workers_cpu_percent") or {}).get("mean"))
    if workers and wcpu is not None and batch_s and step:
        b["loader_cpu_share"] = min(1.0, max(0.0, wcpu / 100.0 * step / batch_s))
        src["loader_cpu_share"] = "measured: the workers' CPU use over their batch time"
    else:
        b["loader_cpu_share"] = 1.0
        src["loader_cpu_share"] = "assumed: the loader's time per batch is CPU work"
    if batch_s is not None:
        src["loader_batch_s"] = f"measured: the loader's time per batch in the {loader.get('where')}"
    # receiving a batch from a worker: the main process's data time when the workers
    # kept up, else what the main process spent around making the batch itself
    if workers and batch_s and main and batch_s / workers < main:
        b["ipc_s"] = data
        src["ipc_s"] = "measured: the data wait while the workers kept up"
    elif not workers and batch_s is not None:
        b["ipc_s"] = max(0.0, data - batch_s)
        src["ipc_s"] = "measured: the main process's data time beyond making the batch"
    else:
        b["ipc_s"] = 0.0
        src["ipc_s"] = "unknown (the workers did not keep up): taken as 0"
    return b


def _comm(b: dict, ranks: int, nodes: int, link: Optional[dict], overlaps: bool,
          backward_s: float) -> dict:
    """The all-reduce per step at ``ranks`` and its exposed part."""
    if ranks <= 1:
        return {"total_s": 0.0, "exposed_s": 0.0, "overlaps": None, "link": None}
    g = b.get("grad_bytes")
    if not g:
        return {"total_s": None, "exposed_s": None, "overlaps": None, "link": None,
                "missing": "the gradient bytes (no backward measured)"}
    measured = b["ranks"] > 1 and b["comm_wait_s"] and nodes <= b["nodes"]
    if link is None and measured:
        f0 = 2 * (b["ranks"] - 1) / b["ranks"]
        f = 2 * (ranks - 1) / ranks
        exposed = b["comm_wait_s"] * f / f0
        return {"total_s": None, "exposed_s": exposed, "overlaps": None,
                "link": {"name": "measured", "source": f"the run's own exposed wait at "
                         f"{b['ranks']} ranks ({b['comm_wait_s'] * 1e3:.2f} ms), scaled by "
                         "2(N-1)/N"}}
    if link is None:
        return {"total_s": None, "exposed_s": None, "overlaps": None, "link": None,
                "missing": "the link between ranks (--link NAME|GBPS, or --link measure)"}
    sizes = buckets(int(g))
    total = sum(allreduce_s(s, ranks, link) for s in sizes)
    last = allreduce_s(sizes[-1], ranks, link) if sizes else 0.0
    exposed = max(last, total - backward_s) if overlaps else total
    return {"total_s": total, "exposed_s": exposed, "overlaps": overlaps, "link": link,
            "buckets": len(sizes)}


def project_one(b: dict, workers: int, ranks: int, nodes: int = 1,
                batch_scale: float = 1.0, link: Optional[dict] = None,
                cores: Optional[int] = None, gpus: Optional[bool] = None) -> dict:
    """The projection of basis ``b`` at one target (see the module's rule). ``cores``:
    usable cores per node on the target (default: the run's); ``gpus``: the ranks are
    GPUs (NCCL overlaps the backward; default: the run's device)."""
    s = float(batch_scale)
    per_node = max(1, math.ceil(ranks / max(1, nodes)))
    ph = b["phases_s"]
    measured_main = max(0.0, (b["main_s"] or 0.0) - (b["comm_wait_s"] or 0.0))
    known = sum(ph.values())
    scaled_share = (sum(ph[p] for p in SCALED) / known) if known else 1.0
    compute = measured_main * scaled_share * s
    fixed = measured_main * (1 - scaled_share)
    opt = ph["optimizer"] / known * measured_main if known else 0.0
    other = fixed - opt
    loader = (b["loader_batch_s"] or 0.0) * s if b["loader"] else 0.0
    main_cpu = b["main_cpu"]
    cores = int(cores or b["cores"])
    gpus = (b["device"] == "cuda") if gpus is None else bool(gpus)
    free = cores - per_node * (main_cpu + (b["loader_cpu_share"] * min(workers, 1)
                                            if workers else 0.0))
    comm = _comm(b, ranks, nodes, link, gpus or free >= per_node, ph["backward"] * s)
    exposed = comm["exposed_s"] or 0.0
    if workers:
        t_main = compute + fixed + b["ipc_s"] + exposed
        t_in = loader / workers
        in_main = 0.0
    else:
        in_main = loader + (b["ipc_s"] if b["loader"] else b["data_s"])
        t_main = compute + fixed + in_main + exposed
        t_in = 0.0
    comm_cpu = 0.0 if gpus else (comm["total_s"] or exposed)
    cpu_work = per_node * (main_cpu * (compute + fixed) + loader * b["loader_cpu_share"]
                           + comm_cpu)
    t_cores = cpu_work / cores
    step = max(t_main, t_in, t_cores)
    parts = {"compute_s": compute, "optimizer_s": opt, "other_s": other,
             "input_in_main_s": in_main, "input_workers_s": t_in,
             "receive_s": b["ipc_s"] if workers else 0.0,
             "communication_s": comm["total_s"], "communication_exposed_s": comm["exposed_s"],
             "cores_s": t_cores, "main_s": t_main}
    if step == t_in and t_in > t_main:
        bound = "input"
    elif step == t_cores and t_cores > t_main * 1.001:
        bound = "cores"
    else:
        candidates = {"input": in_main, "compute": compute, "communication": exposed,
                      "optimizer": opt}
        bound = max(candidates, key=candidates.get)
    memory = _memory(b, s, ranks, per_node, gpus)
    if memory and memory.get("fits") is False:
        bound = "memory"
    bs = b.get("batch_size")
    sps = ranks * bs * s / step if bs and step > 0 else None
    out = {"workers": workers, "ranks": ranks, "nodes": nodes, "ranks_per_node": per_node,
           "batch_scale": s, "batch_per_rank": int(round(bs * s)) if bs else None,
           "step_s": step, "samples_per_s": sps,
           "steps_per_s": 1.0 / step if step > 0 else None,
           "bound": bound, "parts": parts, "memory": memory,
           "communication": {k: v for k, v in comm.items() if k not in ("total_s", "exposed_s")},
           "complete": comm.get("missing") is None}
    out["cores_per_node"] = cores
    out["advice"] = advice(bound, b, out, per_node, cores)
    return out


def _memory(b: dict, s: float, ranks: int, per_node: int, gpus: bool) -> Optional[dict]:
    peak, total = b.get("peak_bytes"), b.get("memory_total_bytes")
    if not peak:
        return None
    need = peak + (s - 1) * (b.get("scaling_bytes") or 0.0)
    if ranks > 1:
        need += b.get("grad_bytes") or 0  # DDP's buckets hold the gradients once more
    share = 1 if gpus else per_node  # a node's ranks share its host memory
    out = {"per_rank_bytes": int(need), "against": b["memory_against"],
           "capacity_bytes": int(total / share) if total else None}
    out["fits"] = bool(need <= total / share * (1 - SAFETY)) if total else None
    return out


def advice(bound: str, b: dict, p: dict, per_node: int, cores: int) -> str:
    def ms(v):
        return f"{v * 1e3:.1f} ms" if v is not None else "?"
    parts = p["parts"]
    if bound == "input":
        need = None
        if b["loader_batch_s"]:
            main = (parts["compute_s"] + parts["optimizer_s"] + parts["other_s"]
                    + parts["receive_s"] + (parts["communication_exposed_s"] or 0.0))
            need = math.ceil(b["loader_batch_s"] * p["batch_scale"] / main) if main else None
        spare = max(1, int((cores - per_node * b["main_cpu"]) / per_node))
        hint = (f"{need} worker{'s' if need != 1 else ''} per rank would keep up" if need
                else "more workers") + (
            f" ({spare} core{'s' if spare != 1 else ''} per rank to spare)"
            if need and need > spare else "")
        return ADVICE["input"].format(workers_hint=hint)
    if bound == "cores":
        return ADVICE["cores"].format(cores=cores, demand=parts["cores_s"] * cores
                                      / max(parts["main_s"], 1e-12))
    if bound == "communication":
        return ADVICE["communication"].format(exposed=ms(parts["communication_exposed_s"]))
    if bound == "memory":
        m = p["memory"]
        return ADVICE["memory"].format(need=_gb(m["per_rank_bytes"]), capacity=_gb(
            m["capacity_bytes"]))
    return ADVICE.get(bound, "")


def _gb(v) -> str:
    return f"{v / 1e9:.2f} GB" if v else "?"


def default_targets(b: dict) -> list:
    """(workers, ranks, nodes) to show when none are asked: the run's own workers at 1,
    2, 4 and 8 ranks (and its own), plus the workers that would keep up."""
    k0 = b["workers"]
    ranks = sorted({1, 2, 4, 8, b["ranks"]})
    out = [(k0, n, 1 if n <= max(8, b["ranks"]) else b["nodes"]) for n in ranks]
    if b["loader"] and b["loader_batch_s"] and b["main_s"]:
        need = max(1, math.ceil(b["loader_batch_s"] / max(b["main_s"], 1e-9)))
        k = min(need, max(1, b["cores"] - 1))
        if k != k0:
            out.append((k, b["ranks"], b["nodes"]))
    return out


def project(summary: dict, meta: dict, targets=None, batch_scale: float = 1.0,
            link=None, cores: Optional[int] = None, gpus: Optional[bool] = None,
            basis: Optional[dict] = None) -> dict:
    """``{"basis", "projections", "assumptions", "notices"}`` for ``targets`` (a list of
    (workers, ranks, nodes)); the default targets when None. ``cores`` and ``gpus``
    describe the target nodes (see :func:`project_one`); ``basis``: :func:`basis_from`'s,
    when the caller has it already."""
    b = basis if basis is not None else basis_from(summary, meta)
    notices = []
    if not b["step_s"]:
        return {"basis": b, "projections": [], "assumptions": [],
                "notices": ["no steady train steps measured: nothing to project"]}
    link = link_from(link)
    if not b["loader"]:
        notices.append("no DataLoader fed the train steps: the input is the main process's "
                       "measured data time, and workers are not projected")
    if not b["backward"]:
        notices.append("no backward was measured: communication is not projected")
    targets = targets or default_targets(b)
    rows = []
    single = {}
    for workers, ranks, nodes in targets:
        if not b["loader"]:
            workers = 0
        p = project_one(b, workers, ranks, nodes, batch_scale, link, cores, gpus)
        key = (workers, batch_scale)
        if key not in single:
            single[key] = project_one(b, workers, 1, 1, batch_scale, link, cores, gpus)
        one = single[key]
        p["efficiency"] = (p["samples_per_s"] / (ranks * one["samples_per_s"])
                           if p["samples_per_s"] and one["samples_per_s"] else
                           (one["step_s"] / p["step_s"] if p["step_s"] else None))
        rows.append(p)
    missing = sorted({r["communication"].get("missing") for r in rows
                      if r["communication"].get("missing")})
    for m in missing:
        notices.append(f"communication not included where ranks > 1: {m} is unknown")
    target_gpus = (b["device"] == "cuda") if gpus is None else bool(gpus)
    if target_gpus and b["device"] != "cuda":
        notices.append("the ranks are projected as GPUs from a run measured on CPU: the "
                       "step's compute is taken as measured (a GPU's would be faster), so "
                       "the step times are upper bounds and communication's share a lower one")
    return {"basis": b, "projections": rows,
            "assumptions": assumptions(b, link, cores or b["cores"], target_gpus),
            "notices": notices}


def assumptions(b: dict, link: Optional[dict], cores: int, gpus: bool) -> list:
    out = [
        "data parallel (DDP): each rank runs the measured step on its own batch; the "
        "batch per rank is unchanged unless --batch-scale",
        "prep, forward, loss and backward scale with the batch per rank; the optimizer "
        "step and the rest of the loop do not",
        f"loader workers make whole batches side by side; the loader's CPU share of its "
        f"time per batch is {b['loader_cpu_share']:.2f} ({b['sources']['loader_cpu_share']})",
        f"the main process uses {b['main_cpu']:.2f} cores while it works "
        f"({b['sources']['main_cpu']}); a node's {cores} usable cores are shared by "
        "its ranks' main processes, workers and (on CPU) their reductions",
        "gradients are all-reduced in DDP's buckets (1 MiB first, then 25 MiB), each a "
        "ring all-reduce, overlapping the backward except the last bucket (on CPU only "
        "with a core to spare)",
        "the ranks are " + ("GPUs (NCCL; the reduction uses no host core)" if gpus else
                            "CPU processes (gloo; a reduction takes a core while it runs)"),
    ]
    if link is not None:
        out.append(f"link: {link['name']}, bus bandwidth {link['busbw_gbps']:g} GB/s, "
                   f"latency {link['latency_s'] * 1e6:.0f} us ({link['source']})")
    out.append("start-up (workers, compilation), evaluation passes and checkpointing are "
               "left out: steady train steps only")
    return out
