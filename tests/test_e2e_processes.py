"""Every process of a training job profiled, whatever launched it, and the job itself
unchanged: Lightning DDP (its own launcher running ``sys.argv`` again, the loader given
to ``fit`` or built in ``train_dataloader``), Lightning ``ddp_spawn``, ``mp.spawn`` DDP,
Hogwild ``mp.Process`` workers (fork and spawn), ``accelerate launch`` run under nnprof,
and a DataLoader rebuilt from its signature.

Each script runs under plain python and under ``nnprof profile``; the tests assert the
same exit code, the same printed lines per process (two processes share one stdout, so
their lines interleave differently from run to run), the same stderr apart from nnprof's
own lines, every training process profiled with exact steps per process and in total,
each recorded loss the one its process printed, and nothing left running.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from conftest import SCRIPTS, processes_naming, read_summary, run_cli, run_python

pytestmark = pytest.mark.slow
ENV = {"OMP_NUM_THREADS": "1"}
# gloo's teardown sometimes aborts a Lightning rank at exit, under plain python too (its
# std::thread still joinable); Lightning then reports the child's code
EXIT_RACE = re.compile(r"terminate called without an active exception|"
                       r"Child process with PID \d+ terminated with code")
LINE = re.compile(r"(rank|proc) (\d+) loss (\d+) (-?[0-9.e+-]+?)(?=rank |proc |\n|$)")


def raced_once(run):
    """``run()``, again once when gloo's exit race (see EXIT_RACE) killed it: that abort
    happens under plain python too, and says nothing of nnprof."""
    r = run()
    if r.returncode != 0 and EXIT_RACE.search(r.stderr):
        r = run()
    return r


class Job:
    def __init__(self, tmp: Path, script: str, args=(), launcher=None):
        path = SCRIPTS / script
        self.script = path
        target = [path, *args] if launcher is None else ["-m", *launcher, path, *args]
        self.plain = raced_once(lambda: run_python(target, env=ENV, timeout=300))
        self.out = tmp / "run"

        def profiled():
            shutil.rmtree(self.out, ignore_errors=True)
            return run_cli(["profile", "--out", self.out, "--no-progress", "--quiet",
                            *target], env=ENV, timeout=300)
        self.prof = raced_once(profiled)
        self.summary = read_summary(self.out) if (self.out / "summary.json").exists() else None

    def printed(self, stdout: str) -> dict:
        """{(kind, k): [loss, ...]} in each process's order."""
        out: dict = {}
        for m in LINE.finditer(stdout):
            out.setdefault((m.group(1), int(m.group(2))), []).append(
                (int(m.group(3)), float(m.group(4))))
        return {k: [v for _, v in sorted(x)] for k, x in out.items()}

    def runs(self, prefix: str) -> dict:
        return {int(p.name.split("-")[1]): p for p in self.out.glob(f"{prefix}-*")
                if p.is_dir()}

    def train_losses(self, folder: Path) -> list:
        with open(folder / "steps.csv") as fh:
            return [float(r["loss"]) for r in csv.DictReader(fh) if r["kind"] == "train"]


def assert_same_job(job: Job, deterministic: bool = True):
    """``deterministic``: the processes compute the same losses run after run (Hogwild
    does not: its workers update one model concurrently, so only the shape of the
    output is compared there)."""
    assert job.prof.returncode == job.plain.returncode, job.prof.stderr[-3000:]
    assert "Traceback" not in job.prof.stderr or "Traceback" in job.plain.stderr
    prof, plain = job.printed(job.prof.stdout), job.printed(job.plain.stdout)
    if deterministic:
        assert prof == plain
        # the same characters: processes' lines may interleave anywhere, even mid-line
        # (output written at exit in blocks)
        assert sorted(job.prof.stdout.replace("\n", "")) == \
            sorted(job.plain.stdout.replace("\n", ""))
    else:
        assert {k: len(v) for k, v in prof.items()} == {k: len(v) for k, v in plain.items()}
    ours = "\n".join(ln for ln in job.prof.stderr.splitlines() if not ln.startswith("nnprof: "))
    for line, n in Counter(job.plain.stderr.splitlines()).items():
        if line.strip() and not EXIT_RACE.search(line):
            assert ours.count(line) >= n, f"missing from stderr under nnprof: {line!r}"
    assert len(ours.strip()) <= len(job.plain.stderr.strip()) + 200, ours[-2000:]
    assert not processes_naming(job.script), "a process of the job outlived nnprof"


