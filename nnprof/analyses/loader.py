"""Loader analysis: where loading time goes, and capacity against demand."""
from __future__ import annotations

import math
import os

from ..rundir.phases import LOADER_PHASES


def _site(meta: dict) -> str:
    site = meta.get("site") or {}
    f = site.get("file") or "?"
    # loaders built on one line (a function building the training and validation
    # loaders, a framework's call) are told apart by their rank there
    rank = site.get("index") or 0
    return f"{os.path.basename(f)}:{site.get('line', 0)}" + (f"#{rank}" if rank else "")


def loader_stats(loader_meta: dict, steps, batches, transform_ns_by_pid: dict,
                 cores: int) -> list:
    """One dict per DataLoader that fed steps.

    ``transform_ns_by_pid``: pid -> {loader id: {transform name: ns}}, as
    :meth:`nnprof.run.Run.transform_times` reads it.

    * ``batch_s``: loader-side time to make one batch (fetch + transform +
      collate), measured where the batch was made (main process or a worker).
    * ``capacity_bps``: batches per second the loader can make: ``W / batch_s``
      with W workers, ``1 / batch_s`` in the main process.
    * ``demand_bps``: batches per second the loop would consume if data were
      free: ``1 / mean(wall - data)`` over the steady train steps fed by the loader
      (those the phase table is over).
    * ``workers_needed``: ``ceil(batch_s * demand_bps)``, the workers that would
      make capacity meet demand; ``usable_workers`` = cores - 1 (one core for
      the training loop).
    """
    from ..rundir.steady import steady_steps  # the rule the phase table follows
    out = []
    for lid, meta in sorted(loader_meta.items()):
        mine = steps[steps["loader"] == lid] if len(steps) else steps
        train = mine[mine["kind"] == "train"]
        b = batches[batches["loader"] == lid] if len(batches) else batches
        workers = int(meta.get("num_workers") or 0)
        in_workers = b[b["worker"] >= 0] if len(b) else b
        made = in_workers if workers > 0 and len(in_workers) else (
            b[b["worker"] < 0] if len(b) else b)
        entry = {
            "id": lid,
            "site": _site(meta),
            "dataset": meta.get("dataset"),
            "iterable": bool(meta.get("iterable")),
            "num_workers": workers,
            "batch_size": meta.get("batch_size"),
            "len": meta.get("len"),
            "persistent_workers": meta.get("persistent_workers"),
            "pin_memory": meta.get("pin_memory"),
            "start_method": meta.get("start_method"),
            "transforms": meta.get("transforms") or [],
            "steps": {"train": int(len(train)), "eval": int(len(mine) - len(train))},
            "iter_calls": len(meta.get("iters") or []),
            **_pass_costs(meta),
            "data_wait_s": float(mine["data_s"].mean()) if len(mine) else None,
            "where": "workers" if workers > 0 else "main",
            "batches_measured": int(len(made)),
        }
        if len(made):
            per = {p: float((made[f"{p}_ns"] / 1e9).mean()) for p in LOADER_PHASES}
            batch_s = float(((made["end_ns"] - made["start_ns"]) / 1e9).mean())
            entry.update({f"{p}_s": per[p] for p in LOADER_PHASES})
            entry["batch_s"] = batch_s
            entry["capacity_bps"] = (max(workers, 1) / batch_s) if batch_s > 0 else None
            names: dict = {}
            for pid in set(int(x) for x in made["pid"].dropna().unique()):
                mine_ns = (transform_ns_by_pid.get(pid) or {}).get(lid)
                for name, ns in (mine_ns if isinstance(mine_ns, dict) else {}).items():
                    names[name] = names.get(name, 0) + ns
            total_t = names.pop("transform total", None)
            busy_ns = float((made["end_ns"] - made["start_ns"]).sum())
            entry["transform_by_name"] = sorted(
                ({"name": k, "total_s": v / 1e9, "share_of_loading": v / busy_ns if busy_ns else 0}
                 for k, v in names.items()), key=lambda d: -d["total_s"])[:10]
            if total_t is not None and not names:
                entry["transform_by_name"] = []
        else:
            entry["batch_s"] = None
            entry["capacity_bps"] = None
            entry["transform_by_name"] = []
        # the steady train steps, as for the phase table (warm-up and the first step of
        # a pass that started workers left out)
        basis = steady_steps(train) if len(train) else mine
        if len(basis):
            compute = float((basis["wall_s"] - basis["data_s"]).mean())
            entry["loop_s"] = compute
            entry["demand_bps"] = 1.0 / compute if compute > 0 else None
        else:
            entry["loop_s"] = None
            entry["demand_bps"] = None
        entry["usable_workers"] = max(1, cores - 1)
        if entry["batch_s"] and entry["demand_bps"]:
            entry["workers_needed"] = max(1, math.ceil(entry["batch_s"] * entry["demand_bps"]))
        else:
            entry["workers_needed"] = None
        out.append(entry)
    return out


def _pass_costs(meta: dict) -> dict:
    """Start-up (``iter()`` plus, in a pass that started workers, the waits for each
    worker's first batch) and worker shutdown, per pass and in all."""
    passes = [p for p in meta.get("passes") or [] if isinstance(p, dict)]
    if not passes:  # a run directory written before passes were recorded
        passes = [{"iter_s": float(s), "first_batch_s": None, "shutdown_s": None}
                  for s in meta.get("iters") or []]
    per = [float(p.get("iter_s") or 0) + float(p.get("first_batch_s") or 0)
           + float(p.get("fill_s") or 0) for p in passes]
    down = [p.get("shutdown_s") for p in passes]
    return {"startup_s": float(sum(per)), "startup_per_pass_s": per,
            "shutdown_s": float(sum(d for d in down if d)),
            "shutdown_per_pass_s": down}


def training_loader(loaders: list):
    """The loader that fed the most train steps (None without one)."""
    best = max(loaders, key=lambda d: d["steps"]["train"], default=None)
    if best is None or best["steps"]["train"] == 0:
        return None
    return best
