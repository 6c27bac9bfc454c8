"""Build ``summary.json`` from a run directory (live at the end, or post mortem)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from .analyses.bottleneck import bottleneck
from .analyses.budget import budget
from .analyses.hardware import gpu_memory_summary, gpu_summary, hardware_findings, host_summary
from .analyses.loader import loader_stats, training_loader
from .analyses.metrics import classification_metrics, curves
from .analyses.overfit import loss_at_init
from .analyses.wiring import wiring
from .analyses.hotspots import hotspots, input_advice
from .analyses.phases import phase_table, worker_phase_table
from .analyses.startup import loader_startup
from .rundir.phases import PHASES
from .rundir import SCHEMA_VERSION, RunDir, describe_basis, steady_steps
from .rundir.files import json_safe as _clean

FAIL_CONDITIONS = ("budget", "input-bound", "compute-bound", "optimizer-bound",
                   "host-overhead-bound", "crashed", "wiring", "memory-growth", "memory")


def build_summary(run: RunDir, status: str, exit_code: Optional[int], notices=(),
                  wall_s: Optional[float] = None) -> dict:
    meta = run.meta
    all_steps = run.steps
    trace = trace_summary(run)
    notices = list(notices)
    steps = measured_steps(all_steps, trace, notices)  # without the steps --trace slowed
    probe = run.probe or {}
    budget_s = float(meta.get("budget_s") or 1.0)
    cores = int(meta.get("usable_cores") or 1)
    device = "cuda" if meta.get("cuda_available") and steps.filter(like="gpu_").notna().any().any() \
        else "cpu"

    train = steps[steps["kind"] == "train"]
    basis, over = (train, "train") if len(train) else (steps, "all")
    if not len(train) and len(steps):
        notices.append("No step ran a backward pass: statistics are over evaluation steps.")
    if not len(all_steps):
        notices.append("No training step was seen: the script ran no forward pass, backward "
                       "pass, optimizer step or DataLoader iteration in the main thread.")

    # every row of the phase table, the step time and the verdict are over the
    # same steps: the steady ones (warm-up left out, see steady_steps)
    steady = steady_steps(basis)
    phases = phase_table(steady)
    batches = run.batches
    worker_phases = worker_phase_table(batches)
    for p, stats in worker_phases.items():
        if phases[p]["total_s"] == 0:
            phases[p] = stats
    gpu_cols = [f"gpu_{p}_s" for p in PHASES]
    has_gpu = len(steady) and steady[gpu_cols].notna().all(axis=1).any()
    gpu_phases = phase_table(steady.dropna(subset=gpu_cols), prefix="gpu_") if has_gpu else None

    loaders = loader_stats(run.loaders, steps, batches, run.transform_times(), cores)
    tl = training_loader(loaders)
    b = budget(steps, budget_s, tl)

    source = "device" if gpu_phases else "host"
    table = gpu_phases if gpu_phases else phases
    shares = {p: table[p]["share"] for p in PHASES}
    means = {p: phases[p]["mean_s"] for p in PHASES}
    means["wall"] = float(steady["wall_s"].mean()) if len(steady) else None
    means["forwards"] = float(steady["n_forward"].mean()) if len(steady) else None
    unseen = tuple(probe.get("direct_forward") or ())
    if unseen:
        notices.append(f"{', '.join(unseen)}: forward called directly (module.forward(x)); "
                       "its work is not in the forward phase (see the bottleneck advice)")
    bn = bottleneck(shares, means, tl, device, cores, source, unseen) if len(basis) else None
    if bn is not None:
        bn.evidence["warmup_steps_excluded"] = len(basis) - len(steady)
    hot = pyspy_hotspots(run, notices)
    hot_line = input_advice(hot) if bn is not None and bn.verdict == "input-bound" else None
    if hot_line:  # name the function that makes the batches slow
        bn = dataclasses.replace(bn, advice=tuple(bn.advice) + (hot_line,))

    losses = basis["loss"].dropna() if len(basis) else basis
    in_steps = float(all_steps["wall_s"].sum()) if len(all_steps) else 0.0
    n_train = int((all_steps["kind"] == "train").sum()) if len(all_steps) else 0
    summary = {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "exit_code": exit_code,
        "script": meta.get("script"),
        "argv": meta.get("argv"),
        "budget_s": budget_s,
        "started_at": meta.get("started_at"),
        "wall_s": wall_s,
        "time_in_steps_s": in_steps,
        "steps": {"train": n_train, "eval": int(len(all_steps) - n_train),
                  "total": int(len(all_steps))},
        "phases_over": over,
        "basis": describe_basis(over, basis, steady),
        "phases": phases,
        "gpu_phases": gpu_phases,
        "step_time": {"mean_s": means["wall"],
                      "p50_s": float(steady["wall_s"].quantile(0.5)) if len(steady) else None,
                      "p95_s": float(steady["wall_s"].quantile(0.95)) if len(steady) else None,
                      "max_s": float(steady["wall_s"].max()) if len(steady) else None},
        "over_budget": {"count": b.evidence["count"], "share": b.evidence["share"],
                        "steps": b.evidence["steps"], "truncated": b.evidence["truncated"],
                        "eval_count": b.evidence["eval_over_count"]},
        "budget": b.to_dict(),
        "epoch": b.evidence["epoch"],
        "bottleneck": bn.to_dict() if bn else {"verdict": "unknown", "evidence": {},
                                                 "advice": ["No steps were measured."]},
        "loader": loaders,
        "startup": _finding(loader_startup(loaders, in_steps, budget_s)),
        "loss": {"first": float(losses.iloc[0]), "last": float(losses.iloc[-1]),
                 "min": float(losses.min()), "count": int(len(losses))} if len(losses) else None,
        "curves": curves(all_steps),
        "metrics": pass_metrics(run.metrics_passes),
        "wiring": wiring(probe.get("wiring")).to_dict(),
        "loss_at_init": loss_at_init(probe.get("loss_at_init")).to_dict(),
        "schedulers": probe.get("schedulers") or [],
        "models": probe.get("models") or [],
        "optimizers": probe.get("optimizers") or [],
        "environment": {k: meta.get(k) for k in (
            "python", "torch", "platform", "device", "cpu_count", "usable_cores",
            "cuda_available", "torch_threads", "nnprof_version")},
        "hotspots": hot,
        "trace": trace,
        "overhead": overhead_estimate(run, all_steps, probe),
        "notices": notices,
    }
    # what the machine was doing (samples.csv from the host and GPU monitors)
    samples = run.samples
    summary["host"] = host_summary(samples, all_steps, loaders, cores)
    summary["gpu"] = gpu_summary(samples, all_steps)
    summary["gpu_memory"] = gpu_memory_summary(all_steps, meta.get("gpu_total_memory_bytes"))
    summary["hardware"] = [f.to_dict() for f in hardware_findings(
        summary["host"], summary["gpu"], bn.verdict if bn else None, loaders, cores,
        gpu_memory=summary["gpu_memory"], precision=probe.get("precision"))]
    summary["memory"] = _memory(all_steps, meta, probe, samples, tl, notices, run.path)
    summary["hardware"] += memory_findings(summary["memory"])
    summary["scaling"] = _scaling(summary, meta, notices)
    return _clean(summary)


def _memory(steps, meta: dict, probe: dict, samples, train_loader, notices: list,
            run_dir: str):
    """``memory`` (analyses/memory.py); an analysis that fails costs a notice only."""
    from .analyses.memory import memory_summary
    from .capture.memtrace import load as load_trace
    try:
        out = memory_summary(steps, meta, probe, samples,
                             (train_loader or {}).get("batch_size"))
        out["trace"] = load_trace(run_dir)
        return out
    except Exception as exc:
        notices.append(f"memory analysis failed ({exc.__class__.__name__}: {exc})")
        return None


def _scaling(summary: dict, meta: dict, notices: list) -> Optional[dict]:
    """``scaling``: the default projection (analyses/scaling.py) to 1, 2, 4 and 8 ranks
    and to the loader workers that would keep up. The link: a distributed run's own
    measured wait; on a GPU, PCIe 4.0 (said in the assumptions); on CPU none (said)."""
    from .analyses.scaling import project
    env = summary.get("environment") or {}
    distributed = int((meta.get("rank") or {}).get("world_size") or 1) > 1
    link = "pcie4" if env.get("cuda_available") and not distributed else None
    try:
        return project(summary, meta, link=link)
    except Exception as exc:
        notices.append(f"scaling projection failed ({exc.__class__.__name__}: {exc})")
        return None


def _finding(f) -> Optional[dict]:
    return f.to_dict() if f is not None else None


def overhead_estimate(run: RunDir, steps, probe: dict) -> Optional[dict]:
    """nnprof's own time per step, estimated from ``overhead.json`` (None without it)."""
    from .instrument.cost import estimate
    try:
        with open(os.path.join(run.path, "overhead.json")) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("hook_costs_ns"), dict):
        return None
    models = [m.get("modules") for m in probe.get("models") or []
              if isinstance(m, dict) and isinstance(m.get("modules"), int)]
    modules = sum(models) / len(models) if models else None
    try:
        return estimate(data["hook_costs_ns"], steps, modules, data.get("record_ns_per_step"))
    except (KeyError, TypeError, ValueError):
        return None


