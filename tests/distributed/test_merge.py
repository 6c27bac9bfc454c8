"""The merge of rank run directories written directly (no torchrun): the straggler, the
per-rank view, validation across ranks, a rank killed mid-run."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from nnprof.distributed.merge import MergeError, merge, write_merged
from nnprof.run import STEP_COLUMNS, write_json


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
        from nnprof.run import Run
        from nnprof.summary import build_summary
        s = build_summary(Run.load(path), status=status,
                          exit_code={"completed": 0, "crashed": 1}.get(status, 130))
        write_json(os.path.join(path, "summary.json"), s)


def test_the_straggler_is_the_basis_and_the_other_ranks_wait_for_it(tmp_path):
    rank_run(tmp_path / "rank-0", 0, comm=0.05)
    rank_run(tmp_path / "rank-1", 1, data=0.052)
    s, run, table, aligned = merge(str(tmp_path))
    d = s["distributed"]
    assert d["straggler"]["rank"] == 1 and d["straggler"]["cause"] == "input"
    assert d["basis_rank"] == 1 and run.path.endswith("rank-1")
    assert s["bottleneck"]["verdict"] == "input-bound"
    assert d["comm_wait"]["0"]["mean_s"] == pytest.approx(0.05, rel=0.05)
    assert d["ranks"]["0"]["bottleneck"] == "waits for other ranks"
    assert d["aligned_steps"] == 20 and len(d["skew"]["gap_s"]) == 20
    assert s["step_time"]["mean_s"] == pytest.approx(table["wall_s"].iloc[2:].mean())


def test_written_files_are_one_json_document_and_one_row_per_aligned_step(tmp_path):
    rank_run(tmp_path / "rank-0", 0, comm=0.05, n=12)
    rank_run(tmp_path / "rank-1", 1, data=0.052, n=10)
    merged, _, problems = write_merged(str(tmp_path))
    assert problems == []
    assert json.loads((tmp_path / "summary.json").read_text())["distributed"]["aligned_steps"] \
        == 10
    lines = (tmp_path / "steps.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].split(",")[-1] == "rank1_comm_wait_s"
    assert any("ran a different number" in n for n in merged["notices"])
    html = (tmp_path / "report.html").read_text()
    assert 'id="distributed"' in html


def test_validation_is_weighted_by_samples_and_counts_are_summed(tmp_path):
    # rank 0 evaluates 30 samples per pass, rank 1 10: losses weighted 3:1
    rank_run(tmp_path / "rank-0", 0, evals=[(9, 0.8), (19, 0.4)],
             confusion=[[[10, 5], [5, 10]], [[14, 1], [1, 14]]])
    rank_run(tmp_path / "rank-1", 1, evals=[(9, 0.4), (19, 0.0)],
             confusion=[[[5, 0], [0, 5]], [[5, 0], [0, 5]]])
    s, *_ = merge(str(tmp_path))
    assert [round(v, 6) for _, v in s["curves"]["val_loss"]] == [0.7, 0.3]
    assert [m["support"] for m in s["metrics"]] == [40, 40]
    assert s["metrics"][0]["accuracy"] == pytest.approx(30 / 40)


def test_only_rank_0_evaluating_gives_its_own_figures(tmp_path):
    rank_run(tmp_path / "rank-0", 0, evals=[(9, 0.8)])
    rank_run(tmp_path / "rank-1", 1)
    s, *_ = merge(str(tmp_path))
    assert s["curves"]["val_loss"] == [[10, pytest.approx(0.8)]]


def test_a_crashed_rank_and_one_killed_without_its_summary(tmp_path):
    rank_run(tmp_path / "rank-0", 0, status="interrupted")
    rank_run(tmp_path / "rank-1", 1, status="crashed")
    rank_run(tmp_path / "rank-2", 2, world=3, summary=False)      # killed with -9
    s, *_ = merge(str(tmp_path))
    d = s["distributed"]
    assert d["ranks"]["2"]["status"] == "incomplete" and d["ranks"]["2"]["steps"]["train"] == 20
    assert sorted(d["failed_ranks"]) == [1, 2] and s["status"] == "crashed"
    assert any(n.startswith("rank 1 failed first") for n in s["notices"])
    assert d["ranks"]["0"]["status"] == "interrupted" and 0 not in d["failed_ranks"]


def test_a_missing_rank_and_no_ranks(tmp_path):
    rank_run(tmp_path / "rank-0", 0, world=4)
    s, *_ = merge(str(tmp_path))
    assert s["distributed"]["straggler"] is None
    assert any("rank(s) 1, 2, 3" in n for n in s["notices"])
    with pytest.raises(MergeError):
        merge(str(tmp_path / "nothing"))
