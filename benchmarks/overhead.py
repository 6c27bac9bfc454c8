"""Per-step overhead of nnprof against the bare loop, torch.profiler, py-spy and TraceML.

Runs the same training loops in one process, each tool's round between two bare rounds
(bare, A, bare, B, bare, ...; the tools' order rotated at each round, a full garbage
collection before each, so that no mode pays for another's). A round runs
``--warm-steps`` untimed steps (default 10: a profiler's first steps cost more, once;
nnprof's extra cost there is printed apart), then ``--blocks`` timed blocks of steps:

    python benchmarks/overhead.py            # every workload, 21 rounds (tens of minutes)
    python benchmarks/overhead.py --quick    # small MLP and HF Trainer, 6 rounds: 2-3 minutes
    python benchmarks/overhead.py --json     # {"workloads": {NAME: {...}}}

The estimate. A block lasts at least ``--block-s`` (0.2 s) and is a multiple of 16 steps,
so that every block holds whole periods of nnprof's batched work (its host sample every
0.1 s, the write of its rows every 16 steps) besides its per-step hooks. A round's time
per step is its quietest block's mean: on this kind of machine other load only ever adds
time (identical bare blocks differ by up to 15% in their mean, while their quietest
differ by 2%), and a block that pays all of a tool's work, uninterrupted, is the tool's
true cost. A tool's ratio for a round is that time over the mean of the two bare rounds
either side (a drift of the machine's speed weighs on both); over the rounds, the median
of those ratios with a distribution-free 95% interval for it (the order statistics a
binomial count gives: no assumption of normal noise; a disturbed round moves one value).
``A/A`` is the bare loop against itself, measured the same way: this machine's noise
floor. ``nnprof mean`` is the same ratio from every block's mean instead of the quietest
(all of the steps: the wider interval of the two). ``nnprof cpu``: the main thread's CPU
time (``time.thread_time``; it leaves out nnprof's sampling threads).
Beside the times, a count that no noise moves: the Python bytecodes and Python calls
nnprof adds to a step (``sys.settrace`` counting opcodes over n and 2n steps, bare and
under nnprof; in ``--json``, ``nnprof_bytecodes_per_step`` and ``nnprof_calls_per_step``).
Hardware instruction counts would include the C side too, but need ``perf`` counters
(absent on many VMs) or valgrind (minutes per run: it slows torch's import 50-fold).
``--threads`` (default 1) gives torch one core, leaving the others to the profilers'
threads and the rest of the machine, as a training job on a many-core machine has.

Modes: ``bare``; ``eventlog`` (only when named in ``--tools``): the floor's hooks as an
event log, folded into written ``steps.csv`` rows every 16 steps (``hookfloor.event_log``:
the lower bound of that design); ``floor``: pass-through hooks at the points nnprof hooks, each
only its ``torch.compile`` guard, a thread test and a clock read at a phase boundary
(``benchmarks/hookfloor.py``): what any design with Python hooks there pays, so that
``nnprof`` minus ``floor`` is nnprof's own bookkeeping; ``nnprof`` (``nnprof.profile()``,
host sampling on, as the CLI runs); ``torch_profiler`` (``torch.profiler.profile(activities=[CPU])``, its
defaults); ``pyspy``: ``py-spy record -r 100 -o FILE --pid PID`` attached to this
process, as a user would run it (py-spy's default blocking mode: it pauses the
process for each sample); ``pyspy_nonblocking``: the same with ``--nonblocking``
(how ``nnprof profile --pyspy`` runs it). py-spy is looked up next to the
interpreter, then on PATH; without it, or without the right to attach (ptrace),
its ratios are null.

Workloads: a tiny MLP at four sizes (``mlp_small``, ``mlp``: about 0.5 ms per step on
a laptop-class CPU core, ``mlp_big``: the same hooks per step, the step's length
changes; ``mlp_tiny``, 8 wide in batches of 4: almost nothing but torch's own per-call
work, so that nnprof's cost is the largest share it can be, for
``overhead_parts.py``), a
small CNN (tens of ms), an input-bound loop (a DataLoader whose samples sleep),
and a 2-layer BERT from a ``transformers`` config (about 50 module calls per
step) in a plain loop (``bert``), under ``torch.compile`` (``bert_compiled``,
compiled in the warm-up, before nnprof starts) and in HF ``Trainer``
(``bert_trainer``, timed per step by a callback: its set-up is left out); each
skipped, with the reason, where ``transformers`` or a compiler is missing.
TraceML, where installed (``pip install nnprof[bench]``), is measured in a child process
per workload (it cannot be removed once started), started by ``traceml run`` (its
launcher and aggregator): bare rounds, then as many under its zero-code mode
(``traceml_ai.init(mode="auto")``), each round's time per step as above; the ratio of
the medians, its interval a percentile bootstrap (the two samples cannot be paired). A
package that is installed but fails to import is said as such, not as missing.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import io
import json
import math
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
from nnprof.session import FLUSH_ROWS


def _steps(model, opt, x, y):
    """``run(n)``: n training steps of ``model`` on one fixed batch."""
    loss_fn = nn.CrossEntropyLoss()

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    return run


def mlp_workload(width: int = 512, batch: int = 64):
    """The same loop at three sizes (the same hooks per step, a different step length):
    ``mlp_small`` (128 wide, batches of 16), ``mlp`` (512, 64), ``mlp_big`` (1024, 256),
    and ``mlp_tiny`` (8, 4) for the parts of nnprof's cost."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return _steps(model, opt, torch.randn(batch, 256), torch.randint(0, 10, (batch,)))


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
        """n + 1 steps of the Trainer's own loop: each step's (wall s, CPU s) from the
        first step's end on (its set-up left out)."""
        args = TrainingArguments(output_dir=out, max_steps=n + 1, per_device_train_batch_size=8,
                                 logging_strategy="no", save_strategy="no", report_to=[],
                                 disable_tqdm=True, use_cpu=True, dataloader_num_workers=0)
        clock = StepClock()
        trainer = Trainer(model=model, args=args, train_dataset=_TokenData(8 * (n + 1)),
                          callbacks=[clock])
        with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training metrics line
            trainer.train()
        return [(b - a, d - c) for a, b, c, d in zip(clock.wall, clock.wall[1:], clock.cpu,
                                                      clock.cpu[1:])]
    run.per_step = True  # returns its steps' times (a framework's own loop)
    return run


