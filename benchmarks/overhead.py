"""Per-step overhead of nnprof against the bare loop and torch.profiler.

Runs the same training loops in one process, alternating the modes round after
round after a warm-up, and prints the median time per step and its ratio to
the bare loop:

    python benchmarks/overhead.py            # full run (a few minutes)
    python benchmarks/overhead.py --quick    # about a minute
    python benchmarks/overhead.py --json     # {"workloads": {NAME: {...}}}

Workloads: a tiny MLP (about 0.5 ms per step on a laptop-class CPU core), a
small CNN (tens of ms) and an input-bound loop (a DataLoader whose samples
sleep). py-spy is sampled from outside when installed (``pip install py-spy``).
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


def with_pyspy(fn, n, tmp) -> float:
    proc = subprocess.Popen(["py-spy", "record", "--rate", "100", "--pid", str(os.getpid()),
                             "--output", os.path.join(tmp, "pyspy.txt"), "--format", "raw",
                             "--nonblocking"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # let it attach
    try:
        return timed(fn, n)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pyspy_usable() -> bool:
    if shutil.which("py-spy") is None:
        return False
    try:
        r = subprocess.run(["py-spy", "dump", "--pid", str(os.getpid())], capture_output=True,
                           timeout=20)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
    if pyspy_usable():
        modes["pyspy"] = with_pyspy
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (make, steps) in WORKLOADS.items():
            fn = make()
            n = max(5, int(steps * scale))
            timed(fn, n)  # warm-up
            times = {m: [] for m in modes}
            for _ in range(rounds):
                for m, run in modes.items():
                    times[m].append(run(fn, n, tmp))
            bare = statistics.median(times["bare"])
            entry = {"bare_s": bare, "steps_per_round": n, "rounds": rounds}
            for m in modes:
                if m != "bare":
                    entry[f"{m}_ratio"] = statistics.median(times[m]) / bare
            entry["nnprof_overhead_us_per_step"] = (
                statistics.median(times["nnprof"]) - bare) * 1e6
            if "pyspy" not in modes:
                entry["pyspy_ratio"] = None
            results[name] = entry
    if args.json:
        print(json.dumps({"workloads": results, "torch": torch.__version__,
                          "threads": torch.get_num_threads()}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds, "
          "medians")
    print(f"{'workload':10} {'bare/step':>12} {'nnprof':>8} {'+us/step':>9} "
          f"{'torch.prof':>10} {'py-spy':>8}")
    for name, e in results.items():
        spy = "n/a" if e.get("pyspy_ratio") is None else f"{e['pyspy_ratio']:.3f}x"
        print(f"{name:10} {e['bare_s'] * 1e3:10.3f}ms {e['nnprof_ratio']:7.3f}x "
              f"{e['nnprof_overhead_us_per_step']:9.1f} {e['torch_profiler_ratio']:9.3f}x "
              f"{spy:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
