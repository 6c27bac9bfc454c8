"""Does ``nnprof project`` hold? A job that is input-bound in its main process and has
28 MB of gradients (``tests/scripts/scale_job.py``, shared with its end-to-end test) is
profiled as it is (``num_workers=0``, one process), with 1 and 2 loader workers, and as 2 ranks
(``nnprof profile --nproc-per-node 2``, DDP over gloo). Then:

* from the run without workers: the projection for 1 and 2 workers;
* from the single-process run: the projection for 2 ranks, over the link measured here
  (``--link measure``: a gloo all-reduce among 2 local processes);
* from the 2-rank run: the projection for 1 rank (its own measured communication);

each against the real run's steady step time, next to "nothing changes" (the source
run's own step time) as the naive baseline. A run's step time varies from run to run
on a small shared machine (the batch made in the main process by up to 20%), so each
figure is the median of ``--repeat`` runs (default 3). Prints a table:

    python benchmarks/scaling.py              # about 2 minutes on 2 cores
    python benchmarks/scaling.py --repeat 1   # one run of each: quicker, noisier
    python benchmarks/scaling.py --json

Every process runs with one intra-op thread (a 2-core machine runs 2 ranks at most).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "tests" / "scripts" / "scale_job.py"  # shared with its test
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def nnprof(*args, capture=False):
    r = subprocess.run([sys.executable, "-m", "nnprof", *map(str, args)], env=ENV,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"nnprof {' '.join(map(str, args))} failed ({r.returncode}):\n"
                         + r.stderr[-2000:])
    return r.stdout


def profile(out: Path, job: list, ranks: int = 1) -> float:
    extra = ["--nproc-per-node", ranks] if ranks > 1 else []
    nnprof("profile", "--quiet", "--no-progress", "--out", out, *extra, SCRIPT, *job)
    return json.loads((out / "summary.json").read_text())["step_time"]["mean_s"]


def projected(run: Path, *args) -> dict:
    out = json.loads(nnprof("project", run, "--json", *args, capture=True))
    return {(p["workers"], p["ranks"]): p for p in out["projections"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    job = ["--steps", args.steps]
    cases = {"1 worker": [], "2 workers": [], "2 ranks": [], "1 rank": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            real = {"k0": profile(tmp / "k0", job),
                    "k1": profile(tmp / "k1", job + ["--workers", 1]),
                    "k2": profile(tmp / "k2", job + ["--workers", 2]),
                    "r2": profile(tmp / "r2", job, ranks=2)}
            workers = projected(tmp / "k0", "--workers", "1,2", "--ranks", "1")
            ranks = projected(tmp / "k0", "--workers", "0", "--ranks", "2", "--link", "measure")
            back = projected(tmp / "r2", "--workers", "0", "--ranks", "1")
            cases["1 worker"].append(("no workers", workers[(1, 1)], real["k1"], real["k0"]))
            cases["2 workers"].append(("no workers", workers[(2, 1)], real["k2"], real["k0"]))
            cases["2 ranks"].append(("1 process", ranks[(0, 2)], real["r2"], real["k0"]))
            cases["1 rank"].append(("2 ranks", back[(0, 1)], real["k0"], real["r2"]))
    rows = []
    for name, runs in cases.items():
        pred = statistics.median(p["step_s"] for _, p, _, _ in runs)
        real = statistics.median(r for _, _, r, _ in runs)
        naive = statistics.median(n for _, _, _, n in runs)
        rows.append({"target": name, "from": runs[0][0], "projected_s": pred, "real_s": real,
                     "error": pred / real - 1, "naive_s": naive, "naive_error": naive / real - 1,
                     "bound": runs[-1][1]["bound"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'target':<10} {'from':<11} {'projected':>10} {'real':>9} {'error':>7}   "
          f"{'nothing changes':>15} {'error':>7}  bound")
    for r in rows:
        print(f"{r['target']:<10} {r['from']:<11} {r['projected_s'] * 1e3:>8.1f}ms "
              f"{r['real_s'] * 1e3:>7.1f}ms {r['error'] * 100:>+6.1f}%   "
              f"{r['naive_s'] * 1e3:>13.1f}ms {r['naive_error'] * 100:>+6.1f}%  {r['bound']}")


if __name__ == "__main__":
    main()
