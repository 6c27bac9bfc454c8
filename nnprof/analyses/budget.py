"""The one-second budget: which steps exceed it, and why."""
from __future__ import annotations

from ..rundir.phases import PHASES
from . import Finding

MAX_LISTED = 10000


def budget(steps, budget_s: float, train_loader: dict = None) -> Finding:
    """Rule: a train step exceeds the budget when its wall time > ``budget_s``.

    Evidence: the count and share of train steps over budget, their 0-based
    train-step indices, for each the phase that took most of its time, the
    p50/p95/max step time, and the projected time of one epoch
    (``len(training loader) x mean train-step time``; without a sized loader
    the projection is left out and the reason given). Verdict ``fits`` when no
    train step exceeded, ``exceeds`` otherwise (severity ``fail`` when more
    than half did, ``warn`` when some did).
    """
    train = steps[steps["kind"] == "train"]
    evals = steps[steps["kind"] == "eval"]
    basis = train if len(train) else steps
    over = basis[basis["wall_s"] > budget_s]
    cols = [f"{p}_s" for p in PHASES]
    dominant = []
    for _, row in over.head(200).iterrows():
        vals = {p: float(row[f"{p}_s"]) for p in PHASES}
        top = max(vals, key=vals.get)
        dominant.append({"train_index": int(row["train_index"]) if row["train_index"] == row[
            "train_index"] else None, "index": int(row["index"]), "wall_s": float(row["wall_s"]),
            "phase": top, "phase_s": vals[top]})
    by_phase: dict = {}
    if len(over):
        tops = over[cols].idxmax(axis=1).str[:-2]
        by_phase = {k: int(v) for k, v in tops.value_counts().items()}
    n = len(basis)
    evidence = {
        "budget_s": budget_s,
        "train_steps": int(len(train)),
        "count": int(len(over)),
        "share": len(over) / n if n else 0.0,
        "steps": [int(i) for i in (over["train_index"] if len(train) else over["index"])
                  .head(MAX_LISTED)],
        "truncated": len(over) > MAX_LISTED,
        "dominant_phase_counts": by_phase,
        "over_budget_steps": dominant,
        "eval_over_count": int((evals["wall_s"] > budget_s).sum()),
        "p50_s": float(basis["wall_s"].quantile(0.5)) if n else None,
        "p95_s": float(basis["wall_s"].quantile(0.95)) if n else None,
        "max_s": float(basis["wall_s"].max()) if n else None,
        "mean_s": float(basis["wall_s"].mean()) if n else None,
    }
    epoch = {"loader": None, "steps_per_epoch": None, "projected_s": None}
    if train_loader is not None and train_loader.get("len") and len(train):
        epoch = {"loader": train_loader["id"], "steps_per_epoch": int(train_loader["len"]),
                 "projected_s": int(train_loader["len"]) * evidence["mean_s"]}
    elif len(train):
        epoch["reason"] = "no sized DataLoader fed the train steps"
    evidence["epoch"] = epoch

    advice = []
    if len(over):
        top = max(by_phase, key=by_phase.get)
        advice.append(f"{len(over)} of {n} train steps exceeded {budget_s:g} s; "
                      f"'{top}' dominated {by_phase[top]} of them.")
        if evidence["p50_s"] is not None and evidence["p50_s"] <= budget_s:
            advice.append("Most steps fit: the slow ones are outliers (first steps, "
                          "evaluation, checkpointing or loader restarts); look at their indices.")
        else:
            advice.append("Typical steps exceed the budget: shrink the batch or the model, "
                          "or remove the bottleneck named below, to keep experiments fast.")
        verdict, severity = "exceeds", "fail" if evidence["share"] > 0.5 else "warn"
    else:
        verdict, severity = "fits", "info"
    return Finding("budget", verdict, evidence, tuple(advice), severity)
