"""End-to-end tests of the DataLoader side, through the real CLI in a subprocess.

Timings are injected with ``time.sleep`` in the scripts under ``tests/scripts``
and compared with generous tolerances (25% or 3 ms, whichever is larger).
"""
from __future__ import annotations

import csv
import os
import re

import pytest

from conftest import SCRIPTS, read_summary, run_cli, run_python

pytestmark = pytest.mark.slow

PHASES = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")


def profile(tmp_path, script, *args, name="run"):
    out = tmp_path / name
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", SCRIPTS / script, *args])
    assert r.returncode == 0, r.stdout + r.stderr
    return out, read_summary(out), r


# Worker processes and the training loop share the machine's few cores (and
# other test runs): their sleeps overshoot more. They never undershoot, so this
# widens only the upper side.
WORKER_SLACK = 0.003


def assert_near(measured, expected, what, rel=0.25, abs_tol=0.003, slack=0.0):
    """``measured`` within max(rel * expected, abs_tol) of ``expected``, plus
    ``slack`` above."""
    assert measured is not None, f"{what}: not measured"
    tol = max(rel * expected, abs_tol)
    assert expected - tol <= measured <= expected + tol + slack, \
        f"{what}: measured {measured * 1e3:.2f} ms, expected {expected * 1e3:.2f} ms " \
        f"(-{tol * 1e3:.2f}/+{(tol + slack) * 1e3:.2f})"


def read_steps(run_dir) -> list:
    with open(os.path.join(run_dir, "steps.csv")) as fh:
        return list(csv.DictReader(fh))


def assert_phases_sum_to_wall(rows) -> None:
    assert rows
    for row in rows:
        total = sum(float(row[f"{p}_s"]) for p in PHASES)
        # each column is rounded to 1 us when written
        assert abs(total - float(row["wall_s"])) <= 1e-5 * len(PHASES), row
        assert all(float(row[f"{p}_s"]) >= 0 for p in PHASES), row


def advice_text(summary) -> str:
    return "\n".join(summary["bottleneck"]["advice"])


# -- 1. attribution with main-process loading --------------------------------
SLEEPS = {"fetch": 0.020, "transform": 0.010, "collate": 0.005, "prep": 0.005,
          "forward": 0.010, "loss": 0.005, "backward": 0.010, "optimizer": 0.005,
          "other": 0.010}


def sleep_args(sleeps) -> list:
    out = []
    for k, v in sleeps.items():
        out += [f"--{k}", str(v)]
    return out


def test_main_process_attribution(tmp_path):
    out, s, r = profile(tmp_path, "sleepy.py", "--steps", "6", *sleep_args(SLEEPS))
    assert s["status"] == "completed"
    assert s["steps"] == {"train": 6, "eval": 0, "total": 6}
    ph = s["phases"]
    loading = SLEEPS["fetch"] + SLEEPS["transform"] + SLEEPS["collate"]
    assert_near(ph["data"]["mean_s"], loading, "data")
    for p in ("prep", "forward", "loss", "backward", "optimizer", "other"):
        assert_near(ph[p]["mean_s"], SLEEPS[p], p)
    for p in ("fetch", "transform", "collate"):
        assert ph[p]["where"] == "main"
        assert_near(ph[p]["mean_s"], SLEEPS[p], p)

    rows = read_steps(out)
    assert len(rows) == 6
    assert_phases_sum_to_wall(rows)
    for row in rows:
        assert row["kind"] == "train" and row["loader"] == "L0"
        # loader-side phases are slices of this step's data phase
        inside = sum(float(row[f"{p}_s"]) for p in ("fetch", "transform", "collate"))
        assert inside <= float(row["data_s"]) + 1e-5

    (loader,) = s["loader"]
    assert loader["where"] == "main" and loader["num_workers"] == 0
    assert loader["batches_measured"] == 6
    assert_near(loader["batch_s"], loading, "batch_s")
    assert loader["transform_by_name"][0]["name"] == "SlowTransform"


