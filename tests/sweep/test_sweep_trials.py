"""Trial processes: their share of the machine, and stopping a whole process group."""
import os
import sys
import time

import psutil
import pytest

from nnprof.sweep.trials import TrialProcess, slot_env, threads_per_trial, visible_gpus


def test_slots_split_cores_and_gpus(monkeypatch):
    env = slot_env(0, 2, 8, ["3", "5"])
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert slot_env(1, 2, 8, ["3", "5"])["CUDA_VISIBLE_DEVICES"] == "5"
    assert slot_env(2, 3, 8, ["3", "5"])["CUDA_VISIBLE_DEVICES"] == "3"
    assert slot_env(0, 4, 2, [])["OMP_NUM_THREADS"] == "1"  # never 0
    # one trial at a time keeps torch's own thread count, as under plain python
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert "OMP_NUM_THREADS" not in slot_env(0, 1, 8, [])
    assert threads_per_trial(1, 8) is None and threads_per_trial(3, 8) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0, 2")
    assert visible_gpus() == ["0", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


CHILD = """
import subprocess, sys, time
p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(p.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("ignore_term", [False, True])
def test_stop_ends_the_whole_group(tmp_path, ignore_term):
    code = CHILD if not ignore_term else "import signal; signal.signal(signal.SIGTERM, " \
        "signal.SIG_IGN)\n" + CHILD
    proc = TrialProcess([sys.executable, "-c", code], str(tmp_path), dict(os.environ))
    log = tmp_path / "output.log"
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    assert proc.poll() is None
    t0 = time.monotonic()
    code = proc.stop(grace_s=1.0)
    assert code == (137 if ignore_term else 143)
    assert time.monotonic() - t0 < (5 if ignore_term else 3)
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or \
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_an_ended_trial_leaves_no_worker(tmp_path):
    code = CHILD.rsplit("time.sleep(60)", 1)[0] + "raise SystemExit(4)\n"
    proc = TrialProcess([sys.executable, "-c", code], str(tmp_path), dict(os.environ))
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.exit_code == 4, (tmp_path / "output.log").read_text()
    grandchild = int((tmp_path / "output.log").read_text().split()[0])
    time.sleep(0.2)
    assert not psutil.pid_exists(grandchild) or \
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