WORKLOADS = {"mlp_tiny": lambda: mlp_workload(8, 4),
             "mlp_small": lambda: mlp_workload(128, 16), "mlp": mlp_workload,
             "mlp_big": lambda: mlp_workload(1024, 256), "cnn": cnn_workload,
             "input": input_workload,
             "bert": bert_workload, "bert_compiled": lambda: bert_workload(True),
             "bert_trainer": bert_trainer_workload}


WARM_STEPS = 10  # untimed at the start of every round (--warm-steps)
BLOCK_S = 0.2    # a block lasts at least this long (--block-s) ...
BLOCK_STEPS = FLUSH_ROWS  # ... and is a multiple of this many steps (nnprof writes its
# rows 16 at a time)
BLOCKS = 4       # blocks per round (--blocks)


QUICK = ("mlp_small", "bert_trainer")  # --quick: a plain loop and HF Trainer


class Round:
    """One round of one mode: ``BLOCKS`` blocks of ``k`` steps after WARM_STEPS untimed
    ones. ``wall`` / ``cpu``: the round's estimate of the time per step, the quietest
    block's mean (see the module docstring); ``mean``: the mean over all its steps;
    ``warm_s``: the wall seconds of the warm-up steps."""
    __slots__ = ("wall", "cpu", "mean", "warm_s")

    def __init__(self, blocks: list, warm_s: float) -> None:
        quiet = min(blocks)
        self.wall, self.cpu = quiet
        self.mean = sum(b[0] for b in blocks) / len(blocks)
        self.warm_s = warm_s


