"""GPU sampling through NVML (``pynvml``, from the ``nvidia-ml-py`` package).

Every ``1 / sample_hz`` seconds (default 10 Hz) a daemon thread ``nnprof-gpu``
appends to ``samples.csv`` (source ``gpu``), for each device NVML sees (NVML
numbers devices itself; it ignores ``CUDA_VISIBLE_DEVICES``):

* ``gpu<i>_util_percent``: share of time a kernel was running;
  ``gpu<i>_mem_util_percent``: share of time device memory was read or
  written. NVML averages both over its own window of 1/6 s to 1 s depending
  on the device, so samples faster than that repeat values, and a short idle
  gap between kernels can be invisible.
* ``gpu<i>_mem_used_bytes`` / ``gpu<i>_mem_total_bytes``: device-wide memory
  (all processes; PyTorch's caching allocator keeps what it freed).
* ``gpu<i>_process_mem_bytes``: this process's memory on the device, when NVML
  lists it (not inside a container with its own PID namespace, where NVML
  reports host PIDs).
* ``gpu<i>_power_w``, ``gpu<i>_sm_clock_mhz``.

Without pynvml, a driver or a device the monitor leaves one notice and
records nothing; a query a device does not support is skipped from then on.
"""
from __future__ import annotations

import time
from typing import Optional

from . import Monitor
from .samples import SamplingMonitor



class GpuMonitor(SamplingMonitor, Monitor):
    name = "gpu"
    label = "GPU monitor"
    default_enabled = True

    def __init__(self, run_dir: str, t0: int, options: Optional[dict] = None) -> None:
        super().__init__(run_dir, t0, options)
        self._init_sampling()
        self._nvml = None
        self.handles: list = []
        self._unsupported: set = set()   # (device, query) NVML does not support

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        try:
            import pynvml
        except Exception as exc:
            self.notice = f"GPU: pynvml not importable ({exc.__class__.__name__}): no GPU samples"
            return
        try:
            pynvml.nvmlInit()
        except Exception as exc:
            self.notice = f"GPU: NVML not available ({_reason(exc)}): no GPU samples"
            return
        self._nvml = pynvml
        try:
            count = int(pynvml.nvmlDeviceGetCount())
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            self.notice = f"GPU: NVML cannot list devices ({_reason(exc)}): no GPU samples"
            self._shutdown()
            return
        if not self.handles:
            self.notice = "GPU: NVML found no device: no GPU samples"
            self._shutdown()
            return
        self._begin_sampling()

    def _after_stop(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()  # reference-counted: a script's own NVML use goes on
            except Exception:
                pass
            self._nvml = None


    def _query(self, i: int, what: str, fn, *args):
        """``fn(handle, *args)``, or None when this device does not support it."""
        if (i, what) in self._unsupported:
            return None
        try:
            return fn(self.handles[i], *args)
        except Exception as exc:
            nvml = self._nvml
            not_supported = getattr(nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(exc, not_supported) or \
                    isinstance(exc, (AttributeError, NotImplementedError)):
                self._unsupported.add((i, what))
                return None
            raise

    def sample(self) -> dict:
        """Take one sample of every device, append it to ``samples.csv``, return it."""
        nvml = self._nvml
        t_s = (time.perf_counter_ns() - self.t0) / 1e9
        out: dict = {}
        for i in range(len(self.handles)):
            p = f"gpu{i}_"
            util = self._query(i, "util", nvml.nvmlDeviceGetUtilizationRates)
            if util is not None:
                out[p + "util_percent"] = int(util.gpu)
                out[p + "mem_util_percent"] = int(util.memory)
            mem = self._query(i, "mem", nvml.nvmlDeviceGetMemoryInfo)
            if mem is not None:
                out[p + "mem_used_bytes"] = int(mem.used)
                out[p + "mem_total_bytes"] = int(mem.total)
            power = self._query(i, "power", nvml.nvmlDeviceGetPowerUsage)
            if power is not None:
                out[p + "power_w"] = power / 1000.0  # NVML reports milliwatts
            clock = self._query(i, "clock", nvml.nvmlDeviceGetClockInfo,
                                getattr(nvml, "NVML_CLOCK_SM", 1))
            if clock is not None:
                out[p + "sm_clock_mhz"] = int(clock)
            procs = self._query(i, "procs", nvml.nvmlDeviceGetComputeRunningProcesses)
            if procs:
                mine = [getattr(q, "usedGpuMemory", None) for q in procs
                        if getattr(q, "pid", None) == self.pid]
                mine = [m for m in mine if isinstance(m, int)]
                if mine:
                    out[p + "process_mem_bytes"] = sum(mine)
        self._writer.add(t_s, "gpu", out)
        return out


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or exc.__class__.__name__