def assert_profiled(job: Job, prefix: str, per_process: dict, main_trains: bool):
    """Every training process has a run with its exact train steps and printed losses;
    the merged summary counts them all."""
    runs = job.runs(prefix)
    assert sorted(runs) == sorted(per_process), list(job.out.iterdir())
    printed = job.printed(job.prof.stdout)
    for k, folder in runs.items():
        losses = job.train_losses(folder)
        assert len(losses) == per_process[k], (k, len(losses))
    # processes are matched to their printed losses by value (proc-<k> is finish order)
    recorded = sorted(tuple(round(v, 5) for v in job.train_losses(f)) for f in runs.values())
    assert recorded == sorted(tuple(round(v, 5) for v in vs) for vs in printed.values())
    s = job.summary
    total = sum(per_process.values())
    if prefix == "rank":
        assert s["distributed"]["steps"]["train"] == total
        assert s["distributed"]["aligned_steps"] == min(per_process.values())
        # the ranks run the same work: nothing worth a warning (rank 0's own extra work,
        # Lightning's logging, can show as an info-level gap on a loaded machine)
        st = s["distributed"]["straggler"]
        assert st is None or st["severity"] == "info", st
    else:
        assert s["steps"]["train"] == total
    lines = json.loads("[" + ",".join((job.out / "processes.jsonl").read_text().split("\n")[:-1])
                       + "]")
    trained = [x for x in lines if x["trained"]]
    assert sorted(x["run"] for x in trained) == sorted(f"{prefix}-{k}" for k in per_process)
    main = [x for x in lines if x["kind"] == "main"]
    assert len(main) == 1 and main[0]["trained"] is main_trains
    assert s["processes"]["trained"] and (main_trains or s["processes"]["not_trained"])


@pytest.fixture(scope="module", params=["ddp", "ddp-hook", "ddp_spawn"])
def lightning(request, tmp_path_factory):
    pytest.importorskip("lightning")
    strategy, _, hook = request.param.partition("-")
    # 2 ms per item (8 ms a step): on tiny steps, a sub-millisecond difference between
    # two ranks sharing 2 cores would read as a straggler of 15% of the step
    args = ["--strategy", strategy, "--item-cost", "0.002"] + (["--hook"] if hook else [])
    return request.param, Job(tmp_path_factory.mktemp(request.param), "fw_lightning_ddp.py", args)


def test_lightning_ddp_every_rank_profiled_and_the_job_unchanged(lightning):
    mode, job = lightning
    assert job.plain.returncode == 0, job.plain.stderr[-2000:]
    assert_same_job(job)
    assert_profiled(job, "rank", {0: 16, 1: 16}, main_trains=mode != "ddp_spawn")


def test_mp_spawn_ddp(tmp_path):
    job = Job(tmp_path, "mp_spawn_ddp.py", ["--port", "29547"])
    assert_same_job(job)
    assert_profiled(job, "rank", {0: 12, 1: 12}, main_trains=False)
    ranks = job.summary["distributed"]["ranks"]
    assert {r: v["steps"]["train"] for r, v in ranks.items()} == {"0": 12, "1": 12}


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_hogwild_workers_each_profiled_and_updates_summed(tmp_path, method):
    job = Job(tmp_path, "hogwild.py", ["--start-method", method])
    assert_same_job(job, deterministic=False)
    assert_profiled(job, "proc", {0: 10, 1: 10}, main_trains=False)
    assert job.summary["processes"]["basis"] in ("proc-0", "proc-1")
    kinds = {x["kind"] for x in job.summary["processes"]["trained"]}
    assert kinds == {"fork" if method == "fork" else "spawn"}


def test_accelerate_launch_under_nnprof_profiles_its_ranks(tmp_path):
    pytest.importorskip("accelerate")
    job = Job(tmp_path, "fw_accelerate.py", ["--item-cost", "0"],
              launcher=["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                        "--num_machines", "1", "--mixed_precision", "no",
                        "--dynamo_backend", "no"])
    assert job.plain.returncode == 0, job.plain.stderr[-2000:]
    assert_same_job(job)
    # 8 training batches per epoch split over 2 ranks, 2 epochs
    runs = job.runs("rank")
    assert sorted(runs) == [0, 1]
    for folder in runs.values():
        assert len(job.train_losses(folder)) == 8
    assert job.summary["distributed"]["steps"]["train"] == 16
    launcher = [x for x in job.summary["processes"]["not_trained"] if x["kind"] == "main"]
    assert launcher and "accelerate.commands.launch" in " ".join(launcher[0]["command"])


def test_a_loader_rebuilt_from_its_signature_runs_as_under_python(tmp_path):
    job = Job(tmp_path, "loader_rebuild.py")
    assert job.plain.returncode == 0 and "batch_size 8" in job.plain.stdout
    assert job.prof.stdout == job.plain.stdout and job.prof.returncode == 0
    assert job.summary["steps"]["train"] == 5
    assert not (job.out / "processes.jsonl").exists()


def test_no_follow_profiles_the_main_process_only(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", "--no-follow",
                 SCRIPTS / "hogwild.py"], env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(out.glob("proc-*")) and not (out / "processes.jsonl").exists()


@pytest.mark.parametrize("isolated", [False, True], ids=["followed", "python -I"])
def test_the_scripts_own_subprocess(tmp_path, isolated):
    """A child run with plain python is followed (it trains: ``proc-0``, the main
    process that trained nothing a line); one run with ``python -I`` cannot be: the
    report names it, with the command that would profile it."""
    job = Job(tmp_path, "subprocess_train.py", ["--isolated"] if isolated else [])
    assert job.plain.returncode == 0, job.plain.stderr[-2000:]
    assert_same_job(job)
    if not isolated:
        assert_profiled(job, "proc", {0: 6}, main_trains=False)
        return
    assert not job.runs("proc") and job.summary["steps"]["train"] == 0
    (line,) = job.summary["processes"]["not_followed"]
    assert "-I" in line["command"] and line["hint"].startswith("nnprof profile ")
    assert "--child" in line["hint"]
    assert any("was not followed (isolated" in n for n in job.summary["notices"])