# -- 2. workers ----------------------------------------------------------------
WORKER_SLEEPS = {"fetch": 0.020, "transform": 0.010, "collate": 0.005, "forward": 0.010}


@pytest.mark.parametrize("start_method,persistent", [
    ("fork", True), ("fork", False), ("spawn", True)])
def test_worker_side_phases(tmp_path, start_method, persistent):
    args = ["--steps", "4", "--epochs", "2", "--workers", "2", "--start-method", start_method,
            *sleep_args(WORKER_SLEEPS)]
    if persistent:
        args.append("--persistent")
    out, s, r = profile(tmp_path, "sleepy.py", *args)
    assert s["status"] == "completed"
    assert s["steps"]["train"] == 8
    for p in ("fetch", "transform", "collate"):
        assert s["phases"][p]["where"] == "workers", p
        assert_near(s["phases"][p]["mean_s"], WORKER_SLEEPS[p], f"worker {p}",
                    slack=WORKER_SLACK)
    assert_near(s["phases"]["forward"]["mean_s"], WORKER_SLEEPS["forward"], "forward",
                slack=WORKER_SLACK)
    assert_phases_sum_to_wall(read_steps(out))

    (loader,) = s["loader"]
    assert loader["where"] == "workers"
    assert loader["num_workers"] == 2
    assert loader["start_method"] == start_method
    assert loader["persistent_workers"] is persistent
    assert loader["iter_calls"] == 2
    assert loader["batches_measured"] == 8
    assert loader["steps"]["train"] == 8
    batch_s = sum(WORKER_SLEEPS[p] for p in ("fetch", "transform", "collate"))
    assert_near(loader["batch_s"], batch_s, "batch_s", slack=WORKER_SLACK)
    assert loader["capacity_bps"] == pytest.approx(2 / loader["batch_s"])
    assert loader["demand_bps"] is not None and loader["demand_bps"] > 0
    # demand: one batch per (wall - data) of a train step, i.e. the other phases
    loop_s = sum(s["phases"][p]["mean_s"] for p in PHASES if p != "data")
    assert_near(1 / loader["demand_bps"], loop_s, "1 / demand", rel=0.05, abs_tol=0.0005)
    assert 1 / loader["demand_bps"] >= WORKER_SLEEPS["forward"]
    assert loader["transform_by_name"][0]["name"] == "SlowTransform"
    # worker-side rows come from the worker processes, not the main one
    pids = {int(n[:-4]) for n in os.listdir(out / "loader") if n.endswith(".csv")}
    expected_workers = 2 if persistent else 4
    assert len(pids) == expected_workers + 1


def test_input_bound_with_slow_fetch_and_few_workers(tmp_path):
    out, s, r = profile(tmp_path, "sleepy.py", "--steps", "8", "--workers", "1",
                        "--fetch", "0.04", "--forward", "0.002")
    assert s["bottleneck"]["verdict"] == "input-bound"
    (loader,) = s["loader"]
    assert loader["capacity_bps"] < loader["demand_bps"]
    assert_near(loader["capacity_bps"], 1 / 0.04, "capacity_bps", abs_tol=2.0)
    text = advice_text(s)
    assert re.search(r"\bnum_workers\b|\bworkers\b", text), text
    assert "L0" in text


@pytest.mark.parametrize("start_method,persistent,expected_calls", [
    ("fork", False, 4), ("spawn", True, 2)])
