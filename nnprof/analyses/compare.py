"""``nnprof compare RUN_A RUN_B``: what got faster or slower between two runs.

Per phase, the mean and p95 per train step of each run, the change and the
ratio. A change is called out only when it is both large enough to matter (at
least :data:`MIN_REL` of the slower figure and :data:`MIN_ABS_S` in absolute
terms) and unlikely to be noise: when both runs' ``steps.csv`` are at hand the
per-step values are compared with a Mann-Whitney U test (normal approximation,
two-sided, :data:`ALPHA`); without them the size rules alone decide.
"""
from __future__ import annotations

import math
import os
from typing import Optional

from ..rundir.phases import PHASES

MIN_REL = 0.05
MIN_ABS_S = 50e-6
ALPHA = 0.01


def _steady_train(run) -> Optional[object]:
    if run is None:
        return None
    try:
        steps = run.steps
    except Exception:
        return None
    from ..rundir.steady import steady_steps  # the one definition of the steady steps
    train = steady_steps(steps[steps["kind"] == "train"])
    return train if len(train) else None


def mann_whitney_p(a, b) -> Optional[float]:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with the
    tie correction); None when either sample is too small for it."""
    import numpy as np
    import pandas as pd
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n1, n2 = len(a), len(b)
    if n1 < 5 or n2 < 5:
        return None
    both = np.concatenate([a, b])
    ranks = pd.Series(both).rank(method="average").to_numpy()
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    _, counts = np.unique(both, return_counts=True)
    n = n1 + n2
    tie = (counts ** 3 - counts).sum() / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12 * ((n + 1) - tie)
    if var <= 0:
        return 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    return float(math.erfc(max(z, 0.0) / math.sqrt(2)))


def _row(name: str, sa: dict, sb: dict, va=None, vb=None) -> dict:
    ma, mb = sa.get("mean_s"), sb.get("mean_s")
    row = {"name": name, "a_mean_s": ma, "b_mean_s": mb, "a_p95_s": sa.get("p95_s"),
           "b_p95_s": sb.get("p95_s"), "a_share": sa.get("share"), "b_share": sb.get("share"),
           "delta_s": None, "ratio": None, "p_value": None, "change": "same"}
    if ma is None or mb is None:
        row["change"] = "n/a"
        return row
    delta = mb - ma
    row["delta_s"] = delta
    row["ratio"] = mb / ma if ma > 0 else None
    if va is not None and vb is not None:
        row["p_value"] = mann_whitney_p(va, vb)
    big = abs(delta) >= max(MIN_REL * max(ma, mb), MIN_ABS_S)
    noise = row["p_value"] is not None and row["p_value"] >= ALPHA
    if big and not noise:
        row["change"] = "slower" if delta > 0 else "faster"
    return row


def _name(path: str) -> str:
    return os.path.basename(os.path.normpath(path)) or path


def compare_runs(summary_a: dict, summary_b: dict, run_a=None, run_b=None,
                 names: Optional[tuple] = None) -> dict:
    """The comparison record (what ``--format json`` prints)."""
    if names is None:
        names = (_name(run_a.path) if run_a else "A", _name(run_b.path) if run_b else "B")
        if names[0] == names[1]:
            pa = run_a.path if run_a else names[0]
            pb = run_b.path if run_b else names[1]
            names = (pa, pb) if pa != pb else (f"{names[0]} (1)", f"{names[1]} (2)")
    ta, tb = _steady_train(run_a), _steady_train(run_b)
    pa, pb = summary_a.get("phases") or {}, summary_b.get("phases") or {}
    rows = []
    for p in PHASES:
        col = f"{p}_s"
        rows.append(_row(p, pa.get(p) or {}, pb.get(p) or {},
                         None if ta is None else ta[col], None if tb is None else tb[col]))
    sta, stb = summary_a.get("step_time") or {}, summary_b.get("step_time") or {}
    step = _row("step", sta, stb, None if ta is None else ta["wall_s"],
                None if tb is None else tb["wall_s"])
    step.update({"a_p50_s": sta.get("p50_s"), "b_p50_s": stb.get("p50_s"),
                 "a_max_s": sta.get("max_s"), "b_max_s": stb.get("max_s")})
    changes = sorted([r for r in rows + [step] if r["change"] in ("faster", "slower")],
                     key=lambda r: -abs(r["delta_s"]))

    def side(s):
        b = s.get("budget") or {}
        ev = b.get("evidence") or {}
        bn = s.get("bottleneck") or {}
        ep = s.get("epoch") or {}
        loss = s.get("loss") or {}
        metrics = (s.get("metrics") or [None])[-1] or {}
        train = [d for d in s.get("loader") or [] if (d.get("steps") or {}).get("train")]
        batch = max(train, key=lambda d: d["steps"]["train"]).get("batch_size") if train else None
        mean = (s.get("step_time") or {}).get("mean_s")
        return {"batch_size": batch,
                "samples_per_s": batch / mean if batch and mean else None,"script": s.get("script"), "argv": s.get("argv"), "status": s.get("status"),
                "steps": s.get("steps"), "budget_s": s.get("budget_s"),
                "budget_verdict": b.get("verdict"), "over_budget": ev.get("count"),
                "over_budget_share": ev.get("share"),
                "bottleneck": bn.get("verdict"), "bottleneck_advice": bn.get("advice") or [],
                "input_share": (bn.get("evidence") or {}).get("input_share"),
                "compute_share": (bn.get("evidence") or {}).get("compute_share"),
                "epoch_s": ep.get("projected_s"),
                "last_loss": loss.get("last"), "accuracy": metrics.get("accuracy"),
                "f1_macro": metrics.get("f1_macro")}

    env_a, env_b = summary_a.get("environment") or {}, summary_b.get("environment") or {}
    env = [{"key": k, "a": env_a.get(k), "b": env_b.get(k)} for k in sorted(set(env_a) | set(env_b))
           if env_a.get(k) != env_b.get(k)]
    la = {d.get("site") or d.get("id"): d for d in summary_a.get("loader") or []}
    lb = {d.get("site") or d.get("id"): d for d in summary_b.get("loader") or []}
    for site in sorted(set(la) & set(lb), key=str):
        for k in ("num_workers", "batch_size", "pin_memory", "persistent_workers"):
            if la[site].get(k) != lb[site].get(k):
                env.append({"key": f"loader {site} {k}", "a": la[site].get(k), "b": lb[site].get(k)})
    if summary_a.get("budget_s") != summary_b.get("budget_s"):
        env.append({"key": "budget_s", "a": summary_a.get("budget_s"), "b": summary_b.get("budget_s")})
    return {"kind": "compare", "names": list(names),
            "paths": [run_a.path if run_a else None, run_b.path if run_b else None],
            "a": side(summary_a), "b": side(summary_b), "phases": rows, "step": step,
            "changes": changes, "differences": env,
            "verdict": _verdict(step, changes, side(summary_a), side(summary_b)),
            "rules": {"min_rel": MIN_REL, "min_abs_s": MIN_ABS_S, "alpha": ALPHA,
                      "test": "Mann-Whitney U over steady train steps (first step left out)"}}


def _verdict(step: dict, changes: list, a: dict, b: dict) -> str:
    text = _step_verdict(step, changes)
    ba, bb = a.get("batch_size"), b.get("batch_size")
    if ba and bb and ba != bb and a.get("samples_per_s") and b.get("samples_per_s"):
        text += (f" The batch size differs ({ba} -> {bb}): per sample, B makes "
                 f"{b['samples_per_s']:.0f} samples/s against A's {a['samples_per_s']:.0f} "
                 f"({b['samples_per_s'] / a['samples_per_s']:.2f}x).")
    return text


def _step_verdict(step: dict, changes: list) -> str:
    if step.get("change") == "n/a":
        return "One of the runs has no train steps to compare."
    if step["change"] == "same":
        moved = ", ".join(f"{c['name']} {c['change']}" for c in changes if c["name"] != "step")
        return "Step time unchanged" + (f" ({moved})" if moved else "") + "."
    r = step.get("ratio")
    how = (f"{1 / r:.2f}x faster" if step["change"] == "faster" and r else
           f"{r:.2f}x slower" if r else step["change"])
    lead = [c for c in changes if c["name"] != "step"]
    why = ""
    if lead:
        c = lead[0]
        why = (f", mostly {c['name']} ({(c['delta_s']) * 1e3:+.2f} ms per step)")
    return f"B is {how} per train step than A{why}."
