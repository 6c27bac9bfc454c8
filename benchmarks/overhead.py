"""Per-step overhead of nnprof against the bare loop, torch.profiler and py-spy.

Runs the same training loops in one process, alternating the modes round after
round after a warm-up, and prints the median time per step (measured inside the
loop, as for every mode) and its ratio to the bare loop:

    python benchmarks/overhead.py            # full run (a few minutes)
    python benchmarks/overhead.py --quick    # one to two minutes
    python benchmarks/overhead.py --json     # {"workloads": {NAME: {...}}}

Modes: ``bare``; ``nnprof`` (``nnprof.profile()``, host sampling on, as the CLI
runs); ``torch_profiler`` (``torch.profiler.profile(activities=[CPU])``, its
defaults); ``pyspy``: ``py-spy record -r 100 -o FILE --pid PID`` attached to this
process, as a user would run it (py-spy's default blocking mode: it pauses the
process for each sample); ``pyspy_nonblocking``: the same with ``--nonblocking``
(how ``nnprof profile --pyspy`` runs it). py-spy is looked up next to the
interpreter, then on PATH; without it, or without the right to attach (ptrace),
its ratios are null.

Workloads: a tiny MLP (about 0.5 ms per step on a laptop-class CPU core), a
small CNN (tens of ms) and an input-bound loop (a DataLoader whose samples
sleep).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import nnprof


def _steps(model, opt, x, y):
    """``run(n)``: n training steps of ``model`` on one fixed batch."""
    loss_fn = nn.CrossEntropyLoss()

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    return run


def mlp_workload():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return _steps(model, opt, torch.randn(64, 256), torch.randint(0, 10, (64,)))


def cnn_workload():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return _steps(model, opt, torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,)))


class _SlowData(Dataset):
    def __len__(self):
        return 10**6

    def __getitem__(self, i):
        time.sleep(0.0002)
        return torch.full((32,), float(i % 5)), i % 2


def input_workload():
    torch.manual_seed(0)
    model = nn.Linear(32, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(_SlowData(), batch_size=16)
    loss_fn = nn.CrossEntropyLoss()

    def run(n):
        for i, (x, y) in enumerate(loader):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            if i + 1 >= n:
                break
    return run


WORKLOADS = {"mlp": (mlp_workload, 400), "cnn": (cnn_workload, 20), "input": (input_workload, 60)}


def timed(fn, n) -> float:
    t0 = time.perf_counter()
    fn(n)
    return (time.perf_counter() - t0) / n


def with_nnprof(fn, n, tmp) -> float:
    with nnprof.profile(out=tempfile.mkdtemp(dir=tmp), progress=False):
        return timed(fn, n)


def with_torch_profiler(fn, n, tmp) -> float:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]):
        return timed(fn, n)


def pyspy_exe():
    """py-spy next to this interpreter (a virtualenv's bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.access(here, os.X_OK) else shutil.which("py-spy")


class PySpyFailed(RuntimeError):
    pass


def _pyspy_mode(extra: list):
    def with_pyspy(fn, n, tmp) -> float:
        out = os.path.join(tmp, f"pyspy-{time.monotonic_ns()}.svg")
        proc = subprocess.Popen([pyspy_exe(), "record", "-r", "100", "-o", out,
                                 "--pid", str(os.getpid()), *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # let it attach
        if proc.poll() is not None:
            raise PySpyFailed(proc.stderr.read().decode(errors="replace").strip()[-300:])
        try:
            return timed(fn, n)
        finally:
            proc.terminate()  # its output is not needed
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()
    return with_pyspy


with_pyspy = _pyspy_mode([])
with_pyspy_nonblocking = _pyspy_mode(["--nonblocking"])


def pyspy_usable():
    """None if py-spy can sample this process, else why not (one line)."""
    exe = pyspy_exe()
    if exe is None:
        return "py-spy is not installed (pip install py-spy)"
    try:
        r = subprocess.run([exe, "dump", "--pid", str(os.getpid())], capture_output=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy dump failed: {exc}"
    if r.returncode != 0:
        return "py-spy cannot attach: " + r.stderr.decode(errors="replace").strip()[-200:]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (5 if args.quick else 11)
    scale = 0.5 if args.quick else 1.0
    modes = {"bare": lambda fn, n, tmp: timed(fn, n), "nnprof": with_nnprof,
             "torch_profiler": with_torch_profiler}
    pyspy_problem = pyspy_usable()
    if pyspy_problem is None:
        modes["pyspy"] = with_pyspy
        modes["pyspy_nonblocking"] = with_pyspy_nonblocking
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, steps) in WORKLOADS.items():
            fn = make()
            n = max(5, int(steps * scale))
            timed(fn, n)  # warm-up
            times = {m: [] for m in modes}
            for _ in range(rounds):
                for m, run in list(modes.items()):
                    try:
                        times[m].append(run(fn, n, tmp))
                    except PySpyFailed as exc:  # attach refused mid-run: leave py-spy out
                        pyspy_problem = f"py-spy stopped: {exc}"
                        for k in ("pyspy", "pyspy_nonblocking"):
                            modes.pop(k, None)
                            times.pop(k, None)
            bare = statistics.median(times["bare"])
            entry = {"bare_s": bare, "steps_per_round": n, "rounds": rounds}
            for m in ("nnprof", "torch_profiler", "pyspy", "pyspy_nonblocking"):
                entry[f"{m}_ratio"] = statistics.median(times[m]) / bare if times.get(m) \
                    else None
            entry["nnprof_overhead_us_per_step"] = (
                statistics.median(times["nnprof"]) - bare) * 1e6
            results[name] = entry
    if args.json:
        print(json.dumps({"workloads": results, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "pyspy": pyspy_exe(),
                          "pyspy_problem": pyspy_problem}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds, "
          "medians of the time per step; ratios to bare")
    print(f"{'workload':10} {'bare/step':>12} {'nnprof':>8} {'+us/step':>9} "
          f"{'torch.prof':>10} {'py-spy':>8} {'py-spy nb':>10}")

    def ratio(v, width):
        return f"{'n/a':>{width}}" if v is None else f"{v:{width - 1}.3f}x"
    for name, e in results.items():
        print(f"{name:10} {e['bare_s'] * 1e3:10.3f}ms {ratio(e['nnprof_ratio'], 8)} "
              f"{e['nnprof_overhead_us_per_step']:9.1f} {ratio(e['torch_profiler_ratio'], 10)} "
              f"{ratio(e['pyspy_ratio'], 8)} {ratio(e['pyspy_nonblocking_ratio'], 10)}")
    print("py-spy: py-spy record -r 100 --pid (default, blocking); nb: --nonblocking")
    if pyspy_problem:
        print(f"py-spy: n/a, {pyspy_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
