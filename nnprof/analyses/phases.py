"""Per-phase statistics over steps."""
from __future__ import annotations

from ..rundir.phases import LOADER_PHASES, PHASES


def _stats(values, wall_total: float) -> dict:
    n = len(values)
    if n == 0:
        return {"mean_s": 0.0, "p50_s": 0.0, "p95_s": 0.0, "total_s": 0.0, "share": 0.0}
    total = float(values.sum())
    return {
        "mean_s": total / n,
        "p50_s": float(values.quantile(0.5)),
        "p95_s": float(values.quantile(0.95)),
        "total_s": total,
        "share": total / wall_total if wall_total > 0 else 0.0,
    }


def phase_table(steps, prefix: str = "") -> dict:
    """{phase: {mean_s, p50_s, p95_s, total_s, share}} over the given steps.

    ``share`` is the phase's total over the steps' total wall time, so the
    seven main-process shares add up to 1. Loader-side phases measured in the
    main process are slices of ``data`` and have a share of the wall time too.
    ``prefix="gpu_"`` reads the device-side columns instead. ``comm_wait`` (the
    part of ``backward`` spent waiting for collectives, measured under
    torch.distributed only) is there when the steps measured it.
    """
    wall_total = float(steps["wall_s"].sum()) if len(steps) else 0.0
    out = {}
    for p in PHASES:
        col = f"{prefix}{p}_s"
        out[p] = _stats(steps[col].fillna(0.0) if col in steps else steps["wall_s"] * 0, wall_total)
    if not prefix:
        for p in LOADER_PHASES:
            out[p] = dict(_stats(steps[f"{p}_s"].fillna(0.0), wall_total), where="main")
        if "comm_wait_s" in steps and steps["comm_wait_s"].notna().any():
            out["comm_wait"] = dict(_stats(steps["comm_wait_s"].fillna(0.0), wall_total),
                                    within="backward")
    return out


def worker_phase_table(batches) -> dict:
    """Loader-side phases per batch made in worker processes (share of worker busy time)."""
    w = batches[batches["worker"] >= 0]
    if not len(w):
        return {}
    busy = (w["end_ns"] - w["start_ns"]).clip(lower=0)
    total = float(busy.sum()) / 1e9
    out = {}
    for p in LOADER_PHASES:
        out[p] = dict(_stats(w[f"{p}_ns"] / 1e9, total), where="workers")
    return out
