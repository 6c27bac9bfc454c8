"""Chart data for the HTML report, bounded whatever the run's length: per-step
bars in at most :data:`MAX_BARS` buckets of consecutive steps (the bucket's mean
phases, its slowest step and its over-budget count), curves and samples in at most
:data:`MAX_POINTS` points; the full data stays in ``steps.csv``."""
from __future__ import annotations

import math

from ..rundir.phases import PHASES

MAX_BARS = 600
MAX_POINTS = 1500
HIST_BINS = 40


def step_buckets(df, xcol: str, budget_s: float, max_bars: int = MAX_BARS) -> dict:
    """Per-step phase times, in at most ``max_bars`` buckets of consecutive steps."""
    import numpy as np
    n = len(df)
    size = max(1, math.ceil(n / max_bars))
    out = {"n": n, "bucket": size, "x0": [], "x1": [], "phases": {p: [] for p in PHASES},
           "wall_mean": [], "wall_max": [], "over": []}
    if not n:
        return out
    x = df[xcol].to_numpy(dtype=float)
    wall = df["wall_s"].to_numpy(dtype=float)
    cols = {p: df[f"{p}_s"].to_numpy(dtype=float) for p in PHASES}
    idx = np.arange(0, n, size)
    counts = np.diff(np.append(idx, n))

    def means(a):
        return (np.add.reduceat(np.nan_to_num(a), idx) / counts).round(7).tolist()
    out["x0"] = x[idx].astype(int).tolist()
    out["x1"] = x[np.append(idx[1:], n) - 1].astype(int).tolist()
    for p in PHASES:
        out["phases"][p] = means(cols[p])
    out["wall_mean"] = means(wall)
    out["wall_max"] = np.maximum.reduceat(np.nan_to_num(wall), idx).round(7).tolist()
    out["over"] = np.add.reduceat((wall > budget_s).astype(int), idx).tolist()
    return out


def histogram(values, bins: int = HIST_BINS) -> dict:
    import numpy as np
    v = np.asarray([x for x in values if x == x], dtype=float)
    if not len(v):
        return {"edges": [], "counts": []}
    hi = float(np.percentile(v, 99.5)) if len(v) > 200 else float(v.max())
    lo = float(v.min())
    if hi <= lo:
        hi = lo + max(lo * 0.01, 1e-6)
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return {"edges": edges.round(7).tolist(), "counts": counts.tolist(),
            "clipped": int((v > hi).sum())}


def line_series(points, max_points: int = MAX_POINTS) -> dict:
    """``[[x, y], ...]`` in at most ``max_points`` buckets: mean, min and max."""
    import numpy as np
    if not points:
        return {"x": [], "mean": [], "min": [], "max": [], "bucket": 1}
    a = np.asarray(points, dtype=float)
    n = len(a)
    size = max(1, math.ceil(n / max_points))
    idx = np.arange(0, n, size)
    counts = np.diff(np.append(idx, n))
    y = a[:, 1]
    return {"x": a[idx, 0].astype(int).tolist(),
            "mean": (np.add.reduceat(y, idx) / counts).round(6).tolist(),
            "min": np.minimum.reduceat(y, idx).round(6).tolist(),
            "max": np.maximum.reduceat(y, idx).round(6).tolist(), "bucket": size}


_SAMPLE_SERIES = (("host", "cpu_percent", "system CPU %"),
                  ("host", "process_cpu_percent", "this process CPU %"),
                  ("gpu0", "util_percent", "GPU0 util %"))


def sample_series(run, max_points: int = MAX_POINTS) -> dict:
    """Host and GPU samples over time (samples.csv), each downsampled by bucket means."""
    import numpy as np
    try:
        df = run.samples
    except Exception:
        return {}
    out = {}
    if not len(df):
        return out
    for source, metric, label in _SAMPLE_SERIES:
        sel = df[(df["source"] == source) & (df["metric"] == metric)]
        if not len(sel):
            continue
        t = sel["t_s"].to_numpy(dtype=float)
        v = sel["value"].to_numpy(dtype=float)
        size = max(1, math.ceil(len(t) / max_points))
        idx = np.arange(0, len(t), size)
        counts = np.diff(np.append(idx, len(t)))
        out[label] = {"t": (np.add.reduceat(t, idx) / counts).round(3).tolist(),
                      "v": (np.add.reduceat(v, idx) / counts).round(2).tolist()}
    return out


def memory_series(steps, memory: dict, max_points: int = 2000) -> dict:
    """Per train step: host RSS, CUDA allocated and reserved bytes (None where not
    measured), at most ``max_points`` steps evenly spaced; and the device's total."""
    train = steps[steps["kind"] == "train"] if len(steps) else steps
    cols = {"rss": "rss_bytes", "allocated": "gpu_mem_allocated_bytes",
            "reserved": "gpu_mem_reserved_bytes"}
    have = {k: c for k, c in cols.items() if c in train and train[c].notna().any()}
    if not len(train) or not have:
        return {}
    every = max(1, -(-len(train) // max_points))
    t = train.iloc[::every]
    out = {"x": [int(v) for v in t["train_index"].fillna(0)]}
    for k, c in have.items():
        out[k] = [None if v != v else float(v) for v in t[c]]
    out["device_total"] = (memory.get("cuda") or {}).get("total_bytes")
    return out
