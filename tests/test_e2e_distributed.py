"""torchrun / DDP end to end (gloo on CPU): one run per rank, the merged view, stragglers,
communication wait, failures, Ctrl-C and a 2-node launch on localhost."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SCRIPTS, processes_naming, run_cli

pytestmark = pytest.mark.slow
SCRIPT = SCRIPTS / "ddp_train.py"
DELAY = 0.06
STEPS = 10        # batches per epoch per rank (2 epochs)


def merged(out) -> dict:
    return json.loads((Path(out) / "summary.json").read_text())


def rank_summary(out, r) -> dict:
    return json.loads((Path(out) / f"rank-{r}" / "summary.json").read_text())


def wait_gone(path, timeout=20.0) -> list:
    deadline = time.monotonic() + timeout
    while processes_naming(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_naming(path)


@pytest.fixture(scope="module")
def input_straggler(tmp_path_factory):
    """nnprof starts torchrun: 2 ranks, rank 1 sleeps DELAY in its collate_fn; every rank
    evaluates its shard each epoch."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    r = run_cli(["profile", "--nproc-per-node", "2", "--out", out, "--no-progress", SCRIPT,
                 "--straggler", "1", "--delay", DELAY, "--steps", STEPS, "--eval", "all"],
                timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_each_rank_writes_its_own_run_and_the_merge_names_the_input_straggler(input_straggler):
    out, r = input_straggler
    s = merged(out)                                   # valid JSON: one document
    d = s["distributed"]
    assert d["world_size"] == 2 and set(d["ranks"]) == {"0", "1"}
    for rank in (0, 1):
        own = rank_summary(out, rank)
        assert own["steps"]["train"] == 2 * STEPS    # each rank's steps counted exactly
        assert d["ranks"][str(rank)]["steps"]["train"] == 2 * STEPS
        assert d["ranks"][str(rank)]["status"] == "completed"
    st = d["straggler"]
    assert st["rank"] == 1 and st["cause"] == "input"
    assert st["gap_s"] == pytest.approx(DELAY, rel=0.25)
    assert st["severity"] == "critical" and any("DataLoader" in a for a in st["advice"])
    # the other rank waits for it in backward: its comm_wait is about the delay
    assert d["comm_wait"]["0"]["mean_s"] == pytest.approx(DELAY, rel=0.3)
    assert d["comm_wait"]["1"]["mean_s"] < DELAY / 3
    # per-rank phases against the truth: rank 1's data is the injected sleep
    data1 = rank_summary(out, 1)["phases"]["data"]["mean_s"]
    assert data1 == pytest.approx(DELAY, rel=0.10, abs=0.003)
    assert rank_summary(out, 0)["phases"]["comm_wait"]["within"] == "backward"
    # the job's verdicts are the straggler's
    assert d["basis_rank"] == 1 and s["bottleneck"]["verdict"] == "input-bound"
    assert "straggler" in r.stderr and "rank 1" in r.stderr


def test_steps_are_aligned_and_written_once(input_straggler):
    out, _ = input_straggler
    lines = (Path(out) / "steps.csv").read_text().splitlines()
    head = lines[0].split(",")
    assert head[:5] == ["train_index", "wall_s", "slowest_rank", "gap_s", "skew_s"]
    rows = [dict(zip(head, ln.split(","))) for ln in lines[1:]]
    assert [int(x["train_index"]) for x in rows] == list(range(2 * STEPS))
    assert sum(x["slowest_rank"] == "1" for x in rows) >= 2 * STEPS - 3
    for rank in (0, 1):   # each rank's own steps.csv holds its own rows only
        own = (Path(out) / f"rank-{rank}" / "steps.csv").read_text().splitlines()
        assert "comm_wait_s" in own[0].split(",")
        kinds = [ln.split(",")[1] for ln in own[1:]]
        assert kinds.count("train") == 2 * STEPS


def test_validation_is_merged_across_ranks(input_straggler):
    out, r = input_straggler
    s = merged(out)
    per_rank = [rank_summary(out, rank) for rank in (0, 1)]
    # equal shards: the merged loss is the mean of the ranks', accuracy from summed counts
    for k, (x, v) in enumerate(s["curves"]["val_loss"]):
        assert v == pytest.approx(sum(p["curves"]["val_loss"][k][1] for p in per_rank) / 2,
                                  rel=1e-6)
    supports = [m["support"] for m in s["metrics"]]
    assert supports == [sum(p["metrics"][k]["support"] for p in per_rank)
                        for k in range(len(supports))]
    # the script's own output is there (the ranks' lines may interleave)
    printed = {(int(e), int(rk)): float(acc) for e, rk, acc in re.findall(
        r"epoch (\d+) rank (\d+) val_loss [\d.]+ acc ([\d.]+)", r.stdout)}
    assert len(printed) == 4
    acc0 = (printed[0, 0] + printed[0, 1]) / 2
    assert s["metrics"][0]["accuracy"] == pytest.approx(acc0, abs=0.002)


def test_report_merges_again_and_html_is_written(input_straggler):
    out, _ = input_straggler
    r = run_cli(["report", out, "--format", "json"])
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["distributed"]["straggler"]["rank"] == 1
    html = (Path(out) / "report.html").read_text()
    assert 'id="distributed"' in html and "chart-skew" in html
    t = run_cli(["report", out])
    assert t.returncode == 0 and "per rank" in t.stdout


