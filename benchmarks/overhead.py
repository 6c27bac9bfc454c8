"""Per-step overhead of nnprof against the bare loop, torch.profiler and py-spy.

Runs the same training loops in one process, alternating the modes round after
round after a warm-up (their order rotated at each round), and prints the median
bare time per step (measured inside the loop, as for every mode) and each mode's
ratio to the bare loop: the median over rounds of its time over that round's bare
time (a full garbage collection before each, so that no mode pays for another's):

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
small CNN (tens of ms), an input-bound loop (a DataLoader whose samples sleep),
and a 2-layer BERT from a ``transformers`` config (about 50 module calls per
step) in a plain loop (``bert``), under ``torch.compile`` (``bert_compiled``,
compiled in the warm-up, before nnprof starts) and in HF ``Trainer``
(``bert_trainer``, timed per step by a callback: its set-up is left out); each
skipped, with the reason, where ``transformers`` or a compiler is missing.
``nnprof cpu``: the ratio of the main thread's CPU time (``time.thread_time``),
which other processes on the same cores disturb less (it leaves out nnprof's
sampling threads). TraceML, where installed, is measured in a child process per
workload (it cannot be removed once started), started by ``traceml run`` (its launcher
and aggregator): bare rounds, then as many under its zero-code mode
(``traceml_ai.init(mode="auto")``); the ratio of the medians. A package that is installed
but fails to import is said as such, not as missing.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


class Unavailable(RuntimeError):
    """A package or a compiler that a workload needs is missing."""


def import_problem(package: str, exc: ImportError) -> str:
    """Why ``package`` could not be imported: not installed, or installed and failing
    (a broken dependency), said as such."""
    import importlib.util
    try:
        installed = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return f"{package} is not installed (pip install {PIP_NAMES.get(package, package)})"
    return f"{package} is installed but failed to import: {exc.__class__.__name__}: {exc}"[:300]


PIP_NAMES = {"traceml_ai": "traceml-ai"}


def _bert():
    try:
        from transformers import BertConfig, BertForSequenceClassification
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise Unavailable(import_problem("transformers", exc)) from None
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128,
                        max_position_embeddings=64, num_labels=2)
    return BertForSequenceClassification(config)


class _TokenData(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 1000, (n, 32), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def bert_workload(compiled=False):
    model = _bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    call = model
    if compiled:
        call = torch.compile(model)
    data = _TokenData(8)
    ids, labels = data.ids, data.labels

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            call(input_ids=ids, labels=labels).loss.backward()
            opt.step()
    if compiled:
        try:
            run(2)  # compiles here, once
        except Exception as exc:  # e.g. no C++ compiler for inductor
            raise Unavailable(f"torch.compile failed: {exc.__class__.__name__}") from None
    return run


def bert_trainer_workload():
    model = _bert()
    try:
        from transformers import Trainer, TrainerCallback, TrainingArguments
    except ImportError as exc:
        raise Unavailable(f"transformers' Trainer is unavailable ({exc})") from None
    out = tempfile.mkdtemp(prefix="nnprof-bench-")
    atexit.register(shutil.rmtree, out, True)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.wall, self.cpu = [], []

        def on_step_end(self, args, state, control, **kwargs):
            self.wall.append(time.perf_counter())
            self.cpu.append(time.thread_time())

    def run(n):
        """n + 1 steps of the Trainer's own loop; per step from the first step's end on."""
        args = TrainingArguments(output_dir=out, max_steps=n + 1, per_device_train_batch_size=8,
                                 logging_strategy="no", save_strategy="no", report_to=[],
                                 disable_tqdm=True, use_cpu=True, dataloader_num_workers=0)
        clock = StepClock()
        trainer = Trainer(model=model, args=args, train_dataset=_TokenData(8 * (n + 1)),
                          callbacks=[clock])
        with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training metrics line
            trainer.train()
        k = len(clock.wall) - 1
        return ((clock.wall[-1] - clock.wall[0]) / k, (clock.cpu[-1] - clock.cpu[0]) / k)
    return run


WORKLOADS = {"mlp": (mlp_workload, 400), "cnn": (cnn_workload, 20), "input": (input_workload, 60),
             "bert": (bert_workload, 150), "bert_compiled": (lambda: bert_workload(True), 150),
             "bert_trainer": (bert_trainer_workload, 150)}


def timed(fn, n) -> tuple:
    """(wall s, main-thread CPU s) per step: measured by the workload where it returns
    them (a framework's own loop), else around the whole call."""
    t0, c0 = time.perf_counter(), time.thread_time()
    inner = fn(n)
    wall, cpu = (time.perf_counter() - t0) / n, (time.thread_time() - c0) / n
    return inner if inner is not None else (wall, cpu)


def with_nnprof(fn, n, tmp) -> tuple:
    with nnprof.profile(out=tempfile.mkdtemp(dir=tmp), progress=False):
        return timed(fn, n)


def with_torch_profiler(fn, n, tmp) -> tuple:
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
    def with_pyspy(fn, n, tmp) -> tuple:
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


def traceml_child(name: str, n: int, rounds: int) -> dict:
    """In a child process: the workload's bare rounds, then as many under TraceML's
    zero-code mode (``traceml_ai.init(mode="auto")``). The child runs under ``traceml run``,
    TraceML's launcher, which serves the aggregator that the init connects to (without
    it TraceML disables itself, and would cost nothing)."""
    import traceml_ai as traceml  # traceml-ai 0.5: ``import traceml`` raises by design
    fn = WORKLOADS[name][0]()
    timed(fn, n)  # warm-up
    bare = [timed(fn, n)[0] for _ in range(rounds)]
    traceml.init(mode="auto", on_missing_aggregator="raise")
    traced = [timed(fn, n)[0] for _ in range(rounds)]
    return {"bare_s": statistics.median(bare), "traceml_s": statistics.median(traced)}


def traceml_ratio(name: str, n: int, rounds: int):
    """(ratio or None, why not): TraceML's ratio to bare on workload ``name``, measured in
    a child that ``traceml run`` starts."""
    try:
        import traceml_ai  # noqa: F401 (importable, or why not)
    except ImportError as exc:
        return None, import_problem("traceml_ai", exc)
    launcher = Path(sys.executable).parent / "traceml"
    launcher = str(launcher) if launcher.exists() else shutil.which("traceml")
    if launcher is None:
        return None, "traceml-ai is installed but its launcher (traceml) is not on PATH"
    r = None
    with tempfile.TemporaryDirectory() as logs:
        try:
            r = subprocess.run([launcher, "run", "--mode", "summary",
                                "--no-dashboard-auto-open", "--logs-dir", logs,
                                "--run-name", f"overhead-{name}", __file__, "--args",
                                "--traceml-child", name, "--steps", str(n),
                                "--rounds", str(rounds)], capture_output=True, text=True,
                               timeout=1800)
            data = next(json.loads(line) for line in reversed(r.stdout.splitlines())
                        if line.startswith('{"bare_s"'))
            return data["traceml_s"] / data["bare_s"], None
        except (OSError, ValueError, StopIteration, KeyError, ZeroDivisionError,
                subprocess.TimeoutExpired) as exc:
            why = (r.stderr.strip().splitlines() or [""])[-1][-200:] if r is not None else ""
            return None, f"traceml run failed ({why or exc.__class__.__name__})"


def measure(fn, n: int, rounds: int, modes: dict, tmp: str, state: dict) -> dict:
    """Alternate ``modes`` round after round, the order rotated at each round; a
    mode's ratio is the median over rounds of its time over the same round's bare
    time (a burst of load from other processes then weighs on one round's pair,
    not on one mode)."""
    timed(fn, n)  # warm-up
    rows = []
    for r in range(rounds):
        names = list(modes)
        row = {}
        for m in names[r % len(names):] + names[:r % len(names)]:
            # the previous mode's cyclic garbage (torch.profiler's results: ~80 ms to
            # free) is collected now, not by whichever mode next triggers a collection
            if m not in modes:  # py-spy, left out earlier in this round
                continue
            gc.collect()
            try:
                row[m] = modes[m](fn, n, tmp)
            except PySpyFailed as exc:  # attach refused mid-run: leave py-spy out
                state["pyspy_problem"] = f"py-spy stopped: {exc}"
                for k in ("pyspy", "pyspy_nonblocking"):
                    modes.pop(k, None)
        rows.append(row)

    def ratio(m, i):
        pairs = [row[m][i] / row["bare"][i] for row in rows if m in row]
        return statistics.median(pairs) if pairs else None
    bare = statistics.median(row["bare"][0] for row in rows)
    entry = {"bare_s": bare, "steps_per_round": n, "rounds": rounds}
    for m in ("nnprof", "torch_profiler", "pyspy", "pyspy_nonblocking"):
        entry[f"{m}_ratio"] = ratio(m, 0)
    entry["nnprof_overhead_us_per_step"] = (entry["nnprof_ratio"] - 1) * bare * 1e6
    entry["nnprof_cpu_ratio"] = ratio("nnprof", 1)
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default=None,
                    help="comma-separated workloads (default: all): " + ",".join(WORKLOADS))
    ap.add_argument("--traceml-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    rounds = args.rounds or (5 if args.quick else 11)
    scale = 0.5 if args.quick else 1.0
    if args.traceml_child:
        print(json.dumps(traceml_child(args.traceml_child, args.steps, rounds)))
        return 0
    names = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")
    modes = {"bare": lambda fn, n, tmp: timed(fn, n), "nnprof": with_nnprof,
             "torch_profiler": with_torch_profiler}
    state = {"pyspy_problem": pyspy_usable()}
    if state["pyspy_problem"] is None:
        modes["pyspy"] = with_pyspy
        modes["pyspy_nonblocking"] = with_pyspy_nonblocking
    results, skipped, traceml_problem = {}, {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            make, steps = WORKLOADS[name]
            n = max(5, int(steps * scale))
            try:
                fn = make()
            except Unavailable as exc:
                skipped[name] = str(exc)
                continue
            results[name] = measure(fn, n, rounds, modes, tmp, state)
            results[name]["traceml_ratio"], traceml_problem = traceml_ratio(name, n, rounds)
    if args.json:
        print(json.dumps({"workloads": results, "skipped": skipped, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "pyspy": pyspy_exe(),
                          "pyspy_problem": state["pyspy_problem"],
                          "traceml_problem": traceml_problem}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds, "
          "medians of the time per step; ratios to bare")
    print(f"{'workload':13} {'bare/step':>12} {'nnprof':>8} {'+us/step':>9} {'nnprof cpu':>10} "
          f"{'torch.prof':>10} {'py-spy':>8} {'py-spy nb':>10} {'TraceML':>8}")

    def ratio(v, width):
        return f"{'n/a':>{width}}" if v is None else f"{v:{width - 1}.3f}x"
    for name, e in results.items():
        print(f"{name:13} {e['bare_s'] * 1e3:10.3f}ms {ratio(e['nnprof_ratio'], 8)} "
              f"{e['nnprof_overhead_us_per_step']:9.1f} {ratio(e['nnprof_cpu_ratio'], 10)} "
              f"{ratio(e['torch_profiler_ratio'], 10)} {ratio(e['pyspy_ratio'], 8)} "
              f"{ratio(e['pyspy_nonblocking_ratio'], 10)} {ratio(e['traceml_ratio'], 8)}")
    for name, why in skipped.items():
        print(f"{name:13} skipped: {why}")
    print("py-spy: py-spy record -r 100 --pid (default, blocking); nb: --nonblocking; "
          "nnprof cpu: main-thread CPU time ratio")
    if state["pyspy_problem"]:
        print(f"py-spy: n/a, {state['pyspy_problem']}")
    if traceml_problem:
        print(f"TraceML: n/a, {traceml_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
