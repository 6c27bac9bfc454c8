"""The merge of rank run directories written directly (no torchrun): the straggler, the
per-rank view, validation across ranks, a rank killed mid-run."""
from __future__ import annotations

import json

import pytest

from nnprof.distributed.merge import MergeError, merge, write_merged
from rundirs import rank_run


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