TRACE_TOP_OPS = 10


def trace_summary(run: RunDir) -> Optional[dict]:
    """``trace.json`` (``--trace``): its windows with their top operators, and the
    steps the profiler slowed; None without it."""
    try:
        with open(os.path.join(run.path, "trace.json")) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"windows": [], "excluded_steps": [],
                "error": f"trace.json unreadable ({exc.__class__.__name__})"}
    if not isinstance(data, dict):
        return None
    windows = []
    for w in data.get("windows") or []:
        if isinstance(w, dict):
            windows.append(dict(w, top_ops=list(w.get("top_ops") or [])[:TRACE_TOP_OPS]))
    excluded = sorted({int(i) for i in data.get("excluded_steps") or []
                       if isinstance(i, (int, float))})
    return {"windows": windows, "excluded_steps": excluded, "error": data.get("error")}


def measured_steps(steps, trace: Optional[dict], notices: list):
    """The steps that statistics are made of: those --trace slowed are left out."""
    excluded = (trace or {}).get("excluded_steps") or []
    if not excluded or not len(steps):
        return steps
    keep = steps[~steps["index"].isin(excluded)]
    gone = len(steps) - len(keep)
    if gone == 0:
        return steps
    if (steps["kind"] == "train").any() and not (keep["kind"] == "train").any():
        notices.append(f"{gone} steps were slowed by torch.profiler (--trace) but are kept in "
                       f"the statistics: no other train step was measured.")
        return steps
    shown = ", ".join(str(i) for i in excluded[:12]) + (", ..." if len(excluded) > 12 else "")
    notices.append(f"{gone} steps traced by torch.profiler (--trace; indices {shown}) are left "
                   f"out of the phase statistics, bottleneck and budget: the profiler slows "
                   f"them (steps.csv keeps them).")
    return keep.reset_index(drop=True)


