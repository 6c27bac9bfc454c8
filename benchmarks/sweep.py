"""What pruning and --parallel buy in ``nnprof sweep``, measured side by side.

1. Pruning: the same sweep (same trials, same seed) with ``--prune none`` and with
   ``--prune median`` (and any other --prunes given) on a script with a known best
   region of its learning rate (a small classifier, SGD: validation loss lowest for lr
   in [0.1, 2]; below 0.01 it hardly learns; each epoch also waits --epoch-s seconds,
   the stand-in for real work). Printed: trial-seconds spent (the sum of the trials'
   durations), wall time, trials pruned, the best value and its lr, and whether that lr
   lies in the known region, and the fixed part of a trial (start-up: python, torch's
   import, the script's set-up; then nnprof's reports), which pruning cannot save.
   Run for each --epoch-s (default 0.5 and 2: trials of about 6 and 21 s of training),
   since the share saved grows with how long a trial trains next to that fixed part.
   Goal: pruning saves >= 40% of trial-seconds for the same best value.
2. Start-up: the fixed part of a trial (its duration less the time its script ran steps)
   with trials forked from the sweep's warm server (the default) and with
   ``--fresh-trials``, next to one plain ``python script.py`` run of the same script
   (one epoch, no waiting: python's start-up, torch's import and the script's set-up are
   most of it). Goal: a forked trial's fixed part under half of the plain run.
3. --parallel: the same trials with --parallel 1 and 2, once for trials that sleep
   (input-bound: waiting, as for data) and once for CPU-bound trials (matrix products
   on every core torch is given). Goal: >= 1.6x less wall time for sleeping trials on
   2 cores; for CPU-bound trials, what it does is printed as measured.

    python benchmarks/sweep.py                   # all parts (several minutes on 2 cores)
    python benchmarks/sweep.py --only startup
    python benchmarks/sweep.py --only pruning --trials 16
    python benchmarks/sweep.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = r'''
import argparse, time
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=0.1)
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--epoch-s", type=float, default=0.5)
ap.add_argument("--mode", choices=("train", "sleep", "cpu"), default="train")
ap.add_argument("--work-s", type=float, default=3.0)
args = ap.parse_args()
torch.manual_seed(0)
if args.mode != "train":      # 20 steps: each waits (sleep) or computes (cpu), then learns
    w = torch.zeros(8, requires_grad=True)
    opt = torch.optim.SGD([w], lr=args.lr)
    a = torch.randn(768, 768)
    for step in range(20):
        if args.mode == "sleep":  # input-bound: waiting, as for data
            time.sleep(args.work_s / 20)
        else:                     # CPU-bound: a fixed amount of arithmetic per step
            for _ in range(int(args.work_s * 2)):
                a = torch.tanh(a @ a / 768)
        loss = ((w - 1) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise SystemExit(0)
x = torch.randn(1152, 16)
y = (x @ torch.randn(16, 4)).argmax(1)
train = DataLoader(TensorDataset(x[:1024], y[:1024]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(x[1024:], y[1024:]), batch_size=128)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    for xb, yb in train:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    time.sleep(args.epoch_s)
    with torch.no_grad():
        v = sum(loss_fn(model(xb), yb).item() for xb, yb in val)
    print(f"epoch {epoch} val {v:.4f}", flush=True)
'''
REGION = (0.1, 2.0)


def nnprof(args: list, cwd: str) -> tuple:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "nnprof", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"sweep failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall, r


def run_sweep(tmp: str, name: str, options: list, script_args: list) -> dict:
    out = os.path.join(tmp, name)
    wall, _ = nnprof(["sweep", "--out", out, "--no-live", *options, os.path.join(tmp, "t.py"),
                      *script_args], tmp)
    rec = json.loads(Path(out, "sweep.json").read_text())
    trials = rec["trials"]
    best = rec.get("best") or {}
    return {"name": name, "wall_s": wall,
            "trial_s": sum(t.get("duration_s") or 0 for t in trials),
            "trials": len(trials), "pruned": sum(t["state"] == "pruned" for t in trials),
            "best": best.get("value"), "best_lr": (best.get("params") or {}).get("lr"),
            "saved_s_estimate": rec["pruning"].get("saved_s"),
            "fixed_s": _median([t["duration_s"] - t["active_s"] for t in trials
                                if t["state"] == "complete" and t.get("duration_s")
                                and t.get("active_s") is not None])}


def _median(xs: list):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def pruning(tmp: str, args) -> list:
    common = ["--trials", args.trials, "--parallel", args.parallel, "--seed", args.seed,
              "-p", "lr=loguniform:1e-4:3", *(["--fresh-trials"] if args.fresh_trials else [])]
    rows = []
    for epoch_s in args.epoch_s:
        script = ["--epochs", args.epochs, "--epoch-s", epoch_s]
        group = [run_sweep(tmp, f"none-{epoch_s}", [*common, "--prune", "none"], script)]
        for rule in args.prune:
            group.append(run_sweep(tmp, f"{rule.replace(':', '-')}-{epoch_s}",
                                   [*common, "--prune", rule], script))
        for r in group:
            r["epoch_s"], r["rule"] = epoch_s, r["name"].rsplit("-", 1)[0]
        rows += group
    return rows


def startup(tmp: str, args) -> dict:
    plain = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(tmp, "t.py"), "--epochs", "1",
                        "--epoch-s", "0"], cwd=tmp, capture_output=True, check=True)
        plain.append(time.perf_counter() - t0)
    rows = {"plain_s": _median(plain)}
    for name, extra in (("forked", []), ("fresh", ["--fresh-trials"])):
        rows[name] = run_sweep(tmp, f"start-{name}", ["--trials", 4, "--parallel", 1,
                                                      "--prune", "none", "--seed", 1,
                                                      "-p", "lr=uniform:0.1:1", *extra],
                               ["--epochs", 3, "--epoch-s", 0.5])
    return rows


def parallel(tmp: str, args) -> list:
    rows = []
    for mode in ("sleep", "cpu"):
        for p in (1, 2):
            r = run_sweep(tmp, f"{mode}-p{p}", ["--trials", 4, "--parallel", p, "--prune",
                                               "none", "--metric", "train_loss",
                                               "-p", "lr=uniform:0.1:1"],
                          ["--mode", mode, "--work-s", args.work_s])
            r["mode"], r["parallel"] = mode, p
            rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("pruning", "startup", "parallel"))
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--epoch-s", type=lambda t: [float(v) for v in t.split(",")],
                    default=[0.5, 2.0], help="seconds each epoch waits, comma-separated "
                    "(one pruning comparison each; default 0.5,2)")
    ap.add_argument("--work-s", type=float, default=4.0)
    ap.add_argument("--prune", action="append", default=None,
                    help="pruners to compare with none (default: median)")
    ap.add_argument("--fresh-trials", action="store_true",
                    help="pruning: trials as new processes (nnprof sweep --fresh-trials), "
                         "to compare with the default warm start")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.prune = args.prune or ["median"]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "t.py").write_text(SCRIPT)
        if args.only in (None, "pruning"):
            result["pruning"] = pruning(tmp, args)
        if args.only in (None, "startup"):
            result["startup"] = startup(tmp, args)
        if args.only in (None, "parallel"):
            result["parallel"] = parallel(tmp, args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "pruning" in result:
        print(f"pruning: {args.trials} trials, --parallel {args.parallel}, seed {args.seed}, "
              f"{'fresh' if args.fresh_trials else 'forked'} trials, "
              f"{args.epochs} epochs each waiting epoch-s; known best lr region "
              f"{REGION[0]}..{REGION[1]}; fixed: a complete trial's start-up and reports")
        print(f"{'epoch-s':>7}  {'prune':<10}{'trial-s':>9}{'saved':>8}{'wall s':>8}"
              f"{'pruned':>8}{'fixed s':>9}{'best val':>10}{'best lr':>10}  in region")
        base = {}
        for r in result["pruning"]:
            b = base.setdefault(r["epoch_s"], r)
            saved = 1 - r["trial_s"] / b["trial_s"] if b["trial_s"] else 0
            lr = r["best_lr"]
            inside = lr is not None and REGION[0] <= lr <= REGION[1]
            fixed = r["fixed_s"] if r["fixed_s"] is not None else float("nan")
            print(f"{r['epoch_s']:>7}  {r['rule']:<10}{r['trial_s']:>9.1f}{saved:>8.0%}"
                  f"{r['wall_s']:>8.1f}{r['pruned']:>8}{fixed:>9.1f}"
                  f"{r['best'] or float('nan'):>10.4f}"
                  f"{lr or float('nan'):>10.4g}  {'yes' if inside else 'NO'}")
    if "startup" in result:
        st = result["startup"]
        print(f"\nstart-up: the fixed part of a trial (median of 4), against one plain "
              f"`python script.py --epochs 1 --epoch-s 0` run ({st['plain_s']:.2f} s)")
        print(f"{'trials':<10}{'fixed s':>9}{'of plain':>10}{'trial-s':>9}{'wall s':>8}")
        for name in ("forked", "fresh"):
            r = st[name]
            print(f"{name:<10}{r['fixed_s']:>9.2f}{r['fixed_s'] / st['plain_s']:>9.0%}"
                  f"{r['trial_s']:>9.1f}{r['wall_s']:>8.1f}")
    if "parallel" in result:
        rows = {(r["mode"], r["parallel"]): r for r in result["parallel"]}
        print(f"\n--parallel: 4 trials of {args.work_s} s of work, {os.cpu_count()} cores")
        print(f"{'trials':<12}{'p=1 wall s':>12}{'p=2 wall s':>12}{'speed-up':>10}")
        for mode in ("sleep", "cpu"):
            a, b = rows[(mode, 1)]["wall_s"], rows[(mode, 2)]["wall_s"]
            print(f"{mode:<12}{a:>12.1f}{b:>12.1f}{a / b:>9.2f}x")


if __name__ == "__main__":
    main()