def test_user_worker_init_fn_still_called(tmp_path, start_method, persistent,
                                          expected_calls):
    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["--marker-dir", markers, "--workers", "2", "--start-method", start_method,
            "--epochs", "2"]
    if persistent:
        args.append("--persistent")
    out, s, r = profile(tmp_path, "loader_worker_init.py", *args)
    assert r.stdout.strip() == "done"
    names = sorted(os.listdir(markers))
    assert len(names) == expected_calls, names
    ids = sorted(int(n.rsplit("-", 1)[1]) for n in names)
    assert ids == sorted([0, 1] * (expected_calls // 2))
    # nnprof's own timing ran in the very processes the user's function ran in
    init_pids = {int(n.split("-")[1]) for n in names}
    batch_pids = {int(n[:-4]) for n in os.listdir(out / "loader") if n.endswith(".csv")}
    assert init_pids <= batch_pids
    assert s["loader"][0]["batches_measured"] == 8


# -- 3. nested datasets and a Compose-like transform ------------------------------
NESTED = {"fetch": 0.005, "fast": 0.002, "slow": 0.020}


@pytest.mark.parametrize("wrap,extra", [
    ("plain", []), ("subset", []), ("concat", []), ("concat", ["--shared"]),
    ("subset", ["--workers", "2"])])
def test_nested_dataset_transforms(tmp_path, wrap, extra):
    steps = 6
    out, s, r = profile(tmp_path, "loader_nested.py", "--wrap", wrap, "--steps", str(steps),
                        "--batch-size", "2", "--fetch", str(NESTED["fetch"]),
                        "--fast", str(NESTED["fast"]), "--slow", str(NESTED["slow"]), *extra)
    assert r.stdout.strip() == f"batches {steps}"
    assert s["steps"]["train"] == steps
    where = "workers" if "--workers" in extra else "main"
    slack = WORKER_SLACK if where == "workers" else 0.0
    transform = NESTED["fast"] + NESTED["slow"]
    assert s["phases"]["transform"]["where"] == where
    assert_near(s["phases"]["transform"]["mean_s"], transform, "transform", slack=slack)
    assert_near(s["phases"]["fetch"]["mean_s"], NESTED["fetch"], "fetch", slack=slack)

    (loader,) = s["loader"]
    assert loader["transforms"], "the nested transform was not found"
    assert all("Compose(Scale, SlowJitter, Center)" in t for t in loader["transforms"])
    assert_near(loader["transform_s"], transform, "loader transform_s", slack=slack)
    named = loader["transform_by_name"]
    assert named[0]["name"] == "SlowJitter", named
    assert {d["name"] for d in named} == {"SlowJitter", "Scale", "Center"}, named
    assert_near(named[0]["total_s"], NESTED["slow"] * steps, "SlowJitter total",
                abs_tol=0.005, slack=slack * steps)
    assert sum(d["share_of_loading"] for d in named) <= 1.0
    # many 1 ms sleeps overshoot more than a few long ones: order, not size
    assert named[1]["name"] == "Scale" and named[1]["total_s"] >= NESTED["fast"] * steps

    assert s["bottleneck"]["verdict"] == "input-bound"
    assert "SlowJitter" in advice_text(s)


# -- 4. IterableDataset -----------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_dataset(tmp_path, workers):
    item_sleep, bs, items = 0.005, 2, 12
    out, s, r = profile(tmp_path, "loader_iterable.py", "--items", str(items),
                        "--batch-size", str(bs), "--item-sleep", str(item_sleep),
                        "--forward", "0.005", "--workers", str(workers))
    assert r.stdout.strip() == f"batches {items // bs}"
    assert s["steps"] == {"train": items // bs, "eval": 0, "total": items // bs}
    rows = read_steps(out)
    assert_phases_sum_to_wall(rows)
    per_batch = bs * item_sleep
    slack = WORKER_SLACK if workers else 0.0
    (loader,) = s["loader"]
    assert loader["batches_measured"] == items // bs
    assert_near(loader["fetch_s"], per_batch, "fetch per batch", slack=slack)
    assert_near(s["phases"]["forward"]["mean_s"], 0.005, "forward")
    data = s["phases"]["data"]["mean_s"]
    if workers == 0:
        assert s["phases"]["fetch"]["where"] == "main"
        assert_near(data, per_batch, "data")
    else:
        assert s["phases"]["fetch"]["where"] == "workers"
        assert_near(s["phases"]["fetch"]["mean_s"], per_batch, "worker fetch", slack=slack)
        # two workers make batches while the loop runs: the wait is shorter
        assert 0 < data < per_batch


# -- 5. evaluation loaders and zip() ---------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_validation_loader_gives_eval_steps(tmp_path, workers):
    out, s, r = profile(tmp_path, "loader_eval_zip.py", "--mode", "eval", "--epochs", "2",
                        "--train-batches", "4", "--val-batches", "3", "--workers",
                        str(workers), "--fetch", "0.004", "--forward", "0.003")
    assert r.stdout.strip() == "train 8 val 6"
    assert s["steps"] == {"train": 8, "eval": 6, "total": 14}
    rows = read_steps(out)
    assert [row["kind"] for row in rows] == (["train"] * 4 + ["eval"] * 3) * 2
    assert [row["loader"] for row in rows] == (["L0"] * 4 + ["L1"] * 3) * 2
    assert all(row["n_backward"] == "0" for row in rows if row["kind"] == "eval")
    assert_phases_sum_to_wall(rows)
    by_id = {d["id"]: d for d in s["loader"]}
    assert by_id["L0"]["steps"] == {"train": 8, "eval": 0}
    assert by_id["L1"]["steps"] == {"train": 0, "eval": 6}
    assert s["phases_over"] == "train"


@pytest.mark.parametrize("workers", [0, 2])
def test_transform_names_are_kept_per_loader(tmp_path, workers):
    """A validation loader's transform is not reported as the training loader's."""
    out, s, r = profile(tmp_path, "loader_eval_zip.py", "--mode", "eval", "--epochs", "1",
                        "--train-batches", "4", "--val-batches", "4", "--workers",
                        str(workers), "--train-transform", "0.008", "--val-transform", "0.02")
    by_id = {d["id"]: d for d in s["loader"]}
    train, val = by_id["L0"], by_id["L1"]
    assert [d["name"] for d in train["transform_by_name"]] == ["TrainJitter"]
    assert [d["name"] for d in val["transform_by_name"]] == ["ValNormalize"]
    slack = 4 * WORKER_SLACK if workers else 0.0
    assert_near(train["transform_by_name"][0]["total_s"], 4 * 0.008, "TrainJitter total",
                slack=slack)
    assert_near(val["transform_by_name"][0]["total_s"], 4 * 0.02, "ValNormalize total",
                slack=slack)
    for d in (train, val):
        assert 0 < d["transform_by_name"][0]["share_of_loading"] <= 1.0, d


@pytest.mark.parametrize("workers", [0, 2])
def test_zip_of_two_loaders_is_one_step(tmp_path, workers):
    fetch = 0.010
    out, s, r = profile(tmp_path, "loader_eval_zip.py", "--mode", "zip", "--epochs", "2",
                        "--batch-size", "2", "--train-batches", "4", "--val-batches", "3",
                        "--workers",
                        str(workers), "--fetch", str(fetch), "--forward", "0.003")
    assert r.stdout.strip() == "train 6 val 0"
    assert s["steps"] == {"train": 6, "eval": 0, "total": 6}
    rows = read_steps(out)
    assert all(row["n_forward"] == "1" and row["n_backward"] == "1" for row in rows)
    assert_phases_sum_to_wall(rows)
    if workers == 0:
        # both batches of a step were loaded inside that step
        assert_near(s["phases"]["fetch"]["mean_s"], 2 * fetch, "fetch of two loaders")
        assert_near(s["phases"]["data"]["mean_s"], 2 * fetch, "data of two loaders")


# -- 6. transparency ---------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--start-method", "spawn", "--persistent"],
                                   ["--workers", "0"]])
def test_loader_transparency(tmp_path, extra):
    script = SCRIPTS / "loader_transparent.py"
    plain = run_python([script, *extra])
    assert plain.returncode == 0, plain.stderr
    out = tmp_path / "run"
    prof = run_cli(["profile", "--out", out, "--no-progress", "--quiet", script, *extra])
    assert prof.returncode == 0, prof.stderr
    assert "checksum" in plain.stdout
    assert prof.stdout == plain.stdout
    s = read_summary(out)
    assert s["steps"]["train"] == 12
    assert s["loader"][0]["batches_measured"] == 12
