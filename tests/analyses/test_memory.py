"""Memory growth, breakdown and fits on synthetic series."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnprof.analyses import memory as mem

MB = 2**20


def series(n=200, base=300 * MB, per_step=0.0, noise=0.2 * MB, seed=0, plateau_after=None,
           jump_at=None, jump=0.0):
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    grow = np.minimum(idx, plateau_after) if plateau_after is not None else idx
    v = base + per_step * grow + rng.normal(0, noise, n)
    if jump_at is not None:
        v[jump_at:] += jump
    return idx.tolist(), v.tolist()


def test_steady_growth_is_found_with_its_rate():
    x, y = series(per_step=1.4 * MB)
    g = mem.growth(x, y)
    assert g["bytes_per_step"] == pytest.approx(1.4 * MB, rel=0.02)
    assert g["r_squared"] > 0.99 and g["from_step"] == 50


@pytest.mark.parametrize("kw", [
    {"per_step": 0.0},                                      # flat
    {"per_step": 2 * MB, "plateau_after": 40},              # the first epoch fills a cache
    {"per_step": 0.0, "jump_at": 120, "jump": 200 * MB},    # one jump, then flat
    {"per_step": 0.01 * MB, "noise": 3 * MB},               # noise around a small drift
])
def test_no_false_alarm(kw):
    x, y = series(**kw)
    assert mem.growth(x, y) is None


def test_too_few_steps_say_nothing():
    x, y = series(n=20, per_step=5 * MB)
    assert mem.growth(x, y) is None


def steps_frame(rss, alloc=None, start=0.0):
    n = len(rss)
    return pd.DataFrame({"kind": ["train"] * n, "train_index": np.arange(n, dtype=float),
                         "start_s": start + np.arange(n) * 0.01, "rss_bytes": rss,
                         "gpu_mem_allocated_bytes": alloc if alloc is not None else [np.nan] * n,
                         "gpu_mem_reserved_bytes": alloc if alloc is not None else [np.nan] * n,
                         "gpu_mem_peak_bytes": alloc if alloc is not None else [np.nan] * n})


def samples_frame(values):
    return pd.DataFrame({"t_s": np.arange(len(values)) * 0.1 - 0.05, "source": "host",
                         "metric": "process_rss_bytes", "value": values})


def test_summary_projection_causes_and_breakdown_on_the_host():
    _, y = series(per_step=1 * MB)
    probe = {"memory": {"parameters": 4 * MB, "gradients": 4 * MB, "optimizer_state": 8 * MB},
             "kept_losses": {"alive": 4, "watched": 4}}
    meta = {"host_memory_bytes": 16 * 2**30, "host_available_bytes": 8 * 2**30}
    out = mem.memory_summary(steps_frame(y), meta, probe, samples_frame([250 * MB] + y),
                             batch_size=64)
    g = out["growth"]
    assert g["source"] == "host" and g["causes"][0] == mem.CAUSE_KEPT
    proj = g["projection"]
    assert proj["target"] == "host memory"
    expected = g["to_step"] + (16 * 2**30 - g["last_bytes"]) / g["bytes_per_step"]
    assert proj["reaches_at_step"] == pytest.approx(expected, abs=1)
    b = out["breakdown"]
    assert b["rss_before_train_bytes"] == 250 * MB and b["basis"] == "host resident memory"
    assert b["activations_and_temporaries"] == pytest.approx(
        max(y[:mem.FIRST_STEPS]) - 250 * MB - 12 * MB, abs=1)
    f = out["fits"]
    act = b["activations_and_temporaries"]
    # anchored on the measured peak: what does not scale is the peak less what does
    assert b["peak_bytes"] == out["host"]["rss_peak_bytes"]
    base = b["peak_bytes"] - act
    assert f["peak_at_2x_bytes"] == pytest.approx(base + 2 * act, abs=1)
    assert f["max_batch_size"] == int(64 * (0.9 * 8 * 2**30 - base) / act)


def test_measured_activations_scale_the_projection_and_nnprof_is_left_out():
    _, y = series(per_step=0.0)
    probe = {"memory": {"parameters": 40 * MB, "gradients": 40 * MB, "optimizer_state": 80 * MB},
             "activations": {"saved_bytes": 30 * MB, "largest_bytes": 8 * MB,
                             "near_loss_bytes": 5 * MB,
                             "batch_size": 128, "batch_from": "leading dimension"},
             "process": {"peak_rss_bytes": 900 * MB, "nnprof_bytes": 20 * MB}}
    meta = {"host_available_bytes": 8 * 2**30}
    out = mem.memory_summary(steps_frame(y), meta, probe, samples_frame(y))
    b = out["breakdown"]
    assert b["activations"] == 30 * MB and b["activations_basis"] == mem.BASIS_SAVED
    assert b["temporaries"] == 10 * MB and b["temporaries_basis"] == mem.BASIS_TEMP_HOST
    assert b["batch_size"] == 128 and b["per_sample_activation_bytes"] == 30 * MB / 128
    assert b["peak_bytes"] == 880 * MB and b["nnprof_bytes"] == 20 * MB
    assert b["other_bytes"] == 880 * MB - 160 * MB - 40 * MB
    assert sum(b["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    f = out["fits"]
    assert f["peak_at_1x_bytes"] == 880 * MB
    assert f["peak_at_2x_bytes"] == 880 * MB + 40 * MB
    assert f["peak_at_4x_bytes"] == 880 * MB + 3 * 40 * MB
    assert f["max_batch_size"] == int(128 * (0.9 * 8 * 2**30 - 840 * MB) / (40 * MB))
    assert "36.9" not in mem.breakdown_text(b) and "per sample x batch 128" in \
        mem.breakdown_text(b)
    assert f"at 2x the batch ~{920 * MB / 1e6:.1f} MB" in mem.fits_text(f)


def test_cuda_series_comes_first_and_fits_the_device():
    _, alloc = series(per_step=2 * MB, base=1e9, noise=0.1 * MB)
    _, rss = series(per_step=0.0)
    probe = {"memory": {"parameters": 100 * MB, "gradients": 100 * MB,
                        "optimizer_state": 200 * MB}}
    meta = {"gpu_total_memory_bytes": 80e9}
    out = mem.memory_summary(steps_frame(rss, alloc), meta, probe, None, batch_size=32)
    assert out["growth"]["source"] == "cuda" and out["growth"]["causes"] == mem.CAUSES_DEVICE
    assert out["breakdown"]["basis"] == "cuda peak allocated"
    assert out["fits"]["against"] == "device memory"
    assert mem.near_full(out) is None
    out["cuda"]["reserved_max_bytes"] = 75e9
    assert mem.near_full(out)["name"] == "memory-full"


def test_a_healthy_run_has_no_growth_and_no_finding():
    _, y = series(per_step=0.0)
    out = mem.memory_summary(steps_frame(y), {}, {}, samples_frame(y))
    assert out["growth"] is None and out["breakdown"] is None and out["fits"] is None
    assert out["host"]["rss_peak_bytes"] == int(max(y))
