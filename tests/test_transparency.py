"""Transparency: on a fixed seed, a script profiled by nnprof computes exactly what it
computes under plain python: the same stdout byte for byte and the same saved weights
and optimizer state byte for byte, with loader workers (random augmentation drawn in
the workers, shuffling) and without.

``python rel_transparent.py`` and ``nnprof profile --quiet --no-progress --out ...
rel_transparent.py`` run side by side. The run must also have measured the script
(train steps, loader batches, evaluation metrics), so that a profiler that silently
did nothing could not pass.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, read_summary

SCRIPT = SCRIPTS / "rel_transparent.py"


def _nnprof():
    exe = Path(sys.executable).parent / "nnprof"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]


def _popen(argv):
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONWARNINGS", None)
    return subprocess.Popen([str(a) for a in argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def _wait(proc):
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 0], ids=["workers-2", "workers-0"])
def test_same_stdout_and_same_saved_bytes(tmp_path, workers):
    plain_dir, prof_dir = tmp_path / "plain", tmp_path / "profiled"
    plain_dir.mkdir()
    prof_dir.mkdir()
    out = tmp_path / "run"
    args = [SCRIPT, "--workers", workers, "--epochs", "2"]
    a = _popen([sys.executable, *args, "--save-dir", plain_dir])
    b = _popen(_nnprof() + ["profile", "--quiet", "--no-progress", "--out", out, *args,
                            "--save-dir", prof_dir])
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = _wait(a), _wait(b)
    assert rc_a == 0, err_a
    assert rc_b == 0, err_b
    assert b"epoch 1 loss" in out_a
    assert out_b == out_a
    for name in ("weights.pt", "optim.pt"):
        want, got = (plain_dir / name).read_bytes(), (prof_dir / name).read_bytes()
        assert got == want, f"{name} differs under nnprof"

    # the profiler did measure the run: 2 epochs of 12 batches, 2 validation passes
    s = read_summary(out)
    assert s["steps"]["train"] == 24
    assert s["steps"]["eval"] == 4
    loader = [ld for ld in s["loader"] if ld.get("num_workers") == workers]
    assert loader and loader[0]["batches_measured"] >= 24, s["loader"]
    passes = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(passes) == 2


# nnprof's own lines, printed after the script's output when --quiet is given
OWN_LINES = ("nnprof: run written to ", "nnprof: report ")


def _script_stderr(err: str) -> str:
    """stderr without nnprof's own closing lines (and only those)."""
    lines = err.splitlines(keepends=True)
    while lines and lines[-1].startswith(OWN_LINES):
        lines.pop()
    return "".join(lines)


@pytest.mark.slow
def test_same_stderr_with_warnings_shown_once(tmp_path):
    """A warning shown once per location (the default filter, a library's own
    "default" filter, a DeprecationWarning attributed to __main__) is shown once
    under nnprof too: the probes must not make Python forget what it has shown."""
    script = SCRIPTS / "warns.py"
    a = _popen([sys.executable, script, "--steps", "6"])
    b = _popen(_nnprof() + ["profile", "--quiet", "--no-progress", "--out", tmp_path / "run",
                            script, "--steps", "6"])
    (rc_a, out_a, err_a), (rc_b, out_b, err_b) = _wait(a), _wait(b)
    assert rc_a == 0 and rc_b == 0, err_a + err_b
    assert out_b == out_a == b"steps 6\n"
    for shown in ("UserWarning: slow path taken", "DeprecationWarning: old_api()",
                  "LibDeprecationWarning: lib_step"):
        assert err_a.count(shown) == 1, err_a
    assert "nnprof: run written to" in err_b
    assert _script_stderr(err_b) == err_a
    assert read_summary(tmp_path / "run")["steps"]["train"] == 6
