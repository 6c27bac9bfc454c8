"""Rank detection, where ranks write, and the communication-wait hooks."""
from __future__ import annotations

import torch

from nnprof.distributed import default_launch_out, rank_dirs, rank_env, rank_path
from nnprof.instrument.comm import CommWait, distributed_world


def test_rank_from_torchruns_environment():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "GROUP_RANK": "1", "TORCHELASTIC_RUN_ID": "abc/1"}
    r = rank_env(env)
    assert (r.rank, r.world_size, r.local_rank, r.local_world_size, r.node_rank) == \
        (3, 4, 1, 2, 1)
    assert rank_path("RUN", r.rank).endswith("rank-3")
    assert default_launch_out("train", r) == "reports/train-abc_1"


def test_not_a_rank_without_a_consistent_environment():
    assert rank_env({}) is None
    assert rank_env({"RANK": "0"}) is None
    assert rank_env({"RANK": "2", "WORLD_SIZE": "2"}) is None
    assert rank_env({"RANK": "x", "WORLD_SIZE": "2"}) is None
    r = rank_env({"RANK": "0", "WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "none",
                  "MASTER_PORT": "29500"})
    assert r.run_id is None and "port29500" in default_launch_out("t", r, environ={
        "MASTER_PORT": "29500"})


def test_rank_dirs_lists_rank_runs_only(tmp_path):
    for name in ("rank-1", "rank-0", "rank-x", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "rank-0" / "meta.json").write_text("{}")
    (tmp_path / "rank-1" / "meta.json").write_text("{}")
    (tmp_path / "rank-x" / "meta.json").write_text("{}")
    assert list(rank_dirs(tmp_path)) == [0, 1]
    assert rank_dirs(tmp_path / "missing") == {}


def test_inactive_without_a_process_group_of_several_ranks():
    assert distributed_world() == 0
    cw = CommWait()
    assert not cw.active()
    cw.uninstall()


def test_the_wait_is_the_time_after_the_graph_ended():
    cw = CommWait()
    cw.graph_done_ns = 150
    assert cw.gap(100, 400) == 250
    assert cw.gap(200, 400) == 0      # the end of an earlier backward's graph
    cw.graph_done_ns = 0
    assert cw.gap(100, 400) == 0


def test_the_callback_runs_when_the_graph_ends_before_backward_returns():
    import time
    cw = CommWait()
    x = torch.ones(3, requires_grad=True)
    loss = (x * 2).sum()
    handle = cw.arm(loss)
    t0 = time.perf_counter_ns()
    loss.backward()
    t1 = time.perf_counter_ns()
    cw.disarm(handle)
    assert t0 <= cw.graph_done_ns <= t1 and x.grad.tolist() == [2.0, 2.0, 2.0]
    assert cw.arm(torch.ones(2)) is None          # nothing to hook: no graph