def test_inside_the_users_torchrun_rank_0_merges_a_compute_straggler(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc-per-node", "2", "-m", "nnprof", "profile", "--out", str(out),
                        "--quiet", str(SCRIPT), "--straggler", "0", "--slow-forward", "0.04",
                        "--steps", "8", "--epochs", "1"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("done 8")
    d = merged(out)["distributed"]
    assert d["straggler"]["rank"] == 0 and d["straggler"]["cause"] == "compute"
    assert d["comm_wait"]["1"]["mean_s"] == pytest.approx(0.04, rel=0.35)
    assert r.stderr.count("nnprof: run written to") == 1   # one merged report, by rank 0


def test_a_crashed_rank_is_named_and_the_others_reports_kept(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["profile", "--nproc-per-node", "2", "--out", out, "--no-progress", "--quiet",
                 SCRIPT, "--crash-rank", "1", "--steps", "8"], timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]   # torchrun's code for a failed worker
    s = merged(out)
    assert 1 in s["distributed"]["failed_ranks"]
    assert any(n.startswith("rank 1 failed first") or n.startswith("rank 1 crashed")
               for n in s["notices"]), s["notices"]
    for rank in (0, 1):
        assert (out / f"rank-{rank}" / "summary.json").exists()
        assert (out / f"rank-{rank}" / "report.html").exists()
    assert rank_summary(out, 1)["status"] == "crashed"
    assert not wait_gone(out)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_every_rank_and_write_every_file(tmp_path, sig, code):
    out = tmp_path / "run"
    exe = Path(sys.executable).parent / "nnprof"
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]) + [
        "profile", "--nproc-per-node", "2", "--out", str(out), "--no-progress", "--quiet",
        str(SCRIPT), "--epochs", "1000", "--straggler", "1", "--delay", "0.02"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:   # both ranks are training
            done = [f for f in (out / "rank-0" / "steps.csv", out / "rank-1" / "steps.csv")
                    if f.exists() and len(f.read_text().splitlines()) > 5]
            if len(done) == 2:
                break
            time.sleep(0.3)
        else:
            pytest.fail("the ranks did not start training")
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, err[-2000:]
    assert not wait_gone(out), "a rank outlived the launch"
    for rank in (0, 1):
        s = rank_summary(out, rank)
        assert s["status"] == "interrupted" and s["steps"]["train"] > 3
    assert merged(out)["status"] == "interrupted"


def test_a_rank_killed_with_sigkill_is_still_merged_by_report(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "nnprof", "profile", "--out", str(out),
                          "--quiet", "--no-progress", str(SCRIPT), "--epochs", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        steps = out / "rank-1" / "steps.csv"
        while time.monotonic() < deadline and not (
                steps.exists() and len(steps.read_text().splitlines()) > 5):
            time.sleep(0.3)
        pid = json.loads((out / "rank-1" / "meta.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert not wait_gone(out)
    r = run_cli(["report", out, "--format", "json"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    ranks = s["distributed"]["ranks"]
    assert ranks["1"]["status"] == "incomplete" and ranks["1"]["steps"]["train"] > 3
    assert 1 in s["distributed"]["failed_ranks"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_on_localhost_are_merged(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).parent / "nnprof"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]
    procs = []
    for node in (0, 1):
        procs.append(subprocess.Popen(base + [
            "profile", "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
            "--rdzv-id", "two-nodes", "--out", str(tmp_path / f"node{node}"), "--quiet",
            "--no-progress", str(SCRIPT), "--straggler", "1", "--delay", str(DELAY),
            "--steps", "8", "--epochs", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    dirs = [sorted(x.name for x in (tmp_path / f"node{n}").glob("rank-*")) for n in (0, 1)]
    assert sorted(dirs) == [["rank-0"], ["rank-1"]]
    r = run_cli(["merge", tmp_path / "node0", tmp_path / "node1", "--out", tmp_path / "all",
                 "--quiet"])
    assert r.returncode == 0, r.stderr
    d = merged(tmp_path / "all")["distributed"]
    assert d["world_size"] == 2 and d["nodes"] == 2 and d["aligned_steps"] == 8
    assert d["straggler"]["rank"] == 1 and d["straggler"]["cause"] == "input"
    bad = run_cli(["merge", tmp_path / "node0", tmp_path / "node0" / "rank-0"])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not __import__("torch").cuda.is_available()
                    or __import__("torch").cuda.device_count() < 2,
                    reason="needs two CUDA devices (NCCL, one per rank)")
def test_nccl_ranks_on_two_gpus_are_merged(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["profile", "--nproc-per-node", "2", "--out", out, "--no-progress", "--quiet",
                 SCRIPT, "--backend", "nccl", "--straggler", "1", "--delay", DELAY,
                 "--steps", STEPS], timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    s = merged(out)
    d = s["distributed"]
    assert {v["steps"]["train"] for v in d["ranks"].values()} == {2 * STEPS}
    assert d["straggler"]["rank"] == 1 and d["straggler"]["cause"] == "input"
    assert s["gpu_phases"] is not None   # device-side phases from CUDA events
