"""Run directories written directly, without training: for renderer and compare tests."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from nnprof.run import STEP_COLUMNS, Run, write_json
from nnprof.summary import build_summary

EVIL = '</script><script>alert("x")</script><img src=x onerror=alert(1)>&amp;\u2028'


def synthetic_run(path, n_train=50, n_eval=0, budget=1.0, wall=0.01, script="train.py",
                  over_every=0, summary=True):
    """A run directory written directly (no training): ``n_train`` train steps."""
    os.makedirs(path, exist_ok=True)
    write_json(os.path.join(path, "meta.json"), {
        "schema_version": 1, "script": script, "argv": [], "budget_s": budget,
        "usable_cores": 2, "cuda_available": False})
    n = n_train + n_eval
    rng = np.random.default_rng(0)
    df = pd.DataFrame({c: np.nan for c in STEP_COLUMNS}, index=range(n))
    df["index"] = np.arange(n)
    df["kind"] = ["train"] * n_train + ["eval"] * n_eval
    df["train_index"] = list(range(n_train)) + [np.nan] * n_eval
    walls = np.full(n, wall) * rng.uniform(0.9, 1.1, n)
    if over_every:
        walls[::over_every] = budget * 1.5
    df["wall_s"] = walls
    df["start_s"] = np.cumsum(walls) - walls
    parts = {"data": 0.2, "prep": 0.02, "forward": 0.4, "loss": 0.03, "backward": 0.25,
             "optimizer": 0.05, "other": 0.05}
    for p, share in parts.items():
        df[f"{p}_s"] = walls * share
    df["loss"] = np.linspace(2.3, 0.1, n)
    df["over_budget"] = walls > budget
    df["n_forward"] = 1
    df["n_backward"] = [1] * n_train + [0] * n_eval
    df["n_optimizer"] = df["n_backward"]
    df["loader"] = ""
    df.to_csv(os.path.join(path, "steps.csv"), index=False, float_format="%.6f")
    run = Run.load(str(path))
    s = build_summary(run, status="completed", exit_code=0)
    if summary:
        write_json(os.path.join(path, "summary.json"), s)
    return run, s
