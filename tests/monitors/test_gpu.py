"""The GPU monitor: one notice without NVML; the expected metrics from a fake pynvml."""
import os
import sys
import threading
import time
import types
from collections import namedtuple

import pandas as pd
import pytest

from nnprof.monitors.gpu import GpuMonitor

Util = namedtuple("Util", "gpu memory")
Mem = namedtuple("Mem", "total free used")
Proc = namedtuple("Proc", "pid usedGpuMemory")


def fake_pynvml(devices=1, fail_init=None, no_power=False):
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    m.NVMLError = NVMLError
    m.NVMLError_NotSupported = NVMLError_NotSupported
    m.NVML_CLOCK_SM = 1
    m.calls = {"init": 0, "shutdown": 0}

    def init():
        if fail_init:
            raise NVMLError(fail_init)
        m.calls["init"] += 1

    def power(h):
        if no_power:
            raise NVMLError_NotSupported("Not Supported")
        return 250_500

    m.nvmlInit = init
    m.nvmlShutdown = lambda: m.calls.__setitem__("shutdown", m.calls["shutdown"] + 1)
    m.nvmlDeviceGetCount = lambda: devices
    m.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)
    m.nvmlDeviceGetUtilizationRates = lambda h: Util(40 + h[1], 20)
    m.nvmlDeviceGetMemoryInfo = lambda h: Mem(80 * 2**30, 70 * 2**30, 10 * 2**30)
    m.nvmlDeviceGetPowerUsage = power
    m.nvmlDeviceGetClockInfo = lambda h, clock: 1410 if clock == 1 else 0
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [
        Proc(os.getpid(), 3 * 2**30), Proc(1, 5 * 2**30)]
    return m


def _run(tmp_path, secs=0.3):
    mon = GpuMonitor(str(tmp_path), time.perf_counter_ns(), {"sample_hz": 50})
    mon.start()
    alive = any(t.name == "nnprof-gpu" for t in threading.enumerate())
    time.sleep(secs)
    mon.stop()
    return mon, alive


def test_without_nvml_one_notice_and_no_thread(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml",
                        fake_pynvml(fail_init="NVML Shared Library Not Found"))
    mon, alive = _run(tmp_path, 0.05)
    assert not alive
    assert mon.notice == "GPU: NVML not available (NVML Shared Library Not Found): no GPU samples"
    assert not (tmp_path / "samples.csv").exists()


def test_real_pynvml_on_this_machine_fails_soft(tmp_path):
    mon, alive = _run(tmp_path, 0.05)
    if alive:
        pytest.skip("this machine has NVML and a GPU")
    assert mon.notice and mon.notice.startswith("GPU:") and "\n" not in mon.notice


def test_no_pynvml_module(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    mon, alive = _run(tmp_path, 0.05)
    assert not alive and mon.notice.startswith("GPU: pynvml not importable")


def test_no_device(tmp_path, monkeypatch):
    fake = fake_pynvml(devices=0)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    mon, alive = _run(tmp_path, 0.05)
    assert not alive and mon.notice == "GPU: NVML found no device: no GPU samples"
    assert fake.calls["shutdown"] == fake.calls["init"] == 1


def test_fake_nvml_writes_the_expected_metrics(tmp_path, monkeypatch):
    fake = fake_pynvml(devices=2, no_power=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    mon, alive = _run(tmp_path)
    assert alive and mon.notice is None
    assert not any(t.name == "nnprof-gpu" for t in threading.enumerate())
    assert fake.calls == {"init": 1, "shutdown": 1}
    df = pd.read_csv(tmp_path / "samples.csv")
    assert set(df["source"]) == {"gpu"}
    last = df.groupby("metric")["value"].last()
    for i in (0, 1):
        assert last[f"gpu{i}_util_percent"] == 40 + i
        assert last[f"gpu{i}_mem_util_percent"] == 20
        assert last[f"gpu{i}_mem_used_bytes"] == 10 * 2**30
        assert last[f"gpu{i}_mem_total_bytes"] == 80 * 2**30
        assert last[f"gpu{i}_sm_clock_mhz"] == 1410
        assert last[f"gpu{i}_process_mem_bytes"] == 3 * 2**30  # this pid only
        assert f"gpu{i}_power_w" not in last  # not supported: skipped, not an error
    assert mon.errors == 0
    assert (df["metric"] == "gpu0_util_percent").sum() >= 3


def test_power_in_watts(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    _run(tmp_path, 0.1)
    df = pd.read_csv(tmp_path / "samples.csv")
    assert df[df["metric"] == "gpu0_power_w"]["value"].iloc[0] == pytest.approx(250.5)
