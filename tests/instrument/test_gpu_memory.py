"""Peak GPU memory per step, with fakes for CUDA (this machine may have no GPU)."""
import pytest
import torch

import nnprof.instrument as inst
from nnprof.instrument import Instrumentation
from nnprof.instrument.cuda import EventPool, mem_peak_reader
from nnprof.run import STEP_COLUMNS
from nnprof.session import Profiler


class ReadyEvent:
    def query(self):
        return True

    def elapsed_time(self, other):
        return 1.0


class FakeWriter:
    def __init__(self):
        self.lines = []

    def write_rows(self, lines):
        self.lines.extend(lines)


def _no_reset(*a, **k):
    raise AssertionError("nnprof must not reset the script's peak memory statistics")


def fake_cuda(monkeypatch, initialised=True, peaks=(100, 250, 250)):
    monkeypatch.setattr(inst, "_cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", _no_reset)
    monkeypatch.setattr(inst, "cuda_pool", lambda: EventPool(ReadyEvent, lambda ev: None))
    calls = []
    it = iter(peaks)

    def reader():
        calls.append(1)
        return next(it)
    monkeypatch.setattr(inst, "mem_peak_reader", lambda: reader)
    return calls


def run_steps(instr, n):
    clock = instr.clock
    for _ in range(n):
        clock.loader_next("L0")
        clock.loader_got()
        clock.forward_enter(True)
        clock.forward_exit()
        clock.backward_enter()
        clock.pop()
    clock.loader_exhausted()
    instr.finish()


def test_peak_is_read_at_step_close_when_steps_have_a_gpu_timeline(monkeypatch):
    calls = fake_cuda(monkeypatch)
    out = []
    instr = Instrumentation(out.append, None, "", 0)
    run_steps(instr, 3)
    assert [r.gpu_mem_peak for r in out] == [100, 250, 250]
    assert all(r.gpu_phases is not None for r in out)
    assert len(calls) == 3


def test_no_peak_read_when_cuda_is_not_initialised(monkeypatch):
    calls = fake_cuda(monkeypatch, initialised=False)
    out = []
    instr = Instrumentation(out.append, None, "", 0)
    run_steps(instr, 2)
    assert [r.gpu_mem_peak for r in out] == [None, None]
    assert calls == []


def test_no_reader_on_a_cpu_machine(monkeypatch):
    monkeypatch.setattr(inst, "_cuda_available", lambda: False)
    instr = Instrumentation(lambda r: None, None, "", 0)
    assert instr.clock.mem_peak is None and instr.clock.gpu_factory is None


def test_reader_uses_allocator_stats_without_reset_and_fails_soft(monkeypatch):
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", _no_reset)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch._C, "_cuda_memoryStats",
                        lambda d: {"allocated_bytes": {"all": {"peak": 1234}}}, raising=False)
    assert mem_peak_reader()() == 1234
    monkeypatch.delattr(torch._C, "_cuda_memoryStats", raising=False)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 99)
    assert mem_peak_reader()() == 99

    def boom(*a):
        raise RuntimeError("no device")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", boom)
    read = mem_peak_reader()
    assert read() is None
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 5)
    assert read() is None  # stays off after a failure


def test_merged_steps_keep_the_higher_peak():
    from nnprof.instrument.steps import StepRecord
    a, b = StepRecord(0), StepRecord(1)
    a.gpu_mem_peak, b.gpu_mem_peak = 300, 200
    a.absorb(b)
    assert a.gpu_mem_peak == 300
    c = StepRecord(2)
    c.gpu_mem_peak = 400
    a.absorb(c)
    assert a.gpu_mem_peak == 400


def _row(gpu_phases=None, peak=None):
    from nnprof.instrument.steps import StepRecord
    rec = StepRecord(0)
    rec.end = 10**6
    rec.kind = "train"
    rec.n_backward = 1
    rec.gpu_phases = gpu_phases
    rec.gpu_mem_peak = peak
    p = Profiler(out="unused")
    p.t0, p.writer = 0, FakeWriter()
    p._rows = [rec]
    p._write_rows(rec.end)
    return p.writer.lines[0].rstrip("\n").split(",")


def test_row_has_the_peak_column_after_the_device_phases_and_empty_on_cpu():
    assert STEP_COLUMNS[-6:] == ["gpu_mem_peak_bytes", "pass_start", "comm_wait_s",
                                 "rss_bytes", "gpu_mem_allocated_bytes",
                                 "gpu_mem_reserved_bytes"]
    cpu = _row()
    assert len(cpu) == len(STEP_COLUMNS)
    assert cpu[-6] == "" and cpu[-13:-6] == [""] * 7 and cpu[-5] == "0" and cpu[-4:] == [""] * 4
    gpu = _row([0.001] * 7, 123456789)
    assert len(gpu) == len(STEP_COLUMNS)
    assert gpu[-6] == "123456789" and gpu[-7] == "0.001000"
