"""End to end: what the reports say, checked against known sleeps (the basis of the
statistics, the figures quoted in advice)."""
from __future__ import annotations

import json
import re

import pytest

from conftest import SCRIPTS, read_summary, run_cli

pytestmark = pytest.mark.slow

PHASES = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")
ENV = {"OMP_NUM_THREADS": "1"}


def profile(tmp_path, script, *args, name="run"):
    out = tmp_path / name
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", SCRIPTS / script, *args],
                env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, read_summary(out), r


def test_phase_rows_and_step_time_share_one_basis(tmp_path):
    """A first step 300 ms slower than the rest (compilation, start-up) is left out of
    every row alike: the forward mean is the steady forward, the phase means add up to
    the step mean, and the report says which steps the rows are over."""
    steps, first, forward = 10, 0.3, 0.005
    out, s, r = profile(tmp_path, "warmup_first.py", "--steps", steps, "--first", first,
                        "--forward", forward)
    assert r.stdout == f"steps {steps}\n"
    assert s["steps"]["train"] == steps
    fwd = s["phases"]["forward"]
    assert forward - 0.001 <= fwd["mean_s"] <= forward + 0.015, fwd
    assert fwd["total_s"] < first, fwd  # the slow first forward is in no row
    assert s["step_time"]["max_s"] < first, s["step_time"]
    mean_sum = sum(s["phases"][p]["mean_s"] for p in PHASES)
    assert mean_sum == pytest.approx(s["step_time"]["mean_s"], abs=1e-5)  # 1 us columns
    assert sum(s["phases"][p]["share"] for p in PHASES) == pytest.approx(1.0, abs=1e-3)
    assert s["bottleneck"]["evidence"]["mean_step_s"] == pytest.approx(
        s["step_time"]["mean_s"])
    # the budget still sees every step (the slow one included)
    assert s["budget"]["evidence"]["max_s"] >= first

    basis = s["basis"]
    assert (basis["over"], basis["steps"], basis["of"], basis["left_out"]) == \
        ("train", steps - 1, steps, 1)
    assert basis["text"] == "steady train steps: 9 of 10 (first 1 left out as warm-up)"

    # stated in every report: terminal, HTML and JSON
    text = run_cli(["report", out], env=ENV).stdout
    assert "over steady train steps: 9 of 10 (first 1 left out as warm-up)" in text
    html = (out / "report.html").read_text()
    assert "Over steady train steps: 9 of 10 (first 1 left out as warm-up)." in html
    js = json.loads(run_cli(["report", out, "--format", "json"], env=ENV).stdout)
    assert js["basis"] == basis


@pytest.mark.parametrize("workers", [0, 2], ids=["main", "workers-2"])
def test_transform_advice_quotes_the_member_own_figures(tmp_path, workers):
    """A Compose of Scale (8 ms per batch), SlowJitter (16 ms) and Center (about 0):
    the advice quotes the whole transform's figures as the transform's, and
    SlowJitter's own (two thirds of it) as SlowJitter's."""
    steps, fast, slow = 8, 0.008, 0.016
    out, s, r = profile(tmp_path, "loader_nested.py", "--steps", steps, "--batch-size", 2,
                        "--fast", fast, "--slow", slow, "--workers", workers)
    assert r.stdout == f"batches {steps}\n"
    advice = "\n".join(s["bottleneck"]["advice"])
    (ld,) = s["loader"]
    whole = re.search(r"transform takes (\d+)% of loading time \(([\d.]+) ms per batch\)",
                      advice)
    member = re.search(r"SlowJitter alone takes (\d+)% \(([\d.]+) ms per batch\)", advice)
    assert whole and member, advice
    # the whole: the transform's measured time per batch and share of loading
    parts = ld["fetch_s"] + ld["transform_s"] + ld["collate_s"]
    assert float(whole.group(2)) == pytest.approx(ld["transform_s"] * 1e3, abs=0.051)
    assert int(whole.group(1)) == pytest.approx(100 * ld["transform_s"] / parts, abs=1)
    # the member: its own sleep (workers on a busy machine overshoot), two thirds of
    # the whole, and its share of loading time in proportion
    member_s, whole_s = float(member.group(2)) / 1e3, float(whole.group(2)) / 1e3
    slack = 0.008 if workers else 0.0
    assert slow - 0.0005 <= member_s <= slow * 1.25 + slack, advice
    assert member_s / whole_s == pytest.approx(slow / (fast + slow), abs=0.1), advice
    assert int(member.group(1)) == pytest.approx(
        int(whole.group(1)) * member_s / whole_s, abs=1.5), advice