def timed(fn, k: int) -> Round:
    """``BLOCKS`` blocks of ``k`` steps of ``fn`` after WARM_STEPS untimed ones (a
    profiler's first steps cost more: nnprof measures activations and wiring there);
    each block's (wall, main-thread CPU) per step. A framework's own loop (``per_step``)
    runs all its steps in one call and reports each; its warm-up is its first steps."""
    clock, cpu = time.perf_counter, time.thread_time
    if getattr(fn, "per_step", False):
        steps = fn(WARM_STEPS + BLOCKS * k)
        warm, steps = steps[:WARM_STEPS], steps[WARM_STEPS:]
        blocks = [(sum(w for w, _ in steps[i:i + k]) / k, sum(c for _, c in steps[i:i + k]) / k)
                  for i in range(0, BLOCKS * k, k)]
        return Round(blocks, sum(w for w, _ in warm))
    w0 = clock()
    if WARM_STEPS:
        fn(WARM_STEPS)
    warm_s = clock() - w0
    blocks = []
    for _ in range(BLOCKS):
        t0, c0 = clock(), cpu()
        fn(k)
        blocks.append(((clock() - t0) / k, (cpu() - c0) / k))
    return Round(blocks, warm_s)


def block_steps(fn) -> int:
    """Steps per block for ``fn``: at least BLOCK_S seconds, a multiple of BLOCK_STEPS
    (whole periods of nnprof's batched work: a host sample every 0.1 s, a write of its
    rows every 16 steps), from a few timed steps."""
    if getattr(fn, "per_step", False):
        per = statistics.median(w for w, _ in fn(8))
    else:
        fn(2)
        t0 = time.perf_counter()
        fn(8)
        per = (time.perf_counter() - t0) / 8
    n = max(1, math.ceil(BLOCK_S / max(per, 1e-6) / BLOCK_STEPS))
    return n * BLOCK_STEPS


def bytecodes_per_step(fn, tmp: str, n: int = 16) -> dict:
    """Python bytecodes and calls per step, bare and under nnprof: the difference of
    ``2n`` and ``n`` steps (what a call costs once, a framework's set-up, cancels), after
    warm-up steps. Noise-free, where time per step is not: a change of nnprof's hooks
    moves it exactly. nnprof's rows are written by count alone for it (a write after
    0.25 s, in a slow traced step, would fall in a window or not by chance)."""
    from unittest import mock

    from nnprof.instrument.cost import python_work_per_step

    def per_step():
        fn(WARM_STEPS or 2)
        return python_work_per_step(fn, n)
    bare = per_step()
    with mock.patch("nnprof.session.FLUSH_NS", 10 ** 18), \
            nnprof.profile(out=tempfile.mkdtemp(dir=tmp), progress=False):
        mine = per_step()
    return {"bare_bytecodes_per_step": bare[0], "bare_calls_per_step": bare[1],
            "nnprof_bytecodes_per_step": mine[0] - bare[0],
            "nnprof_calls_per_step": mine[1] - bare[1]}


def with_nnprof(fn, n, tmp) -> Round:
    with nnprof.profile(out=tempfile.mkdtemp(dir=tmp), progress=False):
        return timed(fn, n)


def with_floor(fn, n, tmp) -> Round:
    """Pass-through hooks at nnprof's hook points, a clock read at each phase boundary
    and nothing else (benchmarks/hookfloor.py): what any Python-hook design pays."""
    import hookfloor
    with hookfloor.installed():
        return timed(fn, n)


def with_event_log(fn, n, tmp) -> Round:
    """The same hooks as an event log, folded into written steps.csv rows every 16 steps
    (benchmarks/hookfloor.py's ``event_log``): the lower bound of that design."""
    import hookfloor
    with hookfloor.event_log(tempfile.mkdtemp(dir=tmp)):
        return timed(fn, n)


def with_torch_profiler(fn, n, tmp) -> Round:
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
    def with_pyspy(fn, n, tmp) -> Round:
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
    fn = WORKLOADS[name]()
    timed(fn, n)  # warm-up
    bare = [timed(fn, n).wall for _ in range(rounds)]
    traceml.init(mode="auto", on_missing_aggregator="raise")
    traced = [timed(fn, n).wall for _ in range(rounds)]
    return {"bare_s": bare, "traceml_s": traced}


