"""Run directories written directly, without training: for renderer and compare tests."""
from __future__ import annotations

import json
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


def rank_run(path, rank, world=2, data=0.002, comm=0.0, n=20, evals=(), status="completed",
             summary=True, confusion=None):
    """A rank's run directory: ``n`` train steps, then an eval pass of 2 steps after each
    train index in ``evals`` (loss given per pass)."""
    os.makedirs(path, exist_ok=True)
    write_json(os.path.join(path, "meta.json"), {
        "schema_version": 1, "script": "train.py", "argv": [], "budget_s": 1.0,
        "usable_cores": 2, "cuda_available": False, "pid": 1, "hostname": "elsewhere",
        "started_unix": 1000.0 + rank, "rank": {"rank": rank, "world_size": world,
                                                 "local_rank": rank, "node_rank": 0}})
    rows, idx, t = [], 0, 0.0
    rng = np.random.default_rng(rank)
    eval_at = dict(evals)
    for i in range(n):
        ph = {"data": data, "prep": 0.0002, "forward": 0.01, "loss": 0.0003,
              "backward": 0.008 + comm, "optimizer": 0.001, "other": 0.0002}
        ph = {k: v * rng.uniform(0.98, 1.02) for k, v in ph.items()}
        wall = sum(ph.values())
        rows.append({"index": idx, "kind": "train", "train_index": i, "start_s": t,
                     "wall_s": wall, **{f"{k}_s": v for k, v in ph.items()},
                     "loss": 1.0 / (i + 1), "n_forward": 1, "n_backward": 1,
                     "n_optimizer": 1, "comm_wait_s": comm})
        idx, t = idx + 1, t + wall
        if i in eval_at:
            for _ in range(2):
                rows.append({"index": idx, "kind": "eval", "start_s": t, "wall_s": 0.001,
                             "other_s": 0.001, "loss": eval_at[i], "n_forward": 1})
                idx, t = idx + 1, t + 0.001
    df = pd.DataFrame(rows, columns=STEP_COLUMNS)
    df.to_csv(os.path.join(path, "steps.csv"), index=False)
    if confusion:
        with open(os.path.join(path, "metrics.jsonl"), "w") as fh:
            for k, c in enumerate(confusion):
                fh.write(json.dumps({"task": "multiclass", "classes": 2, "pass": k,
                                     "after_train_steps": 0, "confusion": c}) + "\n")
    if summary:
        s = build_summary(Run.load(path), status=status,
                          exit_code={"completed": 0, "crashed": 1}.get(status, 130))
        write_json(os.path.join(path, "summary.json"), s)