def pyspy_hotspots(run: RunDir, notices: list) -> Optional[dict]:
    """Hot functions from py-spy's stacks (``--pyspy``), None without them."""
    text = run.pyspy_stacks
    if not text:
        return None
    try:
        return hotspots(text, run.pyspy_info.get("rate_hz"))[0]
    except Exception as exc:  # a malformed file must not cost the report
        notices.append(f"py-spy stacks not analysed: {exc.__class__.__name__}: {exc}")
        return None


def pass_metrics(passes: list) -> list:
    """Accuracy, precision, recall and F1 (macro) of each evaluation pass."""
    out = []
    for p in passes:
        try:
            m = classification_metrics(p["confusion"])
        except (ValueError, TypeError):
            continue
        out.append({"pass": p.get("pass"), "after_train_steps": p.get("after_train_steps"),
                    "task": p.get("task"), "classes": p.get("classes"),
                    **{k: m[k] for k in ("accuracy", "precision_macro", "recall_macro",
                                         "f1_macro", "support")}})
    return out


def memory_findings(memory: Optional[dict]) -> list:
    """The memory findings that join the machine findings: growth (a leak), and a peak
    within 10% of the device's or the machine's memory."""
    from .analyses.memory import near_full
    out = []
    g = (memory or {}).get("growth")
    if g:
        out.append({"name": "memory-growth", "verdict": "memory grows", "severity": "warn",
                    "evidence": {k: g.get(k) for k in ("bytes_per_step", "source",
                                                       "r_squared", "from_step",
                                                       "projection", "kept_losses")},
                    "advice": [g["verdict"]] + list(g.get("advice") or [])})
    full = near_full(memory)
    if full:
        out.append(full)
    return out


def failed_conditions(summary: dict, conditions) -> list:
    """Which ``--fail-on`` conditions hold for this summary."""
    hit = []
    for cond in conditions:
        if cond == "budget" and (summary.get("over_budget") or {}).get("count"):
            hit.append(cond)
        elif cond == "crashed" and summary.get("status") == "crashed":
            hit.append(cond)
        elif cond == "wiring" and (summary.get("wiring") or {}).get("verdict") == "fail":
            hit.append(cond)
        elif cond in ("memory-growth", "memory"):
            names = {f.get("name") for f in summary.get("hardware") or []}
            if "memory-growth" in names or (cond == "memory" and "memory-full" in names):
                hit.append(cond)
        elif (summary.get("bottleneck") or {}).get("verdict") == cond:
            hit.append(cond)
    return hit
