"""The scaling projection's arithmetic (analyses/scaling.py), on bases whose truth is
known by hand."""
from __future__ import annotations

import math

import pytest

from nnprof.analyses import scaling as sc

MIB = 2 ** 20


def basis(**kw) -> dict:
    """A CPU run: 100 ms of loop work (forward 30, backward 50, optimizer 10, other
    10), a batch of 32 made in 60 ms in the main process, 4 cores, one core of main
    CPU, 40 MB of gradients."""
    b = {"step_s": 0.161, "data_s": 0.061, "main_s": 0.100, "comm_wait_s": 0.0,
         "phases_s": {"prep": 0.0, "forward": 0.030, "loss": 0.0, "backward": 0.050,
                      "optimizer": 0.010, "other": 0.010},
         "device": "cpu", "cores": 4, "ranks": 1, "nodes": 1, "ranks_per_node": 1,
         "workers": 0, "loader": True, "batch_size": 32, "loader_batch_s": 0.060,
         "loader_where": "main", "backward": True, "grad_bytes": 40 * 10 ** 6,
         "peak_bytes": 1e9, "scaling_bytes": 2e8, "memory_total_bytes": 16e9,
         "memory_against": "available host memory", "main_cpu": 1.0,
         "loader_cpu_share": 1.0, "ipc_s": 0.001, "sources": {}}
    b.update(kw)
    return b


def test_buckets_follow_ddp():
    assert sc.buckets(0) == []
    assert sc.buckets(MIB // 2) == [MIB // 2]
    assert sc.buckets(60 * MIB) == [MIB, 25 * MIB, 25 * MIB, 9 * MIB]


def test_ring_allreduce_counts_2_n_minus_1_over_n():
    link = {"busbw_gbps": 10.0, "latency_s": 0.0}
    assert sc.allreduce_s(1e9, 1, link) == 0
    assert sc.allreduce_s(1e9, 2, link) == pytest.approx(0.1)     # 2*(1/2) * 1 GB / 10 GB/s
    assert sc.allreduce_s(1e9, 8, link) == pytest.approx(0.175)   # 2*(7/8) * 0.1 s


def test_links():
    assert sc.link_from("nvlink4")["busbw_gbps"] == 450.0
    assert sc.link_from("12.5")["busbw_gbps"] == 12.5
    for bad in ("warp-drive", "0", "-3", "nan"):
        with pytest.raises(ValueError):
            sc.link_from(bad)


def test_workers_take_the_loading_off_the_main_process():
    b = basis()
    zero = sc.project_one(b, 0, 1)
    assert zero["step_s"] == pytest.approx(0.161)          # 100 ms loop + 60 + 1 ms
    assert zero["bound"] == "compute"
    one = sc.project_one(b, 1, 1)
    assert one["step_s"] == pytest.approx(0.101)           # loop + receiving; 60 ms in a worker
    two = sc.project_one(b, 2, 1)
    assert two["step_s"] == pytest.approx(0.101)
    slow = sc.project_one(basis(loader_batch_s=0.300), 2, 1)
    assert slow["step_s"] == pytest.approx(0.150) and slow["bound"] == "input"
    assert "3 workers per rank" in slow["advice"]


def test_cores_bound_when_workers_and_main_share_too_few_cores():
    b = basis(cores=2, loader_batch_s=0.200)
    p = sc.project_one(b, 2, 1)
    # 100 ms of main work + 200 ms of loading on 2 cores: 150 ms, not 100
    assert p["step_s"] == pytest.approx(0.150) and p["bound"] == "cores"


def test_communication_overlaps_backward_on_gpu_not_on_a_full_cpu():
    link = sc.link_from("1")      # 1 GB/s
    g = basis(device="cuda", main_cpu=0.2, grad_bytes=40 * MIB)
    p = sc.project_one(g, 2, 2, link=link)
    total = sum(sc.allreduce_s(s, 2, link) for s in sc.buckets(40 * MIB))
    assert p["parts"]["communication_s"] == pytest.approx(total)
    last = sc.allreduce_s(sc.buckets(40 * MIB)[-1], 2, link)
    assert p["parts"]["communication_exposed_s"] == pytest.approx(max(last, total - 0.050))
    # 2 ranks, each a main process and a worker busy: 3 cores leave none for gloo
    full = basis(cores=3, grad_bytes=200 * MIB)
    q = sc.project_one(full, 1, 2, link=link)
    total = sum(sc.allreduce_s(s, 2, link) for s in sc.buckets(200 * MIB))
    assert q["parts"]["communication_exposed_s"] == pytest.approx(total)
    assert q["step_s"] == pytest.approx(0.101 + total)
    assert q["bound"] == "communication"


def test_a_distributed_runs_own_wait_is_scaled_by_2_n_minus_1_over_n():
    b = basis(ranks=2, comm_wait_s=0.020, main_s=0.120)
    one = sc.project_one(b, 0, 1)
    assert one["step_s"] == pytest.approx(0.161)     # its wait taken out
    four = sc.project_one(b, 0, 4)
    assert four["parts"]["communication_exposed_s"] == pytest.approx(0.020 * 1.5 / 1.0)
    assert four["communication"]["link"]["name"] == "measured"


def test_an_unknown_link_is_said_and_left_out():
    out = sc.project({"step_time": {"mean_s": 0.1}, "phases": {
        "data": {"mean_s": 0.01}, "forward": {"mean_s": 0.04}, "backward": {"mean_s": 0.05}},
        "environment": {"usable_cores": 8}, "memory": {"breakdown": {"gradients": 4e7}}},
        {}, [(0, 1, 1), (0, 4, 1)])
    four = out["projections"][1]
    assert four["complete"] is False and four["parts"]["communication_exposed_s"] is None
    assert any("link between ranks" in n for n in out["notices"])
    assert any("no DataLoader" in n for n in out["notices"])


def test_batch_scale_scales_the_batch_work_and_memory():
    b = basis()
    p = sc.project_one(b, 2, 1, batch_scale=2.0)
    # forward + backward share of the loop (80 ms) doubles; optimizer and other do not
    assert p["parts"]["compute_s"] == pytest.approx(0.160)
    assert p["memory"]["per_rank_bytes"] == pytest.approx(1.2e9)
    huge = sc.project_one(b, 2, 1, batch_scale=100.0)
    assert huge["memory"]["fits"] is False and huge["bound"] == "memory"


def test_ddp_buckets_count_in_memory_and_a_nodes_ranks_share_the_host():
    b = basis(memory_total_bytes=4e9)
    p = sc.project_one(b, 0, 4, link=sc.link_from("10"))
    assert p["memory"]["per_rank_bytes"] == pytest.approx(1e9 + 40e6)
    assert p["memory"]["capacity_bytes"] == pytest.approx(1e9)
    assert p["memory"]["fits"] is False


def test_efficiency_and_throughput():
    out = sc.project({}, {}, None)
    assert out["projections"] == [] and out["notices"]
    b = basis(device="cuda", main_cpu=0.2, cores=32)
    link = sc.link_from("nvlink4")
    p1 = sc.project_one(b, 4, 1, link=link)
    p8 = sc.project_one(b, 4, 8, link=link)
    assert p1["samples_per_s"] == pytest.approx(32 / p1["step_s"])
    assert p8["samples_per_s"] == pytest.approx(8 * 32 / p8["step_s"])
    assert p8["samples_per_s"] / (8 * p1["samples_per_s"]) == pytest.approx(
        p1["step_s"] / p8["step_s"])
    assert math.isfinite(p8["step_s"]) and p8["step_s"] >= p1["step_s"]
