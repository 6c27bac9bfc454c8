"""Stragglers and skew across ranks, on synthetic per-rank steps."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnprof.analyses import ranks as rk


def rank_steps(n=20, data=0.002, forward=0.010, backward=0.008, comm=0.0, optimizer=0.001,
               seed=0):
    rng = np.random.default_rng(seed)
    jit = lambda v: v * rng.uniform(0.97, 1.03, n)  # noqa: E731
    df = pd.DataFrame({
        "kind": ["train"] * n, "train_index": np.arange(n, dtype=float),
        "data_s": jit(data), "prep_s": jit(0.0002), "forward_s": jit(forward),
        "loss_s": jit(0.0003), "backward_s": jit(backward) + comm,
        "optimizer_s": jit(optimizer), "other_s": jit(0.0002), "comm_wait_s": comm})
    df["wall_s"] = df[["data_s", "prep_s", "forward_s", "loss_s", "backward_s", "optimizer_s",
                       "other_s"]].sum(axis=1)
    return df


@pytest.mark.parametrize("cause,slow,extra", [
    ("input", {"data": 0.052}, 0.050),
    ("compute", {"forward": 0.040}, 0.030),
    ("optimizer", {"optimizer": 0.021}, 0.020),
])
def test_the_straggler_and_its_cause_are_named(cause, slow, extra):
    fast = rank_steps(comm=extra, seed=1)   # rank 0 waits in backward for rank 1
    slow_rank = rank_steps(**slow, seed=2)
    aligned = rk.align({0: fast, 1: slow_rank})
    st = rk.straggler(aligned, [0, 1])
    assert st["rank"] == 1 and st["cause"] == cause
    assert st["gap_s"] == pytest.approx(extra, rel=0.15)
    assert st["steps_as_slowest"] == st["steps_compared"] == 18  # 2 warm-up steps left out
    assert st["severity"] == ("critical" if st["gap_share"] >= rk.CRITICAL else "warn")
    assert any("rank 1" in a for a in st["advice"])


def test_equal_ranks_name_no_straggler_and_thresholds_hold():
    aligned = rk.align({0: rank_steps(seed=1), 1: rank_steps(seed=2), 2: rank_steps(seed=3)})
    assert rk.straggler(aligned, [0, 1, 2]) is None
    # a gap of 7% of the step: named, as information only
    base = rank_steps(seed=1)
    step = float(base["wall_s"].mean())
    slow = rank_steps(data=0.002 + 0.07 * step, seed=2)
    st = rk.straggler(rk.align({0: rank_steps(comm=0.07 * step, seed=3), 1: slow}), [0, 1])
    assert st is not None and st["severity"] == "info" and rk.MINOR <= st["gap_share"] < rk.WARN


def test_alignment_keeps_the_steps_every_rank_ran_and_per_step_names_the_slowest():
    a, b = rank_steps(n=10, seed=1), rank_steps(n=7, data=0.05, seed=2)
    aligned = rk.align({0: a, 1: b})
    assert list(aligned["train_index"]) == list(range(7))
    table = rk.per_step(aligned, [0, 1])
    assert (table["slowest_rank"] == 1).all()
    assert table["gap_s"].min() > 0.04 and (table["skew_s"] == table["gap_s"]).all()
    assert (table["wall_s"] >= aligned[["wall_0", "wall_1"]].max(axis=1) - 1e-12).all()


def test_own_work_leaves_the_communication_wait_out():
    s = rank_steps(n=3, comm=0.5)
    own, parts = rk.own_work(s)
    assert (own < 0.05).all() and (parts["compute"] < 0.03).all()


def test_one_rank_or_no_steps_name_no_straggler():
    assert rk.straggler(rk.align({0: rank_steps()}), [0]) is None
    assert rk.straggler(rk.align({}), []) is None


def noisy_steps(n, base, noise, seed, extra=0.0):
    """Steps of a small, noisy job: own work ``base`` +- ``noise`` (lognormal spikes)."""
    rng = np.random.default_rng(seed)
    fwd = base + extra + rng.lognormal(np.log(noise), 1.0, n) - noise
    df = pd.DataFrame({"kind": ["train"] * n, "train_index": np.arange(n, dtype=float),
                       "data_s": 0.0002, "prep_s": 0.0001, "forward_s": fwd, "loss_s": 0.0001,
                       "backward_s": 0.001, "optimizer_s": 0.0002, "other_s": 0.0001,
                       "comm_wait_s": 0.0})
    df["wall_s"] = df[["data_s", "prep_s", "forward_s", "loss_s", "backward_s", "optimizer_s",
                       "other_s"]].sum(axis=1)
    return df


@pytest.mark.parametrize("seed", range(40))
def test_a_balanced_noisy_job_names_no_straggler(seed):
    """2-6 ms steps with 0.3-2 ms spikes on either rank (what a shared 2-core machine
    gives): before the consistency rule, about half such jobs named one."""
    n = 94
    aligned = rk.align({0: noisy_steps(n, 0.003, 0.001, 2 * seed),
                        1: noisy_steps(n, 0.003, 0.001, 2 * seed + 1)})
    assert rk.straggler(aligned, [0, 1]) is None


def test_a_small_consistent_straggler_in_noise_is_still_named():
    aligned = rk.align({0: noisy_steps(94, 0.003, 0.0005, 1),
                        1: noisy_steps(94, 0.003, 0.0005, 2, extra=0.002)})
    st = rk.straggler(aligned, [0, 1])
    assert st is not None and st["rank"] == 1 and st["chance"] < rk.MAX_CHANCE
    assert st["steps_as_slowest"] >= rk.MIN_SLOWEST * st["steps_compared"]


def test_chance_of_slowest_is_the_binomial_tail():
    assert rk.chance_of_slowest(1, 1, 2) == pytest.approx(0.5)
    assert rk.chance_of_slowest(2, 2, 2) == pytest.approx(0.25)
    assert rk.chance_of_slowest(52, 92, 2) > 0.05   # 52 of 92: chance, not a straggler
    assert rk.chance_of_slowest(90, 92, 2) < 1e-20


def test_an_obvious_straggler_on_a_short_run_is_named():
    """6 steady steps: too few for the chance test (1/64 for 2 ranks), but a 40 ms gap
    against ~1 ms of noise is far past chance."""
    aligned = rk.align({0: rank_steps(n=8, comm=0.04, seed=1),
                        1: rank_steps(n=8, forward=0.05, seed=2)})
    st = rk.straggler(aligned, [0, 1])
    assert st is not None and st["rank"] == 1 and st["chance"] > rk.MAX_CHANCE


def test_a_large_but_uneven_gap_on_six_steps_is_named():
    """What a 60 ms input delay on one rank of a 2-node launch gave: 6 steady steps, gaps
    of 34-79 ms (t about 10), step-to-step noise 8.5 ms."""
    fast = rank_steps(n=8, comm=0.0, seed=1)
    slow = rank_steps(n=8, seed=2)
    slow["data_s"] = slow["data_s"] + np.array([0.049, 0.0, 0.061, 0.034, 0.072, 0.072,
                                                0.070, 0.079])
    st = rk.straggler(rk.align({0: fast, 1: slow}), [0, 1])
    assert st is not None and st["rank"] == 1 and st["cause"] == "input"