def traceml_ratio(name: str, n: int, rounds: int):
    """((ratio, interval) or None, why not): TraceML's ratio to bare on workload ``name``,
    measured in a child that ``traceml run`` starts."""
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
                                "--rounds", str(rounds), "--warm-steps", str(WARM_STEPS),
                                "--blocks", str(BLOCKS), "--threads",
                                str(torch.get_num_threads())], capture_output=True, text=True,
                               timeout=1800)
            data = next(json.loads(line) for line in reversed(r.stdout.splitlines())
                        if line.startswith('{"bare_s"'))
            bare, traced = data["bare_s"], data["traceml_s"]
            return (statistics.median(traced) / statistics.median(bare),
                    bootstrap_ratio_ci(traced, bare)), None
        except (OSError, ValueError, StopIteration, KeyError, ZeroDivisionError,
                subprocess.TimeoutExpired) as exc:
            why = (r.stderr.strip().splitlines() or [""])[-1][-200:] if r is not None else ""
            return None, f"traceml run failed ({why or exc.__class__.__name__})"


def median_ci(xs: list, level: float = 0.95):
    """A distribution-free interval for the median of ``xs`` ([low, high], or None with
    fewer than 6 values): the order statistics k and n-k+1 (1-based, sorted), k the largest
    with P(Binomial(n, 1/2) < k) <= (1 - level) / 2. It assumes only that the values are
    independent draws of one distribution; a round disturbed by other load moves one value,
    not the interval's arithmetic."""
    n = len(xs)
    if n < 6:
        return None
    alpha = (1 - level) / 2
    k, below = 0, 0.0
    while True:  # below: P(B < k + 1)
        nxt = below + math.comb(n, k) / 2 ** n
        if nxt > alpha:
            break
        below, k = nxt, k + 1
    k = max(k, 1)
    s = sorted(xs)
    return [s[k - 1], s[n - k]]


def bootstrap_ratio_ci(a: list, b: list, level: float = 0.95, draws: int = 4000):
    """A percentile-bootstrap interval for median(a) / median(b), for two samples that
    cannot be paired (TraceML cannot be stopped once started: its rounds follow the bare
    ones in one process)."""
    import random
    rng = random.Random(0)
    ratios = sorted(statistics.median(rng.choices(a, k=len(a))) /
                    statistics.median(rng.choices(b, k=len(b))) for _ in range(draws))
    lo = int((1 - level) / 2 * draws)
    return [ratios[lo], ratios[draws - 1 - lo]]


def measure(fn, k: int, rounds: int, modes: dict, tmp: str, state: dict) -> dict:
    """Each tool's round between two bare rounds (bare, A, bare, B, bare, ...), the
    tools' order rotated at each round; a tool's ratio for a round is its time over the
    mean of the bare rounds either side (a drift of the machine's speed weighs on both
    sides of the pair), and its ratio is the median over rounds."""
    def bare_round():
        gc.collect()
        return timed(fn, k)
    timed(fn, k)  # warm-up
    tools = [m for m in modes if m != "bare"]
    got: dict = {m: [] for m in tools}  # (tool's Round, bare before, bare after)
    bares = [bare_round()]
    for r in range(rounds):
        for m in tools[r % len(tools):] + tools[:r % len(tools)]:
            if m not in modes:  # py-spy, left out earlier in this round
                continue
            # the previous mode's cyclic garbage (torch.profiler's results: ~80 ms to
            # free) is collected now, not by whichever mode next triggers a collection
            gc.collect()
            try:
                x = modes[m](fn, k, tmp)
            except PySpyFailed as exc:  # attach refused mid-run: leave py-spy out
                state["pyspy_problem"] = f"py-spy stopped: {exc}"
                for p in ("pyspy", "pyspy_nonblocking"):
                    modes.pop(p, None)
                continue
            bares.append(bare_round())
            got[m].append((x, bares[-2], bares[-1]))

    def pairs(m, attr):
        return [getattr(x, attr) / ((getattr(a, attr) + getattr(b, attr)) / 2)
                for x, a, b in got.get(m, ())]

    entry = {"bare_s": statistics.median(b.wall for b in bares), "steps_per_block": k,
             "blocks": BLOCKS, "rounds": rounds, "warm_steps": WARM_STEPS}
    for m in ("bare_again", "floor", "eventlog", "nnprof", "torch_profiler", "pyspy",
              "pyspy_nonblocking"):
        p = pairs(m, "wall")
        entry[f"{m}_ratio"] = statistics.median(p) if p else None
        entry[f"{m}_ratio_ci"] = median_ci(p)
    for key, attr in (("nnprof_cpu", "cpu"), ("nnprof_mean", "mean")):
        p = pairs("nnprof", attr)
        entry[f"{key}_ratio"] = statistics.median(p) if p else None
        entry[f"{key}_ratio_ci"] = median_ci(p)
    if entry["nnprof_ratio"] is not None:
        entry["nnprof_overhead_us_per_step"] = (entry["nnprof_ratio"] - 1) * entry["bare_s"] * 1e6
    extra = [x.warm_s - (a.warm_s + b.warm_s) / 2 for x, a, b in got.get("nnprof", ())]
    entry["nnprof_first_steps_ms"] = statistics.median(extra) * 1e3 if extra else None
    return entry


