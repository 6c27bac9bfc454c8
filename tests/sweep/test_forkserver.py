"""Trials forked from the sweep's warm server against trials started fresh: the same
output, exit code, environment, folder, argv and flags, their own random states, and
nothing left running (tests/scripts/trial_probe.py prints what it sees)."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from conftest import SCRIPTS
from nnprof.sweep.forkserver import ForkServer
from nnprof.sweep.trials import TrialProcess

pytestmark = pytest.mark.skipif(ForkServer.usable() is not None, reason="forked trials need Linux")
PROBE = SCRIPTS / "trial_probe.py"


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PROBE_VAR="x")
    srv = ForkServer(env, str(tmp_path), str(tmp_path / "forkserver.log"))
    assert srv.wait_ready(), srv.problem
    yield srv, env
    srv.close()


def trial(tmp_path, name, env, server=None, *script_args):
    run_dir = tmp_path / name
    run_dir.mkdir()
    cmd = [sys.executable, "-m", "nnprof", "profile", "--quiet", "--no-progress", "--out",
           name, "--", str(PROBE), *script_args]
    return TrialProcess(cmd, str(run_dir), env, server)


def finish(proc, timeout=120.0) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the trial did not end"
        time.sleep(0.05)
    return proc.exit_code


def wait_for_output(proc, log, text, timeout=60.0) -> None:
    """Until the running trial's log shows ``text``."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"no {text!r} in {timeout} s"
        time.sleep(0.05)


def lines(tmp_path, name) -> list:
    text = (tmp_path / name / "output.log").read_text()
    return [ln.replace(f" {name}", " RUN").replace(f"'{name}'", "'RUN'") for ln in text.splitlines()
            if not ln.startswith("RANDOM")]


def randoms(tmp_path, name) -> str:
    text = (tmp_path / name / "output.log").read_text()
    return next(ln for ln in text.splitlines() if ln.startswith("RANDOM"))


def test_a_forked_trial_is_what_a_fresh_one_is(server, tmp_path):
    srv, env = server
    env = dict(env, CUDA_VISIBLE_DEVICES="1")  # a slot's GPU: set after the fork
    fresh = trial(tmp_path, "fresh", env, None, "a", "--b")
    assert not fresh.forked
    assert finish(fresh) == 3
    forked = trial(tmp_path, "forked", env, srv, "a", "--b")
    assert forked.forked and forked.pid != srv.proc.pid
    assert finish(forked) == 3
    got, want = lines(tmp_path, "forked"), lines(tmp_path, "fresh")
    assert got == want
    assert "env {'CUDA_VISIBLE_DEVICES': '1', 'OMP_NUM_THREADS': '1', 'PROBE_VAR': 'x'}" in got
    assert got[-1] == "atexit ran" and "late thread done" in got and "to stderr" in got
    assert f"argv ['{PROBE}', 'a', '--b']" in got
    assert (tmp_path / "forked" / "summary.json").exists()


def test_forked_trials_draw_their_own_random_states(server, tmp_path):
    srv, env = server
    runs = [trial(tmp_path, f"t{i}", env, srv) for i in range(2)]
    assert all(p.forked for p in runs) and [finish(p) for p in runs] == [3, 3]
    a, b = (randoms(tmp_path, f"t{i}").split()[1:] for i in range(2))
    assert all(x != y for x, y in zip(a, b)), (a, b)  # random, numpy, torch's seed, a draw
    assert lines(tmp_path, "t0") == lines(tmp_path, "t1")  # the seeded training is the same


def test_what_a_fork_cannot_give_starts_fresh(server, tmp_path):
    srv, env = server
    assert srv.compatible(dict(env, CUDA_VISIBLE_DEVICES="0"), str(tmp_path))
    assert not srv.compatible(dict(env, PYTHONWARNINGS="error"), str(tmp_path))
    assert not srv.compatible(dict(env, OMP_NUM_THREADS="2"), str(tmp_path))
    assert not srv.compatible(env, str(tmp_path / "elsewhere"))
    proc = trial(tmp_path, "warned", dict(env, PYTHONWARNINGS="ignore"), srv)
    assert not proc.forked and finish(proc) == 3
    assert "flags 0 1 1 0 ['ignore']" in lines(tmp_path, "warned")


def test_a_stopped_forked_trial_ends_as_a_fresh_one_does(server, tmp_path):
    srv, env = server
    codes = {}
    for name, s in (("fresh", None), ("forked", srv)):
        proc = trial(tmp_path, name, env, s, "--sleep")
        wait_for_output(proc, tmp_path / name / "output.log", "threads")
        codes[name] = proc.stop(grace_s=30)
        assert (tmp_path / name / "summary.json").exists()  # it wrote its run
    assert codes["forked"] == codes["fresh"] and codes["fresh"] != 0


def test_trials_end_with_their_server_and_the_server_with_close(server, tmp_path):
    srv, env = server
    proc = trial(tmp_path, "orphan", env, srv, "--sleep")
    assert proc.forked
    wait_for_output(proc, tmp_path / "orphan" / "output.log", "threads")
    srv.proc.kill()  # the server gone: its children get SIGTERM (the parent-death signal)
    assert finish(proc, timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while _alive(proc.pid):
        assert time.monotonic() < deadline, "the trial outlived its server"
        time.sleep(0.1)
    assert srv.spawn(["--version"], env, str(tmp_path), str(tmp_path / "v.log")) is None
    assert srv.problem == "the fork server has ended"


def test_close_ends_the_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    srv = ForkServer(dict(os.environ), str(tmp_path), str(tmp_path / "forkserver.log"))
    assert srv.wait_ready(), srv.problem
    srv.close()
    assert srv.proc.returncode == 0
    assert not (tmp_path / "forkserver.log").exists()  # it said nothing


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
