"""nnprof compare: the statistics, and two real runs side by side through the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nnprof.analyses.compare import compare_runs, mann_whitney_p

from rundirs import synthetic_run


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for shift in (0.0, 0.2, 1.0):
        a = rng.normal(0, 1, 40).round(1)  # rounded: ties on purpose
        b = rng.normal(shift, 1, 35).round(1)
        ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic",
                                 use_continuity=True).pvalue
        assert mann_whitney_p(a, b) == pytest.approx(ref, rel=1e-6, abs=1e-12)
    assert mann_whitney_p([1, 2], [3, 4, 5, 6, 7]) is None


def test_small_or_noisy_differences_are_not_called(tmp_path):
    ra, sa = synthetic_run(tmp_path / "a", n_train=60, wall=0.0100)
    rb, sb = synthetic_run(tmp_path / "b", n_train=60, wall=0.0102)  # 2%: below the bar
    cmp = compare_runs(sa, sb, ra, rb)
    assert cmp["step"]["change"] == "same"
    assert cmp["changes"] == []
    assert cmp["verdict"].startswith("Step time unchanged")


def test_a_real_slowdown_is_called_with_its_phase(tmp_path):
    ra, sa = synthetic_run(tmp_path / "a", n_train=60, wall=0.010)
    rb, sb = synthetic_run(tmp_path / "b", n_train=60, wall=0.013)
    cmp = compare_runs(sa, sb, ra, rb)
    assert cmp["step"]["change"] == "slower"
    assert cmp["step"]["ratio"] == pytest.approx(1.3, rel=0.05)
    assert cmp["step"]["p_value"] < 1e-6
    assert cmp["changes"][0]["name"] == "step"
    assert cmp["changes"][1]["name"] == "forward"  # the largest share of the step
    assert "1.30x slower" in cmp["verdict"] and "forward" in cmp["verdict"]
    assert json.loads(json.dumps(cmp))  # JSON-able as is


@pytest.mark.slow
def test_compare_two_runs_through_the_cli(tmp_path, cli, scripts):
    runs = []
    for name, forward in (("fast", "0.002"), ("slow", "0.012")):
        out = tmp_path / name
        r = cli(["profile", "--out", out, "--no-progress", "--quiet", "--no-monitors",
                 scripts / "sleepy.py", "--steps", "25", "--forward", forward])
        assert r.returncode == 0, r.stderr
        runs.append(out)
    r = cli(["compare", *runs])
    assert r.returncode == 0, r.stderr
    assert "forward" in r.stdout and "slower" in r.stdout
    r = cli(["compare", *runs, "--format", "json"])
    cmp = json.loads(r.stdout)
    fwd = next(p for p in cmp["phases"] if p["name"] == "forward")
    assert fwd["change"] == "slower"
    assert fwd["delta_s"] == pytest.approx(0.010, abs=0.003)  # the injected 10 ms
    # forward and the step lead the list (in either order: other phases may move a little
    # too, a CPU that slept longer between steps runs the next kernels colder), far ahead
    assert sorted(c["name"] for c in cmp["changes"][:2]) == ["forward", "step"]
    assert all(abs(c["delta_s"]) < 0.002 for c in cmp["changes"][2:])
    assert "mostly forward" in cmp["verdict"]
    out = tmp_path / "cmp.html"
    r = cli(["compare", *runs, "--format", "html", "-o", out])
    assert r.returncode == 0 and out.read_text().count("<canvas") == 1


@pytest.mark.parametrize("bad", ["missing", "file", "empty", "garbage-meta"])
def test_bad_run_dirs_give_one_line_and_exit_2(tmp_path, cli, bad):
    good, _ = synthetic_run(tmp_path / "good")
    path = tmp_path / bad
    if bad == "file":
        path.write_text("not a dir")
    elif bad == "empty":
        path.mkdir()
    elif bad == "garbage-meta":
        path.mkdir()
        (path / "meta.json").write_bytes(b"\x00\xff{{")
    for args in (["compare", good.path, path], ["compare", path, good.path],
                 ["report", path, "--format", "html"]):
        r = cli(args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("nnprof: error:"), r.stderr
        assert "Traceback" not in r.stderr
