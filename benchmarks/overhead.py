"""Per-step overhead of nnprof against the bare loop, torch.profiler, py-spy and TraceML.

Runs the same training loops in one process, alternating the modes round after round
(their order rotated at each round, a full garbage collection before each, so that no
mode pays for another's). Each round of each mode runs ``--warm-steps`` untimed steps
(default 10: a profiler's first steps cost more, once; nnprof's extra cost there is
printed apart), then times its steps inside the loop:

    python benchmarks/overhead.py            # every workload, 21 rounds (tens of minutes)
    python benchmarks/overhead.py --quick    # MLP and HF Trainer, 9 rounds: about 2 minutes
    python benchmarks/overhead.py --json     # {"workloads": {NAME: {...}}}

The estimate: for each round, the mode's time per step over the same round's bare time
(a paired ratio: a slow phase of the machine weighs on both of a pair), and over the
rounds their median, with a distribution-free 95% interval for that median (the order
statistics a binomial count gives: no assumption of normal noise, a disturbed round
moves one value). ``A/A`` is the bare loop against itself, measured the same way: this
machine's noise floor, the narrowest interval any ratio can have here.
``--threads`` (default 1) gives torch one core, leaving the others to the profilers'
threads and the rest of the machine, as a training job on a many-core machine has.

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
``nnprof cpu``: the ratio of the main thread's CPU time (``time.thread_time``; it
leaves out nnprof's sampling threads). TraceML, where installed (``pip install
nnprof[bench]``), is measured in a child process per workload (it cannot be removed
once started), started by ``traceml run`` (its launcher and aggregator): bare rounds,
then as many under its zero-code mode (``traceml_ai.init(mode="auto")``); the ratio of
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


WARM_STEPS = 10  # untimed at the start of every round (--warm-steps)


QUICK = ("mlp", "bert_trainer")  # --quick: a plain loop and HF Trainer


def timed(fn, n) -> tuple:
    """(wall s, main-thread CPU s) per step of ``n`` steps, after WARM_STEPS untimed ones
    (a profiler's first steps cost more: nnprof measures activations and wiring there),
    and the wall seconds of those warm-up steps: measured by the workload where it
    returns them (a framework's own loop), else around the whole call."""
    w0 = time.perf_counter()
    if WARM_STEPS:
        fn(WARM_STEPS)
    t0, c0 = time.perf_counter(), time.thread_time()
    inner = fn(n)
    wall, cpu = (time.perf_counter() - t0) / n, (time.thread_time() - c0) / n
    return (*(inner if inner is not None else (wall, cpu)), t0 - w0)


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
                                "--threads",
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

    def pairs(m, i):
        return [row[m][i] / row["bare"][i] for row in rows if m in row]

    def ratio(m, i):
        p = pairs(m, i)
        return statistics.median(p) if p else None
    bare = statistics.median(row["bare"][0] for row in rows)
    entry = {"bare_s": bare, "steps_per_round": n, "rounds": rounds}
    for m in ("bare_again", "nnprof", "torch_profiler", "pyspy", "pyspy_nonblocking"):
        entry[f"{m}_ratio"] = ratio(m, 0)
        entry[f"{m}_ratio_ci"] = median_ci(pairs(m, 0))
    entry["nnprof_overhead_us_per_step"] = (entry["nnprof_ratio"] - 1) * bare * 1e6
    extra = [row["nnprof"][2] - row["bare"][2] for row in rows if "nnprof" in row]
    entry["nnprof_first_steps_ms"] = statistics.median(extra) * 1e3 if extra else None
    entry["warm_steps"] = WARM_STEPS
    entry["nnprof_cpu_ratio"] = ratio("nnprof", 1)
    entry["nnprof_cpu_ratio_ci"] = median_ci(pairs("nnprof", 1))
    return entry


def main() -> int:
    global WARM_STEPS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="about two minutes: the MLP and HF Trainer workloads, 9 rounds of a "
                         "quarter of the steps")
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
    ap.add_argument("--traceml-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    WARM_STEPS = max(0, args.warm_steps)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (9 if args.quick else 21)
    scale = 0.25 if args.quick else 1.0
    if args.traceml_child:
        print(json.dumps(traceml_child(args.traceml_child, args.steps, rounds)))
        return 0
    names = args.only.split(",") if args.only else list(QUICK if args.quick else WORKLOADS)
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(unknown)}")
    def bare(fn, n, tmp):
        return timed(fn, n)
    modes = {"bare": bare, "bare_again": bare, "nnprof": with_nnprof,
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
            got, traceml_problem = traceml_ratio(name, n, rounds)
            results[name]["traceml_ratio"], results[name]["traceml_ratio_ci"] = got or (None, None)
    if args.json:
        print(json.dumps({"workloads": results, "skipped": skipped, "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "pyspy": pyspy_exe(),
                          "pyspy_problem": state["pyspy_problem"],
                          "traceml_problem": traceml_problem}, indent=2))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rounds} rounds; "
          "ratio: the median over rounds of the time per step over the same round's bare "
          "time, with its 95% interval")
    print(f"{'workload':13} {'bare/step':>11}  {'tool':<15} {'ratio':>7}  {'95% interval':<15} "
          f"{'+us/step':>8}")
    tools = (("bare_again", "A/A: bare"), ("nnprof", "nnprof"), ("nnprof_cpu", "nnprof cpu"),
             ("torch_profiler", "torch.profiler"), ("pyspy", "py-spy"),
             ("pyspy_nonblocking", "py-spy nb"), ("traceml", "TraceML"))
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
    print("A/A: the bare loop against itself, this machine's noise floor; nnprof cpu: the "
          "main thread's CPU time; py-spy: py-spy record -r 100 --pid (blocking); nb: "
          "--nonblocking")
    firsts = ", ".join(f"{name} {e['nnprof_first_steps_ms']:.1f} ms"
                       for name, e in results.items() if e.get("nnprof_first_steps_ms") is not None)
    if firsts:
        print(f"nnprof's first {WARM_STEPS} steps of a run (untimed above) cost more, once: "
              f"{firsts}")
    if state["pyspy_problem"]:
        print(f"py-spy: n/a, {state['pyspy_problem']}")
    if traceml_problem:
        print(f"TraceML: n/a, {traceml_problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
