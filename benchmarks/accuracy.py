"""Attribution accuracy: known costs injected per phase, against what nnprof reports.

Runs tests/scripts/sleepy.py through the real CLI with a sleep in every phase
(fetch, transform, collate in the loader; prep, forward, loss, backward,
optimizer, other in the loop), without and with loader workers, and prints the
injected truth beside the measured per-step means and the error:

    python benchmarks/accuracy.py            # 30 steps per workload
    python benchmarks/accuracy.py --steps 10 --json

Means are over train steps after the first (start-up), as the verdicts use.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "sleepy.py")
TRUTH = {"fetch": 0.012, "transform": 0.006, "collate": 0.003, "prep": 0.004,
         "forward": 0.010, "loss": 0.003, "backward": 0.008, "optimizer": 0.005, "other": 0.006}
WORKLOADS = {"main process": [], "2 workers (fork)": ["--workers", "2", "--persistent"]}


def measure(extra: list, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        args = [sys.executable, "-m", "nnprof", "profile", "--quiet", "--no-progress", "--out",
                out, SCRIPT, "--steps", str(steps)] + extra
        for k, v in TRUTH.items():
            args += [f"--{k}", str(v)]
        r = subprocess.run(args, capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        if r.returncode != 0:
            raise SystemExit(f"profile failed: {r.stderr.strip().splitlines()[-1:]}")
        steps_df = pd.read_csv(os.path.join(out, "steps.csv"))
        train = steps_df[steps_df["kind"] == "train"].iloc[1:]
        got = {p: float(train[f"{p}_s"].mean()) for p in TRUTH if f"{p}_s" in train}
        with open(os.path.join(out, "summary.json")) as fh:
            summary = json.load(fh)
        for p in ("fetch", "transform", "collate"):
            if summary["phases"][p].get("where") == "workers":
                got[p] = summary["phases"][p]["mean_s"]
        got["data (wait)"] = float(train["data_s"].mean())
        return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    for name, extra in WORKLOADS.items():
        got = measure(extra, args.steps)
        rows = {}
        for p, truth in TRUTH.items():
            m = got[p]
            rows[p] = {"truth_s": truth, "measured_s": m, "error_s": m - truth,
                       "error_rel": (m - truth) / truth}
        rows["data (wait)"] = {"measured_s": got["data (wait)"]}
        results[name] = rows
    if args.json:
        print(json.dumps({"workloads": results}, indent=2))
        return 0
    for name, rows in results.items():
        print(f"\n{name}")
        print(f"{'phase':12} {'truth ms':>9} {'nnprof ms':>10} {'error ms':>9} {'error':>7}")
        for p, r in rows.items():
            if "truth_s" not in r:
                print(f"{p:12} {'':>9} {r['measured_s'] * 1e3:10.2f}")
                continue
            print(f"{p:12} {r['truth_s'] * 1e3:9.2f} {r['measured_s'] * 1e3:10.2f} "
                  f"{r['error_s'] * 1e3:9.2f} {r['error_rel'] * 100:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
