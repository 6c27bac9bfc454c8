"""Runs of one script under plain python and under ``nnprof profile``, and the
assertions the framework end-to-end tests make on them (``test_e2e_frameworks.py``)."""
from __future__ import annotations

import csv
import difflib
import re
import shutil
import statistics
from pathlib import Path

import pytest

from conftest import SCRIPTS, read_summary, run_cli, run_python

# One intra-op thread: on a small shared machine a tiny op can otherwise wait for its
# second thread, and the sleeps should be the only sizeable costs.
ENV = {"OMP_NUM_THREADS": "1"}
# 10% of the truth, plus 4 ms per step: on a small machine shared with other work a
# sleep overshoots by up to about a millisecond, and a batch holds four of them
REL, ABS = 0.10, 0.004


# PyTorch's own race, under plain python as under nnprof (about one run in eight on a
# loaded 2-core machine): a DataLoader worker told to stop while it is still fetching
# (a ``break`` out of a pass) aborts in its C++ teardown, and the iterator's ``__del__``
# prints the worker's death. A pair of runs where either hit it is run again.
UPSTREAM_SHUTDOWN_RACE = ("terminate called without an active exception",
                          "is killed by signal: Aborted")
TRIES = 3


def upstream_race(*results) -> bool:
    return any(all(s in r.stderr for s in UPSTREAM_SHUTDOWN_RACE) for r in results)


class Runs:
    """One script run under plain python and under ``nnprof profile``."""

    def __init__(self, tmp: Path, script: str, args=(), options=()):
        path = SCRIPTS / script
        self.out = tmp / "run"
        for _ in range(TRIES):
            if self.out.exists():
                shutil.rmtree(self.out)
            self.plain = run_python([path, *args], env=ENV, timeout=300)
            self.prof = run_cli(["profile", "--out", self.out, "--no-progress", "--quiet",
                                 *options, path, *args], env=ENV, timeout=300)
            if not upstream_race(self.plain, self.prof):
                break
        self.summary = read_summary(self.out) if (self.out / "summary.json").exists() else None
        steps = self.out / "steps.csv"
        self.steps = list(csv.DictReader(steps.open())) if steps.exists() else []

    def ok(self):
        assert self.plain.returncode == 0, self.plain.stderr[-3000:]
        assert self.prof.returncode == 0, self.prof.stderr[-3000:]
        assert self.summary is not None, "no summary.json"

    def kind(self, kind):
        return [r for r in self.steps if r["kind"] == kind]


def own_lines_removed(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not line.startswith("nnprof: "))


def printed_losses(stdout: str) -> list:
    return [float(m.group(1)) for m in re.finditer(r"^loss \d+ (\S+)$", stdout, re.M)]


def within(measured: float, expected: float, what: str, n: int = 1):
    """``measured`` within 10% of ``expected`` plus ``ABS`` per step summed (``n``)."""
    tol = REL * expected + ABS * n
    assert abs(measured - expected) <= tol, \
        f"{what}: measured {measured * 1e3:.2f} ms, expected {expected * 1e3:.2f} ms " \
        f"(+-{tol * 1e3:.2f} ms)"


def strings(value):
    """Every string value (not key) in a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def col(rows, name) -> list:
    return [float(r[name]) for r in rows]


def assert_transparent(runs: Runs):
    assert runs.prof.returncode == runs.plain.returncode
    assert runs.prof.stdout == runs.plain.stdout
    prof_err = own_lines_removed(runs.prof.stderr)
    assert prof_err == runs.plain.stderr, "stderr differs (- plain, + nnprof):\n" + "".join(
        difflib.unified_diff(runs.plain.stderr.splitlines(keepends=True),
                             prof_err.splitlines(keepends=True)))[-3000:]


def assert_counts(runs: Runs, train: int, eval: int):
    runs.ok()
    got = runs.summary["steps"]
    assert (got["train"], got["eval"]) == (train, eval), \
        f"summary steps {got}, want {train} train + {eval} eval"
    kinds = [r["kind"] for r in runs.steps]
    assert (kinds.count("train"), kinds.count("eval")) == (train, eval), kinds


def assert_train_losses(runs: Runs, n: int):
    runs.ok()
    printed = printed_losses(runs.plain.stdout)
    assert len(printed) == n
    recorded = [float(r["loss"]) if r["loss"] else None for r in runs.kind("train")]
    assert recorded == pytest.approx(printed, rel=1e-6), \
        f"recorded {recorded}\n printed {printed}"


def assert_verdict(runs: Runs, verdict: str):
    runs.ok()
    got = runs.summary["bottleneck"]
    assert got["verdict"] == verdict, got


def assert_data_wait(rows, per_batch: float, what: str):
    """Each step waited for one batch made in the main process: the steps' total wait
    is one batch's making per step, and so is the median step's."""
    assert rows, f"{what}: no steps"
    data = col(rows, "data_s")
    within(sum(data), per_batch * len(rows), f"{what}: total data wait", n=len(rows))
    within(statistics.median(data), per_batch, f"{what}: median data wait")


def assert_loaders_built_in(runs: Runs, script: str):
    """"Built at" is the user's own line (the first frame outside torch, nnprof and
    installed packages), also for loaders a framework builds or wraps."""
    runs.ok()
    sites = [ld["site"] for ld in runs.summary["loader"]]
    assert sites and all(site.startswith(script + ":") for site in sites), sites
