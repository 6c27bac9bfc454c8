"""CUDA paths: device-side phase times from events, no per-step sync. Skip without a GPU."""
import json

import pandas as pd
import pytest
import torch

from conftest import read_summary, run_cli

pytestmark = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_async_forward_is_charged_to_forward_on_the_device(tmp_path, scripts):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", scripts / "cuda_async.py"])
    assert r.returncode == 0, r.stderr
    steps = pd.read_csv(out / "steps.csv")
    train = steps[steps["kind"] == "train"].iloc[2:]
    assert train["gpu_forward_s"].notna().all()
    # the host waits in 'other' (loss.item()); the device spends it in forward
    assert train["other_s"].mean() > train["forward_s"].mean()
    assert train["gpu_forward_s"].mean() > 0.5 * train["gpu_forward_s"].add(
        train["gpu_other_s"]).mean()
    # device phases cover the step: their sum is close to the wall time
    gpu_sum = train[[c for c in train.columns
                     if c.startswith("gpu_") and c.endswith("_s")]].sum(axis=1)
    assert (gpu_sum - train["wall_s"]).abs().median() < 0.2 * train["wall_s"].median()
    # losses were captured without a sync and match what the script printed
    printed = [float(line.split()[-1]) for line in r.stdout.splitlines()]
    assert steps["loss"].round(4).tolist() == pytest.approx(printed, abs=1e-3)
    s = read_summary(out)
    assert s["gpu_phases"] is not None
    assert s["bottleneck"]["evidence"]["source"] == "device"
    assert s["bottleneck"]["verdict"] == "compute-bound"


@needs_cuda
def test_sleepy_script_on_cpu_model_still_works_with_cuda_present(tmp_path, scripts):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", scripts / "sleepy.py",
                 "--steps", "4", "--forward", "0.01"])
    assert r.returncode == 0, r.stderr
    assert read_summary(out)["steps"]["train"] == 4


@needs_cuda
def test_peak_memory_column_is_filled_and_plausible(tmp_path, scripts):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", scripts / "cuda_async.py"])
    assert r.returncode == 0, r.stderr
    steps = pd.read_csv(out / "steps.csv")
    peak = steps.loc[steps["gpu_forward_s"].notna(), "gpu_mem_peak_bytes"]
    assert len(peak) and peak.notna().all()
    total = torch.cuda.get_device_properties(0).total_memory
    assert (peak > 0).all() and (peak <= total).all()
    assert peak.is_monotonic_increasing  # nnprof never resets the allocator's peak
    s = read_summary(out)
    mem = s["gpu_memory"]
    assert mem["peak_bytes"] == peak.max() and mem["total_bytes"] == total
    assert 0 < mem["mean_step_peak_bytes"] <= mem["peak_bytes"]
    p = json.loads((out / "probe.json").read_text())["precision"]
    assert p["device_capability"] == list(torch.cuda.get_device_capability())


@needs_cuda
def test_memory_trace_writes_a_snapshot_and_names_sites(tmp_path, scripts):
    import pickle
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--memory-trace",
                 scripts / "cuda_async.py"])
    assert r.returncode == 0, r.stderr
    snap = pickle.loads((out / "memory_snapshot.pickle").read_bytes())
    assert "segments" in snap and "device_traces" in snap
    s = json.loads((out / "summary.json").read_text())
    sites = s["memory"]["trace"]["top_sites"]
    assert sites and all("cuda_async.py" in t["site"] for t in sites[:1])
    steps = s["memory"]["cuda"]
    assert steps["allocated_max_bytes"] > 0 and steps["reserved_max_bytes"] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2,
                    reason="measuring NCCL's link needs 2 CUDA devices")
def test_the_link_between_gpus_is_measured_with_nccl():
    from nnprof.distributed.linkbench import measure
    link = measure()
    assert link["backend"] == "nccl" and link["ranks"] == torch.cuda.device_count()
    # any NVLink or PCIe link moves more than 1 GB/s of bus bandwidth
    assert link["busbw_gbps"] > 1.0 and link["latency_s"] < 0.01


@needs_cuda
def test_a_gpu_runs_default_projection_overlaps_nccl_with_the_backward(tmp_path, scripts):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", scripts / "cuda_async.py"])
    assert r.returncode == 0, r.stderr
    sc = read_summary(out)["scaling"]
    assert sc["basis"]["device"] == "cuda"
    assert any("pcie4" in a for a in sc["assumptions"])
    assert any("GPUs (NCCL" in a for a in sc["assumptions"])
    eight = [p for p in sc["projections"] if p["ranks"] == 8]
    assert eight and all(p["complete"] for p in eight)
