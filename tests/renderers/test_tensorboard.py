"""The TensorBoard renderer: event files read back with tensorboard's own EventAccumulator."""
from __future__ import annotations

import datetime
import math
import os
import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SCRIPTS, read_summary, run_cli
from nnprof.renderers import get
from nnprof.renderers.tensorboard import (MAX_POINTS, TensorBoardRenderer, crc32c, crc32c_many,
                                          frame_records, masked)
from nnprof.run import STEP_COLUMNS, Run, write_json

PHASES = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")


def accumulator(folder):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                 reason="tensorboard is not installed")
    ea = ea_mod.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    ea.Reload()
    return ea


def scalars(ea, tag):
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def make_run(path: Path, n_train=30, eval_every=10, gpu=False) -> Run:
    """A run directory written by hand: train steps with an eval pass every few."""
    path.mkdir(parents=True, exist_ok=True)
    write_json(str(path / "meta.json"), {"schema_version": 1, "budget_s": 1.0,
                                         "started_at": "2026-01-02T03:04:05",
                                         "usable_cores": 2})
    rng = np.random.default_rng(1)
    rows, t, idx = [], 0.0, 0
    for i in range(n_train):
        ph = rng.random(7) * 0.01
        loss = "" if i == 4 else repr(float(2.0 / (i + 1)))  # one step without a loss
        g = ",".join("%.6f" % (v / 2) for v in ph) + ",1000" if gpu else ",,,,,,,"
        rows.append("%d,train,%d,%.6f,%.6f,%s,0.001,0,0,L0,%s,False,1,1,1,%s" % (
            idx, i, t, ph.sum(), ",".join("%.6f" % v for v in ph), loss, g))
        t += ph.sum()
        idx += 1
        if eval_every and (i + 1) % eval_every == 0:
            for _ in range(2):
                ph = rng.random(7) * 0.001
                rows.append("%d,eval,,%.6f,%.6f,%s,0,0,0,L1,%s,False,1,0,0,,,,,,,," % (
                    idx, t, ph.sum(), ",".join("%.6f" % v for v in ph), 0.5))
                t += ph.sum()
                idx += 1
    (path / "steps.csv").write_text(",".join(STEP_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return Run.load(str(path))


def summary_for(n_passes=3, every=10) -> dict:
    return {"curves": {"val_loss": [[every * (k + 1), 0.5] for k in range(n_passes)]},
            "metrics": [{"pass": k, "after_train_steps": every * (k + 1),
                         "accuracy": 0.5 + 0.1 * k, "precision_macro": 0.4, "recall_macro": 0.3,
                         "f1_macro": 0.2} for k in range(n_passes)]}


# -- encoding -------------------------------------------------------------------

def test_crc32c_known_vectors():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    data = [b"", b"a", b"123456789", bytes(range(256)) * 3, b"xyz"]
    assert crc32c_many(data).tolist() == [crc32c(d) for d in data]


def test_framing_matches_tensorboards_reader():
    tf = pytest.importorskip("tensorboard.compat.tensorflow_stub.pywrap_tensorflow")
    payloads = [b"one", b"", bytes(range(200)), b"four" * 33]
    out = frame_records(payloads)
    pos = 0
    for p in payloads:
        (n,) = struct.unpack("<Q", out[pos:pos + 8])
        assert n == len(p)
        assert struct.unpack("<I", out[pos + 8:pos + 12])[0] == tf.masked_crc32c(out[pos:pos + 8])
        assert out[pos + 12:pos + 12 + n] == p
        assert struct.unpack("<I", out[pos + 12 + n:pos + 16 + n])[0] == tf.masked_crc32c(p)
        assert masked(crc32c(p)) == tf.masked_crc32c(p)
        pos += 16 + n
    assert pos == len(out)


# -- what is written --------------------------------------------------------------

def test_scalars_read_back_match_steps_csv(tmp_path):
    run = make_run(tmp_path / "run", gpu=True)
    out = get("tensorboard").write(str(tmp_path / "run" / "tensorboard"), summary_for(), run)
    steps = run.steps
    train = steps[steps["kind"] == "train"]
    evals = steps[steps["kind"] == "eval"]

    ea = accumulator(Path(out) / "train")
    tags = set(ea.Tags()["scalars"])
    want = {"step/wall_s", "train/loss", "loader/fetch_s", "gpu/mem_peak_bytes"} | \
        {f"phase/{p}_s" for p in PHASES} | {f"gpu_phase/{p}_s" for p in PHASES}
    assert tags == want
    got = scalars(ea, "step/wall_s")
    assert [s for s, _ in got] == train["train_index"].astype(int).tolist()
    np.testing.assert_allclose([v for _, v in got], train["wall_s"], rtol=1e-6)
    for p in PHASES:
        np.testing.assert_allclose([v for _, v in scalars(ea, f"phase/{p}_s")],
                                   train[f"{p}_s"], rtol=1e-6, atol=1e-9)
    loss = train.dropna(subset=["loss"])
    assert [s for s, _ in scalars(ea, "train/loss")] == loss["train_index"].astype(int).tolist()
    assert 4 not in [s for s, _ in scalars(ea, "train/loss")]  # no loss, no point
    np.testing.assert_allclose([v for _, v in scalars(ea, "train/loss")], loss["loss"], rtol=1e-6)
    # wall time: started_at + start_s
    start = datetime.datetime.fromisoformat("2026-01-02T03:04:05").timestamp()
    second = ea.Scalars("step/wall_s")[1]
    assert math.isclose(second.wall_time, start + train["start_s"].iloc[1], abs_tol=1e-3)

    ev = accumulator(Path(out) / "eval")
    assert set(ev.Tags()["scalars"]) == {"eval_step/wall_s", "eval/loss"} | \
        {f"eval_phase/{p}_s" for p in PHASES}
    got = scalars(ev, "eval_step/wall_s")
    assert [s for s, _ in got] == list(range(len(evals)))
    np.testing.assert_allclose([v for _, v in got], evals["wall_s"], rtol=1e-6)

    va = accumulator(Path(out) / "validation")
    assert set(va.Tags()["scalars"]) == {"val/loss", "val/accuracy", "val/precision_macro",
                                         "val/recall_macro", "val/f1_macro"}
    assert scalars(va, "val/loss") == [(10, 0.5), (20, 0.5), (30, 0.5)]
    np.testing.assert_allclose([v for _, v in scalars(va, "val/accuracy")], [0.5, 0.6, 0.7],
                               rtol=1e-6)


def test_rewrite_replaces_files_and_keeps_the_trace(tmp_path):
    run = make_run(tmp_path / "run", eval_every=0)
    tb = tmp_path / "run" / "tensorboard"
    (tb / "trace").mkdir(parents=True)
    (tb / "trace" / "w.1.pt.trace.json").write_text("{}")
    (tb / "eval").mkdir()
    (tb / "eval" / "events.out.tfevents.1.old").write_bytes(b"")
    r = TensorBoardRenderer()
    r.write(str(tb), {}, run)
    r.write(str(tb), {}, run)
    assert len(os.listdir(tb / "train")) == 1
    assert os.listdir(tb / "eval") == []  # no eval steps now: the old file is gone
    assert not (tb / "validation").exists()
    assert (tb / "trace" / "w.1.pt.trace.json").read_text() == "{}"
    assert len(scalars(accumulator(tb / "train"), "step/wall_s")) == 30


def test_summary_only_gives_the_curves(tmp_path):
    s = dict(summary_for(1), curves={"train_loss": [[0, 2.0], [5, 1.0]], "val_loss": [[5, 1.5]]})
    TensorBoardRenderer().write(str(tmp_path / "tb"), s, None)
    assert scalars(accumulator(tmp_path / "tb" / "train"), "train/loss") == [(0, 2.0), (5, 1.0)]
    assert scalars(accumulator(tmp_path / "tb" / "validation"), "val/loss") == [(5, 1.5)]
    assert "tensorboard --logdir" in TensorBoardRenderer().render(s)


def test_long_runs_are_bucketed_above_max_points(tmp_path):
    run = make_run(tmp_path / "run", n_train=95, eval_every=0)
    TensorBoardRenderer(max_points=10).write(str(tmp_path / "tb"), {}, run)
    ea = accumulator(tmp_path / "tb" / "train")
    train = run.steps
    got = scalars(ea, "step/wall_s")
    assert [s for s, _ in got] == list(range(0, 95, 10))  # buckets of ceil(95/10) = 10
    np.testing.assert_allclose([v for _, v in got],
                               [train["wall_s"].iloc[i:i + 10].mean() for i in range(0, 95, 10)],
                               rtol=1e-6)
    np.testing.assert_allclose([v for _, v in scalars(ea, "step/wall_max_s")],
                               [train["wall_s"].iloc[i:i + 10].max() for i in range(0, 95, 10)],
                               rtol=1e-6)
    # a missing loss is left out of its bucket's mean
    np.testing.assert_allclose(scalars(ea, "train/loss")[0][1],
                               train["loss"].iloc[:10].mean(), rtol=1e-6)
    # at or below max_points nothing is bucketed
    TensorBoardRenderer(max_points=95).write(str(tmp_path / "tb2"), {}, run)
    ea2 = accumulator(tmp_path / "tb2" / "train")
    assert len(ea2.Scalars("step/wall_s")) == 95
    assert "step/wall_max_s" not in ea2.Tags()["scalars"]


class _FakeRun:
    def __init__(self, path, steps):
        self.path, self.steps = path, steps
        self.meta = {"started_at": "2026-01-02T03:04:05"}


def test_100k_steps_write_in_seconds(tmp_path):
    n = MAX_POINTS
    rng = np.random.default_rng(0)
    cols = {f"{p}_s": rng.random(n) * 0.01 for p in PHASES}
    df = pd.DataFrame({"index": np.arange(n), "kind": "train", "train_index": np.arange(n),
                       "wall_s": sum(cols.values()), **cols, "loss": rng.random(n)})
    df["start_s"] = df["wall_s"].cumsum() - df["wall_s"]
    t = time.perf_counter()
    TensorBoardRenderer().write(str(tmp_path / "tb"), {}, _FakeRun(str(tmp_path), df))
    took = time.perf_counter() - t
    assert took < 5.0, f"{n} steps took {took:.2f} s"
    # every record is there: walk the framing (CRCs are checked in the tests above)
    data = (tmp_path / "tb" / "train").joinpath(os.listdir(tmp_path / "tb" / "train")[0])
    buf, pos, records = data.read_bytes(), 0, 0
    while pos < len(buf):
        (length,) = struct.unpack_from("<Q", buf, pos)
        pos += 16 + length
        records += 1
    assert records == n + 1  # the file-version event and one event per step


@pytest.mark.slow
def test_profile_writes_tensorboard_folder(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", "--no-monitors",
                 SCRIPTS / "periodic_slow.py", "--steps", "12", "--every", "100",
                 "--eval-every", "6"])
    assert r.returncode == 0, r.stderr
    s = read_summary(out)
    assert not [n for n in s["notices"] if n.startswith("tensorboard")], s["notices"]
    ea = accumulator(out / "tensorboard" / "train")
    assert [st for st, _ in scalars(ea, "step/wall_s")] == list(range(12))
    assert len(scalars(accumulator(out / "tensorboard" / "eval"), "eval_step/wall_s")) == 4
    val = scalars(accumulator(out / "tensorboard" / "validation"), "val/loss")
    assert [st for st, _ in val] == [6, 12]
    assert [st for st, _ in scalars(accumulator(out / "tensorboard" / "validation"),
                                    "val/accuracy")] == [6, 12]
