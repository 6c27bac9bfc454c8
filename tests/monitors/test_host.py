"""The host monitor samples for real: a child process that burns CPU is seen."""
import multiprocessing as mp
import os
import threading
import time

import pandas as pd

from nnprof.monitors import start_monitors, stop_monitors
from nnprof.monitors.host import HostMonitor
from nnprof.run import Run


def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def _read(path):
    return pd.read_csv(os.path.join(path, "samples.csv"))


def test_host_monitor_sees_a_busy_child(tmp_path):
    mon = HostMonitor(str(tmp_path), time.perf_counter_ns(), {"sample_hz": 20})
    mon.start()
    try:
        assert any(t.name == "nnprof-host" for t in threading.enumerate())
        child = mp.get_context("fork").Process(target=_burn, args=(1.0,))
        child.start()
        child.join(10)
        time.sleep(0.15)
    finally:
        t0 = time.perf_counter()
        mon.stop()
        assert time.perf_counter() - t0 < 1.0, "stop() must be prompt"
    assert not any(t.name == "nnprof-host" for t in threading.enumerate())
    assert mon.notice is None
    df = _read(tmp_path)
    assert list(df.columns) == ["t_s", "source", "metric", "value"]
    assert set(df["source"]) == {"host"}
    metrics = set(df["metric"])
    assert {"cpu_percent", "process_cpu_percent", "process_rss_bytes", "workers",
            "workers_cpu_percent"} <= metrics
    mine = df[df["metric"] == f"worker_{child.pid}_cpu_percent"]["value"]
    assert len(mine) >= 3
    # a busy loop is ~100% of one core; generous for a loaded 2-core machine
    assert 50 <= mine.mean() <= 130
    assert df[df["metric"] == "workers"]["value"].max() >= 1
    assert df[df["metric"] == "process_rss_bytes"]["value"].min() > 10e6
    assert (df["t_s"].diff().dropna() >= 0).all()
    cpu = df[df["metric"] == "cpu_percent"]["value"]
    assert cpu.between(0, 100).all() and cpu.max() > 20


def test_children_are_listed_from_proc_as_psutil_lists_them():
    """The cheap listing (each thread's ``children`` file) finds a child and its own
    child, as psutil's walk of all of /proc does."""
    import subprocess
    import sys

    import psutil

    from nnprof.monitors.host import _child_pids
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(30)']); print(p.pid, flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        pids = _child_pids(os.getpid())
        if pids is None:
            import pytest
            pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
        assert {child.pid, grandchild} <= set(pids)
        theirs = {p.pid for p in psutil.Process().children(recursive=True)}
        # the same set, but for a process of another test that ended in between
        assert all(pid in theirs or not psutil.pid_exists(pid) for pid in pids)
        assert {child.pid, grandchild} <= theirs
    finally:
        for p in psutil.Process(child.pid).children(recursive=True):
            p.kill()
        child.kill()
        child.wait()
        child.stdout.close()


def test_host_and_gpu_share_one_file_and_stop_cleanly(tmp_path):
    mons = start_monitors(["host", "gpu"], str(tmp_path), time.perf_counter_ns(),
                          {"sample_hz": 50})
    time.sleep(0.7)  # past one flush interval
    assert os.path.getsize(tmp_path / "samples.csv") > len("t_s,source,metric,value\n")
    stop_monitors(mons)
    assert not [t for t in threading.enumerate() if t.name.startswith("nnprof")]
    with open(tmp_path / "samples.csv") as fh:
        lines = fh.read().splitlines()
    assert lines.count("t_s,source,metric,value") == 1
    assert all(len(line.split(",")) == 4 for line in lines)


def test_sampling_errors_never_reach_the_caller(tmp_path):
    mon = HostMonitor(str(tmp_path), time.perf_counter_ns(), {"sample_hz": 100})
    mon.start()

    def broken():
        raise RuntimeError("boom")

    mon.sample = broken
    time.sleep(0.1)
    mon.stop()
    assert mon.errors > 0
    assert mon.notice.startswith("host monitor:") and "boom" in mon.notice
    assert "\n" not in mon.notice


def test_run_samples_tolerates_a_torn_last_line(tmp_path):
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "samples.csv").write_text(
        "t_s,source,metric,value\n0.1000,host,cpu_percent,50\n0.2000,host,cpu_percent,60\n"
        "0.3000,host,cpu_perc")
    s = Run(str(tmp_path)).samples
    assert list(s["value"]) == [50, 60]
    assert Run(str(tmp_path / "missing")).samples.empty
