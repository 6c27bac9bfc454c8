"""Memory growth end to end: a leaking script (each step's loss kept with its graph), its
fixed twin, and a script whose memory plateaus after its first epoch."""
from __future__ import annotations

import csv
import re

import pytest

from conftest import SCRIPTS, read_summary, run_cli

pytestmark = pytest.mark.slow
SCRIPT = SCRIPTS / "mem_growth.py"


def profile(tmp_path, mode, *extra):
    out = tmp_path / mode
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", *extra, SCRIPT,
                 "--mode", mode, "--report"], timeout=240)
    return out, r


def test_a_leak_is_found_with_its_rate_and_cause_and_fails_the_gate(tmp_path):
    out, r = profile(tmp_path, "leak", "--fail-on", "memory-growth")
    assert r.returncode == 3, r.stderr[-2000:]       # after writing everything
    truth = float(re.search(r"rss_per_step (\S+)", r.stdout).group(1))
    s = read_summary(out)
    g = s["memory"]["growth"]
    assert g["source"] == "host"
    assert g["bytes_per_step"] == pytest.approx(truth, rel=0.25)
    assert "loss tensors of earlier steps are still alive" in g["causes"][0]
    assert g["kept_losses"]["alive"] >= 2
    assert g["projection"]["target"] == "host memory"
    assert any(f["name"] == "memory-growth" for f in s["hardware"])
    b = s["memory"]["breakdown"]
    # the model: 256x2048 + 2048 + 2048x10 + 10 float32 parameters; Adam: 2 states each
    n = 256 * 2048 + 2048 + 2048 * 10 + 10
    assert b["parameters"] == b["gradients"] == 4 * n
    assert b["optimizer_state"] >= 8 * n
    with open(out / "steps.csv") as fh:
        rows = [row for row in csv.DictReader(fh) if row["kind"] == "train"]
    assert sum(1 for row in rows if row["rss_bytes"]) >= len(rows) - 5
    assert "memory grows by" in (out / "report.html").read_text()


@pytest.mark.parametrize("mode", ["fixed", "plateau"])
def test_no_finding_on_a_healthy_run(tmp_path, mode):
    out, r = profile(tmp_path, mode, "--fail-on", "memory-growth,memory")
    assert r.returncode == 0, r.stderr[-2000:]
    s = read_summary(out)
    assert s["memory"]["growth"] is None
    assert not any(f["name"].startswith("memory") for f in s["hardware"])
    assert s["memory"]["host"]["rss_peak_bytes"] > 0


def test_memory_trace_skips_cleanly_without_cuda(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("a CUDA machine records a snapshot: tests/test_cuda.py covers it")
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", "--memory-trace", SCRIPT,
                 "--mode", "fixed", "--epochs", "1", "--steps", "20"], timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    s = read_summary(out)
    assert any(n.startswith("--memory-trace: the script did not use CUDA") for n in s["notices"])
    assert s["memory"]["trace"] is None and not (out / "memory_snapshot.pickle").exists()


def test_top_sites_from_a_snapshot():
    from nnprof.capture.memtrace import top_sites
    frames = lambda f, ln: [{"filename": "/x/torch/nn/functional.py", "line": 1,  # noqa: E731
                             "name": "linear"}, {"filename": f, "line": ln, "name": "step"}]
    snap = {"device_traces": [[
        {"action": "alloc", "size": 100, "frames": frames("train.py", 10)},
        {"action": "alloc", "size": 300, "frames": frames("train.py", 20)},
        {"action": "free_requested", "size": 300, "frames": frames("train.py", 20)},
        {"action": "alloc", "size": 50, "frames": frames("train.py", 10)}]]}
    top = top_sites(snap)
    assert [(t["site"], t["bytes"], t["allocations"]) for t in top] == [
        ("train.py:20 in step", 300, 1), ("train.py:10 in step", 150, 2)]


def test_activation_bytes_are_measured_and_the_batch_read_from_the_model_input(tmp_path):
    """No DataLoader: the batch is the model input's leading dimension; the activations
    are what autograd saved, against the arithmetic of the layers; the report shows the
    breakdown with its basis and the projection."""
    out = tmp_path / "known"
    r = run_cli(["profile", "--out", out, "--no-progress", SCRIPTS / "mem_known.py",
                 "--batch", "96"], timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("done")
    b = read_summary(out)["memory"]["breakdown"]
    assert b["batch_size"] == 96 and "leading dimension" in b["batch_from"]
    arith = 96 * (256 + 1024 + 1024 + 10) * 4
    assert b["activations"] == pytest.approx(arith, rel=0.10)
    assert b["activations_basis"].startswith("measured")
    assert b["temporaries_basis"].startswith("estimated")
    assert b["nnprof_bytes"] is None or b["nnprof_bytes"] < 64 * 2**20
    f = read_summary(out)["memory"]["fits"]
    assert f["batch_size"] == 96 and f["max_batch_size"] > 96
    assert f["peak_at_2x_bytes"] - f["peak_at_1x_bytes"] == b["activations_and_temporaries"]
    html = (out / "report.html").read_text()
    assert "what fits (projection)" in html and "saved for the backward" in html