def main() -> int:
    global WARM_STEPS, BLOCKS, BLOCK_S
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="two to three minutes: the small MLP and HF Trainer workloads, 6 rounds "
                         "(the fewest that give an interval) of 2 blocks of 0.1 s or more")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default=None,
                    help="comma-separated workloads (default: all): " + ",".join(WORKLOADS))
    ap.add_argument("--threads", type=int, default=1,
                    help="torch's CPU threads for the workloads (default 1: the workload has "
                         "a core, the profilers' threads and the rest of the machine the "
                         "others; 0: torch's own choice)")
    ap.add_argument("--warm-steps", type=int, default=WARM_STEPS,
                    help=f"untimed steps at the start of every round (default {WARM_STEPS}); "
                         "their extra cost under nnprof is printed apart")
    ap.add_argument("--tools", default=None,
                    help="comma-separated tools (default: all but eventlog): bare_again "
                         "(A/A), floor (bare hooks at nnprof's hook points, "
                         "benchmarks/hookfloor.py), eventlog (the same hooks as an event log "
                         "folded into written rows: that design's lower bound), nnprof, "
                         "torch_profiler, pyspy, pyspy_nonblocking, traceml")
    ap.add_argument("--blocks", type=int, default=None,
                    help=f"timed blocks per round (default {BLOCKS}; --quick 3)")
    ap.add_argument("--block-s", type=float, default=None,
                    help=f"a block's least length in seconds (default {BLOCK_S}; --quick 0.1)")
    ap.add_argument("--traceml-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    WARM_STEPS = max(0, args.warm_steps)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rounds = max(1, args.rounds or (6 if args.quick else 21))
    BLOCKS = max(1, args.blocks or (2 if args.quick else BLOCKS))
    BLOCK_S = max(0.0, args.block_s if args.block_s is not None else
                  (0.1 if args.quick else BLOCK_S))
    if args.traceml_child:
        print(json.dumps(traceml_child(args.traceml_child, args.steps, rounds)))
        return 0
    names = args.only.split(",") if args.only else list(QUICK if args.quick else WORKLOADS)
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")
    def bare(fn, n, tmp):
        return timed(fn, n)
    modes = {"bare": bare, "bare_again": bare, "floor": with_floor, "eventlog": with_event_log,
             "nnprof": with_nnprof, "torch_profiler": with_torch_profiler}
    chosen = set(args.tools.split(",")) if args.tools else None
    known = {"bare_again", "floor", "eventlog", "nnprof", "torch_profiler", "pyspy",
             "pyspy_nonblocking", "traceml"}
    if chosen is not None and chosen - known:
        ap.error(f"unknown tool(s): {', '.join(sorted(chosen - known))}")
    state = {"pyspy_problem": None}
    if chosen is None or chosen & {"pyspy", "pyspy_nonblocking"}:
        state["pyspy_problem"] = pyspy_usable()
        if state["pyspy_problem"] is None:
            modes["pyspy"] = with_pyspy
            modes["pyspy_nonblocking"] = with_pyspy_nonblocking
    if chosen is not None:
        modes = {m: f for m, f in modes.items() if m == "bare" or m in chosen}
    else:
        modes.pop("eventlog")  # a design's price, not a tool: only when named
    results, skipped, traceml_problem = {}, {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                fn = WORKLOADS[name]()
            except Unavailable as exc:
                skipped[name] = str(exc)
                continue
            n = block_steps(fn)
            results[name] = measure(fn, n, rounds, modes, tmp, state)
            if "nnprof" in modes:
                try:
                    results[name].update(bytecodes_per_step(fn, tmp))
                except ImportError:  # an nnprof from before the count existed
                    pass
            got = None
            if chosen is None or "traceml" in chosen:
                got, traceml_problem = traceml_ratio(name, n, rounds)
            results[name]["traceml_ratio"], results[name]["traceml_ratio_ci"] = got or (None, None)
    if args.json:
        print(json.dumps({"workloads": results, "skipped": skipped, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "pyspy": pyspy_exe(),
                          "pyspy_problem": state["pyspy_problem"],
                          "traceml_problem": traceml_problem}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds of "
          f"{BLOCKS} blocks (>= {BLOCK_S:g} s each); ratio: the median over rounds of a tool's "
          "time per step (its round's quietest block) over the bare rounds' either side, "
          "with its 95% interval")
    print(f"{'workload':13} {'bare/step':>11}  {'tool':<15} {'ratio':>7}  {'95% interval':<15} "
          f"{'+us/step':>8}")
    tools = (("bare_again", "A/A: bare"), ("floor", "hooks floor"), ("eventlog", "event log"),
             ("nnprof", "nnprof"),
             ("nnprof_cpu", "nnprof cpu"),
             ("nnprof_mean", "nnprof mean"),
             ("torch_profiler", "torch.profiler"), ("pyspy", "py-spy"),
             ("pyspy_nonblocking", "py-spy nb"), ("traceml", "TraceML"))
    if all(e.get("eventlog_ratio") is None for e in results.values()):
        tools = tuple(t for t in tools if t[0] != "eventlog")  # not asked for
    for name, e in results.items():
        first = True
        for key, label in tools:
            v, ci = e.get(f"{key}_ratio"), e.get(f"{key}_ratio_ci")
            head = f"{name:13} {e['bare_s'] * 1e3:9.3f}ms" if first else " " * 25
            first = False
            if v is None:
                print(f"{head}  {label:<15} {'n/a':>7}")
                continue
            interval = f"{ci[0]:.3f}-{ci[1]:.3f}x" if ci else ""
            print(f"{head}  {label:<15} {v:6.3f}x  {interval:<15} "
                  f"{(v - 1) * e['bare_s'] * 1e6:8.1f}")
    for name, why in skipped.items():
        print(f"{name:13} skipped: {why}")
    print("A/A: the bare loop against itself, this machine's noise floor; hooks floor: "
          "pass-through hooks at nnprof's hook points with a clock read at each phase "
          "boundary, nothing else (benchmarks/hookfloor.py); nnprof cpu: the "
          "main thread's CPU time; nnprof mean: every block's mean, not the quietest; "
          "py-spy: py-spy record -r 100 --pid (blocking); nb: --nonblocking")
    firsts = ", ".join(f"{name} {e['nnprof_first_steps_ms']:.1f} ms"
                       for name, e in results.items() if e.get("nnprof_first_steps_ms") is not None)
    if firsts:
        print(f"nnprof's first {WARM_STEPS} steps of a run (untimed above) cost more, once: "
              f"{firsts}")
    for name, e in results.items():
        if e.get("nnprof_bytecodes_per_step") is not None:
            print(f"{name}: nnprof adds {e['nnprof_bytecodes_per_step']:.0f} Python bytecodes "
                  f"and {e['nnprof_calls_per_step']:.0f} Python calls per step (the bare step: "
                  f"{e['bare_bytecodes_per_step']:.0f} and {e['bare_calls_per_step']:.0f})")
    if state["pyspy_problem"]:
        print(f"py-spy: n/a, {state['pyspy_problem']}")
    if traceml_problem:
        print(f"TraceML: n/a, {traceml_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
