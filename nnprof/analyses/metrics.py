"""Classification metrics, validation passes and loss curves, from measured data.

Pure functions: no I/O and no torch. ``steps`` frames have the columns of
``steps.csv`` (``index``, ``kind``, ``train_index``, ``loss``, ``wall_s``);
confusion matrices are those of ``metrics.jsonl`` (``confusion[t][p]`` counts
samples of true class t predicted as p).
"""
from __future__ import annotations

import math
from typing import Optional

MAX_CURVE_POINTS = 2000


def _div(a: float, b: float) -> float:
    # zero_division=0, as scikit-learn's precision_recall_fscore_support
    return a / b if b else 0.0


def classification_metrics(confusion) -> dict:
    """Accuracy and precision/recall/F1 from a CxC confusion matrix.

    Per class c: precision = tp / predicted-as-c, recall = tp / true-c,
    f1 = 2PR / (P + R), each 0 when its denominator is 0 (``zero_division=0``).
    Macro averages are taken over the classes present in the targets or the
    predictions (non-zero row or column), exactly as scikit-learn's
    ``precision_recall_fscore_support(y_true, y_pred, average="macro",
    zero_division=0)``; these classes are listed in ``labels``. Accuracy is
    trace / total. With no samples, accuracy and the macro values are None.

    Returns ``{"accuracy", "precision_macro", "recall_macro", "f1_macro",
    "support", "labels", "precision", "recall", "f1", "class_support"}``, the
    last four being lists of length C (``class_support`` = row sums).
    """
    rows = [[int(v) for v in row] for row in confusion]
    c = len(rows)
    if any(len(r) != c for r in rows):
        raise ValueError(f"confusion matrix must be square, got {c} rows of lengths "
                         f"{sorted({len(r) for r in rows})}")
    true_n = [sum(r) for r in rows]
    pred_n = [sum(rows[t][p] for t in range(c)) for p in range(c)]
    tp = [rows[k][k] for k in range(c)]
    total = sum(true_n)
    precision = [_div(tp[k], pred_n[k]) for k in range(c)]
    recall = [_div(tp[k], true_n[k]) for k in range(c)]
    f1 = [_div(2 * p * r, p + r) for p, r in zip(precision, recall)]
    labels = [k for k in range(c) if true_n[k] or pred_n[k]]

    def macro(vals):
        return sum(vals[k] for k in labels) / len(labels) if labels else None

    return {
        "accuracy": sum(tp) / total if total else None,
        "precision_macro": macro(precision),
        "recall_macro": macro(recall),
        "f1_macro": macro(f1),
        "support": total,
        "labels": labels,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "class_support": true_n,
    }


def _num(x) -> Optional[float]:
    """A float, or None for missing values (None, NaN from an empty CSV cell)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def validation_passes(steps) -> list:
    """Maximal runs of consecutive eval steps (in ``index`` order) are passes.

    Each pass: ``{"pass": k (0-based), "after_train_steps": train steps run
    before it, "steps": its number of eval steps, "loss": mean of its non-null
    losses, or None when none was recorded}``.
    """
    if steps is None or len(steps) == 0:
        return []
    ordered = steps.sort_values("index") if "index" in steps.columns else steps
    passes: list = []
    trained = 0
    current = None
    for kind, loss in zip(ordered["kind"], ordered["loss"] if "loss" in ordered.columns
                          else [None] * len(ordered)):
        if kind == "eval":
            if current is None:
                current = {"pass": len(passes), "after_train_steps": trained,
                           "steps": 0, "_losses": []}
                passes.append(current)
            current["steps"] += 1
            v = _num(loss)
            if v is not None:
                current["_losses"].append(v)
        else:
            current = None
            if kind == "train":
                trained += 1
    for p in passes:
        vals = p.pop("_losses")
        p["loss"] = sum(vals) / len(vals) if vals else None
    return passes


def downsample(points: list, max_points: int) -> list:
    """At most ``max_points`` items of ``points``, evenly spaced, first and last kept."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    n = len(points)
    if n <= max_points:
        return list(points)
    # step (n-1)/(max_points-1) > 1, so the rounded positions are distinct
    return [points[round(i * (n - 1) / (max_points - 1))] for i in range(max_points)]


def curves(steps, max_points: int = MAX_CURVE_POINTS) -> dict:
    """Loss curves for plotting.

    ``train_loss``: ``[train_index, loss]`` for each train step with a loss,
    evenly downsampled to at most ``max_points`` (first and last kept).
    ``val_loss``: ``[after_train_steps, loss]`` for each validation pass with
    a loss (see :func:`validation_passes`).
    """
    train_pts: list = []
    if steps is not None and len(steps) and "loss" in steps.columns:
        ordered = steps.sort_values("index") if "index" in steps.columns else steps
        train = ordered[ordered["kind"] == "train"]
        for i, (ti, loss) in enumerate(zip(train["train_index"], train["loss"])):
            v = _num(loss)
            if v is None:
                continue
            t = _num(ti)
            train_pts.append([int(t) if t is not None else i, v])
    val_pts = [[p["after_train_steps"], p["loss"]] for p in validation_passes(steps)
               if p["loss"] is not None]
    return {"train_loss": downsample(train_pts, max_points), "val_loss": val_pts}
