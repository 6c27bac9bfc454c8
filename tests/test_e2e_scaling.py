"""``nnprof project`` end to end on a job with known behaviour (tests/scripts/scale_job.py:
70 ms of CPU work per batch made in the main process against 23 ms of model work,
28 MB of gradients): projections from real runs against real runs of the target, the
JSON contract, the summary's default projection, and bad input.

The tolerances (35% of the real step for workers; wider for ranks, which need the
machine's two cores at once) are for a small machine shared with other work; the
benchmark (benchmarks/scaling.py, docs/measured.md) gives the figures. A projection
must also beat "nothing changes" where that is far off."""
from __future__ import annotations

import json

import pytest

from conftest import SCRIPTS, read_summary, run_cli

pytestmark = pytest.mark.slow
SCRIPT = SCRIPTS / "scale_job.py"
ENV = {"OMP_NUM_THREADS": "1"}
TOL = 0.35
TOL_DOWN = 0.6  # from 2 ranks to 1 (see its test)
TOL_RANKS = 0.5  # from 1 process to 2 ranks (see its test)
JOB = ["--steps", "16"]


def profile(out, *job, ranks=1):
    extra = ["--nproc-per-node", ranks] if ranks > 1 else []
    r = run_cli(["profile", "--out", out, "--quiet", "--no-progress", *extra, SCRIPT, *JOB,
                 *job], env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return read_summary(out)


def project(run, *args):
    r = run_cli(["project", run, "--json", *args], env=ENV, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaling")
    out = {"k0": tmp / "k0", "k1": tmp / "k1", "r2": tmp / "r2"}
    s = {"k0": profile(out["k0"]), "k1": profile(out["k1"], "--workers", "1"),
         "r2": profile(out["r2"], ranks=2)}
    return out, s


def step(summary) -> float:
    return summary["step_time"]["mean_s"]


def by_target(result) -> dict:
    return {(p["workers"], p["ranks"]): p for p in result["projections"]}


def test_workers_projected_from_a_run_without_them(runs):
    out, s = runs
    p = by_target(project(out["k0"], "--workers", "0,1", "--ranks", "1"))
    real, naive = step(s["k1"]), step(s["k0"])
    err = p[(1, 1)]["step_s"] / real - 1
    assert abs(err) < TOL, (p[(1, 1)]["step_s"], real)
    assert abs(err) < abs(naive / real - 1)
    assert p[(1, 1)]["bound"] == "input" and p[(0, 1)]["bound"] == "input"
    assert p[(0, 1)]["step_s"] == pytest.approx(step(s["k0"]), rel=0.02)  # its own config


def test_two_ranks_projected_from_one_process_over_the_measured_link(runs):
    out, s = runs
    result = project(out["k0"], "--workers", "0", "--ranks", "2", "--link", "measure")
    p = by_target(result)[(0, 2)]
    link = p["communication"]["link"]
    assert link["name"].startswith("measured gloo") and link["busbw_gbps"] > 0
    assert p["parts"]["communication_s"] > 0 and p["complete"]
    # the model takes two whole cores for two ranks; a shared CI machine has been seen to
    # give two processes much less (a real 2-rank step of 179 ms against 120 ms on a quiet
    # machine, projected 115 ms): the projection must stay within a factor of the real
    # step, and within the usual tolerance or nearer than "nothing changes" (the
    # benchmark gives the figures: -7% from one process)
    real, naive = step(s["r2"]), step(s["k0"])
    err = p["step_s"] / real - 1
    assert -TOL_RANKS < err < 2 * TOL_RANKS, (p["step_s"], real)
    assert abs(err) < TOL or abs(err) < abs(naive / real - 1), (p["step_s"], real, naive)


def test_one_rank_projected_from_two_with_their_measured_wait(runs):
    out, s = runs
    result = project(out["r2"], "--workers", "0", "--ranks", "1,2")
    assert result["basis"]["ranks"] == 2 and result["basis"]["comm_wait_s"] > 0
    p = by_target(result)
    assert p[(0, 1)]["parts"]["communication_exposed_s"] == 0
    assert p[(0, 2)]["communication"]["link"]["name"] == "measured"
    # its wait taken out; the CPU gloo took inside the backward stays in it (a known
    # limit, docs/scaling.md): in one direction only, and by up to 36% in a short run
    # under a loaded suite (+8% in the benchmark's medians)
    assert p[(0, 1)]["step_s"] < step(s["r2"])
    err = p[(0, 1)]["step_s"] / step(s["k0"]) - 1
    assert -TOL < err < TOL_DOWN, (p[(0, 1)]["step_s"], step(s["k0"]))


def test_the_json_contract_and_the_summarys_default_projection(runs):
    out, s = runs
    result = project(out["k0"], "--ranks", "1,8", "--gpus-per-node", "8", "--link",
                     "nvlink4", "--batch-scale", "2")
    assert set(result) == {"basis", "projections", "assumptions", "notices"}
    for p in result["projections"]:
        assert {"workers", "ranks", "nodes", "step_s", "samples_per_s", "efficiency",
                "bound", "parts"} <= set(p)
        assert p["batch_per_rank"] == 64 and p["bound"] in (
            "input", "compute", "communication", "optimizer", "cores", "memory")
    assert any("as GPUs from a run measured on CPU" in n for n in result["notices"])
    assert any("nvlink4" in a for a in result["assumptions"])
    sc = s["k0"]["scaling"]       # what nnprof profile wrote
    assert [p["ranks"] for p in sc["projections"] if p["workers"] == 0] == [1, 2, 4, 8]
    assert sc["projections"][0]["step_s"] == pytest.approx(step(s["k0"]), rel=0.02)
    html = (out["k0"] / "report.html").read_text()
    assert 'id="scaling"' in html and "chart-scaling" in html


@pytest.mark.parametrize("args,says", [
    (["/no/such/run"], "not a run directory"),
    (["RUN", "--link", "warp-drive"], "unknown link"),
    (["RUN", "--workers", "-1"], "must be at least 0"),
    (["RUN", "--ranks", "2,x"], "not an integer"),
    (["RUN", "--nodes", "2", "--gpus-per-node", "1", "--ranks", "8"], "more than"),
])
def test_bad_input_is_one_line_and_exit_2(runs, args, says):
    out, _ = runs
    r = run_cli(["project", *[str(out["k0"]) if a == "RUN" else a for a in args]], env=ENV)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
