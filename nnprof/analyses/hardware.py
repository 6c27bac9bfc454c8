"""What the machine was doing: host and GPU samples, summarised and judged.

Pure functions of the ``samples.csv`` frame (``t_s, source, metric, value``,
see :mod:`nnprof.monitors.samples`) and the steps frame. A sample is
attributed to a train step when its timestamp falls inside the step
(``start_s <= t_s <= start_s + wall_s``); a sample averages the interval
before it, so this is exact to one sampling period.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

from . import Finding
from .loader import training_loader

WORKER_SATURATED = 85.0   # % of one core per worker: the workers cannot go faster
CPU_IDLE = 50.0           # % mean system CPU below which the machine has room
GPU_UNDER_USED = 50.0     # % mean GPU utilisation over train steps
GPU_MEMORY_FULL = 0.90    # peak device memory used / total
TENSOR_CORE_CAPABILITY = (8, 0)  # Ampere and later: TF32 and fast bf16 matmuls
MIN_TRAIN_SAMPLES = 3     # fewer samples inside train steps: use the whole run

_WORKER = re.compile(r"^worker_(\d+)_cpu_percent$")
_CORE = re.compile(r"^core(\d+)_percent$")
_GPU = re.compile(r"^gpu(\d+)_(.+)$")


def _stats(values) -> Optional[dict]:
    v = np.asarray(values, dtype=float)
    if not len(v):
        return None
    return {"mean": float(v.mean()), "p95": float(np.quantile(v, 0.95)), "max": float(v.max())}


def _train_mask(t, steps):
    """Boolean array: which timestamps fall inside a train step."""
    t = np.asarray(t, dtype=float)
    if steps is None or not len(steps) or "kind" not in steps:
        return np.zeros(len(t), dtype=bool)
    train = steps[steps["kind"] == "train"].sort_values("start_s")
    starts = train["start_s"].to_numpy(dtype=float)
    ends = starts + train["wall_s"].to_numpy(dtype=float)
    if not len(starts):
        return np.zeros(len(t), dtype=bool)
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = idx >= 0
    inside = np.zeros(len(t), dtype=bool)
    inside[ok] = t[ok] <= ends[idx[ok]]
    return inside


def _train_step_index(t, steps):
    """Per timestamp: the position of the train step it falls in (sorted by
    start), or -1; and the number of train steps."""
    t = np.asarray(t, dtype=float)
    out = np.full(len(t), -1, dtype=int)
    if steps is None or not len(steps) or "kind" not in steps:
        return out, 0
    train = steps[steps["kind"] == "train"].sort_values("start_s")
    starts = train["start_s"].to_numpy(dtype=float)
    ends = starts + train["wall_s"].to_numpy(dtype=float)
    if not len(starts):
        return out, 0
    idx = np.searchsorted(starts, t, side="right") - 1
    ok = idx >= 0
    ok[ok] = t[ok] <= ends[idx[ok]]
    out[ok] = idx[ok]
    return out, len(starts)


def idle_per_step(t, util, steps) -> np.ndarray:
    """1 - mean utilisation / 100 of each train step that at least one sample fell in."""
    idx, n = _train_step_index(t, steps)
    util = np.asarray(util, dtype=float)
    keep = idx >= 0
    if not keep.any():
        return np.zeros(0)
    sums = np.bincount(idx[keep], weights=util[keep], minlength=n)
    counts = np.bincount(idx[keep], minlength=n)
    has = counts > 0
    return np.clip(1.0 - sums[has] / counts[has] / 100.0, 0.0, 1.0)


def idle_share(t, util, steps) -> Optional[dict]:
    """The GPU's idle share inside train steps from NVML utilisation samples.

    ``share`` = 1 - mean utilisation / 100 over the samples inside train steps;
    ``step_p50`` / ``step_p95`` / ``step_max`` over the train steps that hold at
    least one sample (``steps`` of them). None without such samples.
    """
    idx, _ = _train_step_index(t, steps)
    util = np.asarray(util, dtype=float)
    inside = util[idx >= 0]
    if not len(inside):
        return None
    per = idle_per_step(t, util, steps)
    return {"share": float(np.clip(1.0 - inside.mean() / 100.0, 0.0, 1.0)),
            "samples": int(len(inside)), "steps": int(len(per)),
            "step_p50": float(np.quantile(per, 0.5)), "step_p95": float(np.quantile(per, 0.95)),
            "step_max": float(per.max())}


def gpu_memory_summary(steps, total_bytes=None) -> Optional[dict]:
    """From ``gpu_mem_peak_bytes`` of the steps (the allocator's peak allocated
    bytes at each step's end, see ``StepRecord``): ``peak_bytes`` (max over all
    steps), ``mean_step_peak_bytes`` (mean over train steps, or all steps when
    none trained), ``total_bytes`` (the device's, from meta.json) and
    ``peak_share``. Tensors only: PyTorch's cache and other processes are not
    included. None when no step carries the column.
    """
    col = "gpu_mem_peak_bytes"
    if steps is None or not len(steps) or col not in steps:
        return None
    import pandas as pd
    vals = pd.to_numeric(steps[col], errors="coerce")
    if not vals.notna().any():
        return None
    train = vals[steps["kind"] == "train"].dropna() if "kind" in steps else vals.dropna()
    basis = train if len(train) else vals.dropna()
    peak = float(vals.max())
    total = float(total_bytes) if total_bytes else None
    return {"peak_bytes": peak, "mean_step_peak_bytes": float(basis.mean()),
            "total_bytes": total, "peak_share": (peak / total) if total else None,
            "steps": int(len(basis)),
            "note": "allocator peak (torch.cuda.max_memory_allocated) at each step's end; "
                    "nnprof does not reset it, so it never falls unless the script resets it"}


def _metric(frame, name: str):
    m = frame[frame["metric"] == name]
    return m["t_s"].to_numpy(dtype=float), m["value"].to_numpy(dtype=float)


def _mean_in_train(frame, name: str, steps) -> tuple:
    """(mean over samples inside train steps, or over all when too few; how many; basis)."""
    t, v = _metric(frame, name)
    if not len(v):
        return None, 0, None
    mask = _train_mask(t, steps)
    if mask.sum() >= MIN_TRAIN_SAMPLES:
        return float(v[mask].mean()), int(mask.sum()), "train steps"
    return float(v.mean()), int(len(v)), "whole run"


def host_summary(samples, steps, loaders: list, cores: int) -> Optional[dict]:
    """System CPU, this process and its child processes (loader workers).

    * ``cpu_percent`` {mean, p95, max}: the machine's CPUs, 0-100;
      ``cores_busy`` = mean system CPU x CPUs / 100.
    * ``process_cpu_percent``: the training process in % of one core;
      ``process_rss_peak_bytes``: its peak resident memory.
    * ``workers_max``: most child processes at once; ``workers_cpu_percent``:
      their summed CPU (% of one core); ``worker_cpu_percent``: pid -> mean.
    * ``train``: the same means over the samples inside train steps (``basis``
      says ``whole run`` when fewer than ``MIN_TRAIN_SAMPLES`` fell there), and
      ``worker_cpu_percent`` per worker over its own samples inside train steps.
    None without host samples.
    """
    if samples is None or not len(samples):
        return None
    host = samples[samples["source"] == "host"]
    t, cpu = _metric(host, "cpu_percent")
    if not len(cpu) and not len(_metric(host, "process_cpu_percent")[1]):
        return None
    cpus = len({m for m in host["metric"].unique() if _CORE.match(str(m))}) or None
    _, rss = _metric(host, "process_rss_bytes")
    _, nworkers = _metric(host, "workers")
    per_worker = {}
    for m in sorted(host["metric"].unique(), key=str):
        hit = _WORKER.match(str(m))
        if hit:
            per_worker[hit.group(1)] = float(_metric(host, m)[1].mean())
    train = {}
    for name in ("cpu_percent", "process_cpu_percent", "workers_cpu_percent"):
        mean, n, basis = _mean_in_train(host, name, steps)
        train[name] = mean
        train["samples"] = max(train.get("samples", 0), n)
        train["basis"] = train.get("basis") or basis
    # each worker over its own samples: a worker's first sample counts from its
    # birth, so the time before the monitor found it is not a false zero
    train["worker_cpu_percent"] = {}
    for pid in per_worker:
        mean, _, _ = _mean_in_train(host, f"worker_{pid}_cpu_percent", steps)
        train["worker_cpu_percent"][pid] = mean
    ts = np.sort(t) if len(t) else t
    cpu_stats = _stats(cpu)
    return {
        "samples": int(len(cpu)),
        "interval_s": float(np.median(np.diff(ts))) if len(ts) > 1 else None,
        "cpus": cpus,
        "cores": int(cores),
        "cpu_percent": cpu_stats,
        "cores_busy": (cpu_stats["mean"] * (cpus or cores) / 100.0) if cpu_stats else None,
        "process_cpu_percent": _stats(_metric(host, "process_cpu_percent")[1]),
        "process_rss_peak_bytes": int(rss.max()) if len(rss) else None,
        "workers_max": int(nworkers.max()) if len(nworkers) else 0,
        "workers_cpu_percent": _stats(_metric(host, "workers_cpu_percent")[1]),
        "worker_cpu_percent": per_worker,
        "train": train,
    }


def gpu_summary(samples, steps) -> Optional[dict]:
    """Per device: utilisation {mean, p95, max} and its mean inside train steps
    (``util_train_mean``), memory-busy share, peak memory used and its share of
    the total, this process's peak memory, power, SM clock.

    ``used``: the devices this process used: those where NVML listed its
    memory; else, when the steps carry CUDA timings, every device (NVML could
    not tell); else none. ``util_mean`` / ``mem_peak_share`` summarise the used
    devices. ``idle``: per device, the share of train-step time the GPU ran
    no kernel (see :func:`idle_share`); ``idle_share``: 1 - ``util_mean`` / 100.
    NVML averages utilisation over 1/6 s to 1 s, so short gaps between
    kernels may not show. None without GPU samples.
    """
    if samples is None or not len(samples):
        return None
    gpu = samples[samples["source"] == "gpu"]
    if not len(gpu):
        return None
    devices: dict = {}
    for m in gpu["metric"].unique():
        hit = _GPU.match(str(m))
        if hit:
            devices.setdefault(int(hit.group(1)), set()).add(hit.group(2))
    out: dict = {}
    used = []
    for i in sorted(devices):
        frame = gpu[gpu["metric"].str.startswith(f"gpu{i}_")]
        p = f"gpu{i}_"
        t_util, util = _metric(frame, p + "util_percent")
        train_util, n_train, basis = _mean_in_train(frame, p + "util_percent", steps)
        _, used_b = _metric(frame, p + "mem_used_bytes")
        _, total_b = _metric(frame, p + "mem_total_bytes")
        _, proc_b = _metric(frame, p + "process_mem_bytes")
        _, power = _metric(frame, p + "power_w")
        _, clock = _metric(frame, p + "sm_clock_mhz")
        _, mem_util = _metric(frame, p + "mem_util_percent")
        total = float(total_b.max()) if len(total_b) else None
        peak = float(used_b.max()) if len(used_b) else None
        out[str(i)] = {
            "samples": int(len(util)),
            "util_percent": _stats(util),
            "util_train_mean": train_util,
            "util_basis": basis,
            "idle": idle_share(t_util, util, steps),
            "mem_util_percent": _stats(mem_util),
            "mem_used_peak_bytes": peak,
            "mem_total_bytes": total,
            "mem_peak_share": (peak / total) if peak is not None and total else None,
            "process_mem_peak_bytes": float(proc_b.max()) if len(proc_b) else None,
            "power_w": _stats(power),
            "sm_clock_mhz": _stats(clock),
        }
        if len(proc_b) and proc_b.max() > 0:
            used.append(i)
    if not used and steps is not None and len(steps) and "gpu_forward_s" in steps \
            and steps["gpu_forward_s"].notna().any():
        used = sorted(devices)
    utils = [out[str(i)]["util_train_mean"] for i in used
             if out[str(i)]["util_train_mean"] is not None]
    shares = [out[str(i)]["mem_peak_share"] for i in used
              if out[str(i)]["mem_peak_share"] is not None]
    return {
        "devices": out,
        "used": used,
        "util_mean": float(np.mean(utils)) if utils else None,
        "idle_share": float(np.clip(1.0 - np.mean(utils) / 100.0, 0.0, 1.0)) if utils else None,
        "mem_peak_share": max(shares) if shares else None,
        "note": "NVML averages utilisation over 1/6 s to 1 s; idle share = 1 - utilisation",
    }


def _each(workers: int) -> str:
    return "The loader's one worker" if workers == 1 else f"Each of the {workers} workers"


def _gb(b) -> str:
    return "?" if b is None else f"{b / 1e9:.1f} GB"


def hardware_findings(host: Optional[dict], gpu: Optional[dict], bottleneck_verdict,
                      loaders: list, cores: int, gpu_memory: Optional[dict] = None,
                      precision: Optional[dict] = None) -> list:
    """Findings from the samples; each rule and its threshold:

    * ``workers-saturated`` (warn): the verdict is ``input-bound``, the
      training loader has W >= 1 workers, and the W busiest child processes'
      mean CPU inside train steps (each over its own samples) is >=
      ``WORKER_SATURATED`` (85% of one core) on average: the workers cannot
      go faster. Advice: more workers while cores
      allow (``cores - 1``, one for the loop), else cheaper loading.
    * ``cores-idle`` (warn): ``input-bound``, mean system CPU inside train
      steps < ``CPU_IDLE`` (50%) and fewer workers than ``cores - 1``.
      Advice: raise ``num_workers`` to N = the workers the loader needs
      (``workers_needed``), at least W + 1, at most ``cores - 1``.
    * ``gpu-under-used`` (warn): mean GPU utilisation inside train steps of the
      devices the process used < ``GPU_UNDER_USED`` (50%). Advice: feed it
      faster when input-bound, else raise the batch size.
    * ``gpu-memory-nearly-full`` (warn): peak device memory used / total >
      ``GPU_MEMORY_FULL`` (90%) on a device the process used (NVML); without
      NVML's figure, the allocator's peak allocated bytes (``gpu_memory``,
      from steps.csv) / the device's total memory > 90%.
    * ``fp32-matmuls`` (warn): ``precision`` (probe.json, seen at the first
      top-level forward calls) says the model's first floating parameter is
      float32 on a CUDA device of capability >= ``TENSOR_CORE_CAPABILITY``
      (8.0, Ampere: tensor cores with TF32 and bf16), autocast was on at none
      of those calls, and TF32 is off: float32 matmul precision "highest",
      ``torch.backends.cuda.matmul.allow_tf32`` False and (torch >= 2.9)
      ``fp32_precision`` not "tf32". Advice: ``torch.set_float32_matmul_precision
      ("high")`` or ``torch.autocast("cuda", dtype=torch.bfloat16)``.
    """
    found = []
    tl = training_loader(loaders or [])
    usable = max(1, int(cores) - 1)
    workers = int(tl.get("num_workers") or 0) if tl else 0
    needed = tl.get("workers_needed") if tl else None
    train = (host or {}).get("train") or {}
    input_bound = bottleneck_verdict == "input-bound"

    busiest = sorted((v for v in (train.get("worker_cpu_percent") or {}).values()
                      if v is not None), reverse=True)[:workers]
    if host and input_bound and tl and workers > 0 and busiest:
        per = sum(busiest) / len(busiest)
        if per >= WORKER_SATURATED:
            ev = {"num_workers": workers, "per_worker_cpu_percent": per,
                  "workers_cpu_percent": train["workers_cpu_percent"],
                  "worker_cpu_percent": train.get("worker_cpu_percent") or {},
                  "basis": train.get("basis"), "cores": int(cores),
                  "threshold_percent": WORKER_SATURATED}
            advice = []
            if workers < usable:
                n = min(usable, max(workers + 1, needed or 0))
                advice.append(f"{_each(workers)} keeps a core busy ({per:.0f}% of one core on "
                              f"average) and the loop still waits: raise num_workers to {n} "
                              f"({cores} cores, one kept for the loop).")
            else:
                advice.append(f"{_each(workers)} keeps a core busy ({per:.0f}% of one core on "
                              f"average) and no core is left for more workers ({cores} cores, "
                              "one kept for the loop).")
            advice.append("Make loading cheaper: decode smaller or pre-processed data, move "
                          "costly transforms to the GPU, or cache what does not change.")
            found.append(Finding("workers-saturated", "workers saturated", ev, tuple(advice),
                                 "warn"))

    cpu = train.get("cpu_percent")
    if host and input_bound and cpu is not None and cpu < CPU_IDLE and workers < usable:
        cpus = host.get("cpus") or int(cores)
        busy = cpu * cpus / 100.0
        n = min(usable, max(workers + 1, needed or 0))
        ev = {"cpu_percent": cpu, "cores_busy": busy, "cores": int(cores),
              "num_workers": workers, "workers_needed": needed, "basis": train.get("basis"),
              "threshold_percent": CPU_IDLE}
        free = f"{max(0.0, cpus - busy):.1f} of {cpus}"
        advice = (f"The loop waits for data while {free} cores are idle (system CPU "
                  f"{cpu:.0f}%): raise num_workers from {workers} to {n}.",)
        found.append(Finding("cores-idle", "cores idle", ev, advice, "warn"))

    if gpu and gpu.get("used"):
        util = gpu.get("util_mean")
        if util is not None and util < GPU_UNDER_USED:
            ev = {"util_percent": util, "devices": gpu["used"],
                  "threshold_percent": GPU_UNDER_USED, "note": gpu.get("note")}
            if input_bound:
                advice = (f"The GPU is busy {util:.0f}% of the time because it waits for "
                          "data: feed it faster (see the input advice).",)
            else:
                advice = (f"The GPU is busy {util:.0f}% of the time: raise the batch size, or "
                          "remove host work and synchronisations between kernels.",)
            found.append(Finding("gpu-under-used", "GPU under-used", ev, advice, "warn"))
        share = gpu.get("mem_peak_share")
        if share is not None and share > GPU_MEMORY_FULL:
            devs = gpu.get("devices") or {}
            peak = max((devs[str(i)] for i in gpu["used"] if str(i) in devs),
                       key=lambda d: d.get("mem_peak_share") or 0, default={})
            ev = {"mem_peak_share": share, "mem_used_peak_bytes": peak.get("mem_used_peak_bytes"),
                  "mem_total_bytes": peak.get("mem_total_bytes"),
                  "process_mem_peak_bytes": peak.get("process_mem_peak_bytes"),
                  "threshold_share": GPU_MEMORY_FULL}
            advice = (f"Device memory peaked at {share * 100:.0f}% "
                      f"({_gb(peak.get('mem_used_peak_bytes'))} of "
                      f"{_gb(peak.get('mem_total_bytes'))}): a larger batch or model will run "
                      "out; lower the batch size, use mixed precision or activation "
                      "checkpointing. The figure includes PyTorch's cached memory and other "
                      "processes.",)
            found.append(Finding("gpu-memory-nearly-full", "GPU memory nearly full", ev,
                                 advice, "warn"))
    mem_share = (gpu_memory or {}).get("peak_share")
    nvml_share = (gpu or {}).get("mem_peak_share") if (gpu or {}).get("used") else None
    if nvml_share is None and mem_share is not None and mem_share > GPU_MEMORY_FULL:
        ev = {"allocated_peak_share": mem_share, "peak_bytes": gpu_memory.get("peak_bytes"),
              "total_bytes": gpu_memory.get("total_bytes"), "threshold_share": GPU_MEMORY_FULL}
        advice = (f"Tensors peaked at {mem_share * 100:.0f}% of device memory "
                  f"({_gb(gpu_memory.get('peak_bytes'))} of {_gb(gpu_memory.get('total_bytes'))},"
                  " allocator peak): a larger batch or model will run out; lower the batch "
                  "size, use mixed precision or activation checkpointing.",)
        found.append(Finding("gpu-memory-nearly-full", "GPU memory nearly full", ev,
                             advice, "warn"))
    hit = fp32_matmuls(precision)
    if hit is not None:
        found.append(hit)
    return found


def fp32_matmuls(precision: Optional[dict]):
    """The ``fp32-matmuls`` rule (see :func:`hardware_findings`), or None."""
    p = precision or {}
    cap = p.get("device_capability")
    try:
        cap = (int(cap[0]), int(cap[1])) if cap is not None else None
    except (TypeError, ValueError, IndexError):
        cap = None
    if cap is None or cap < TENSOR_CORE_CAPABILITY:
        return None
    if p.get("param_dtype") != "float32" or p.get("param_device") not in (None, "cuda"):
        return None
    if p.get("autocast") or p.get("autocast_cuda"):
        return None
    if p.get("float32_matmul_precision") != "highest" or p.get("allow_tf32") is not False \
            or p.get("fp32_precision") == "tf32":
        return None
    ev = {k: p.get(k) for k in ("param_dtype", "float32_matmul_precision", "allow_tf32",
                                "fp32_precision", "autocast", "calls")}
    ev["device_capability"] = list(cap)
    ev["threshold_capability"] = list(TENSOR_CORE_CAPABILITY)
    advice = (f"The model trains in float32 on a GPU with tensor cores (compute capability "
              f"{cap[0]}.{cap[1]}) with neither autocast nor TF32, so its matmuls and "
              "convolutions run in full fp32: call torch.set_float32_matmul_precision(\"high\") "
              "(TF32) once at start, or run the forward pass and loss under "
              "torch.autocast(\"cuda\", dtype=torch.bfloat16).",)
    return Finding("fp32-matmuls", "fp32 matmuls without TF32 or autocast", ev, advice, "warn")
