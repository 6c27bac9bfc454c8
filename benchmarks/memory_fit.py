"""Does nnprof's memory projection hold? For each script, nnprof profiles it at batch B
and predicts the peak at 2B and 4B; the script then runs plain at B, 2B and 4B and its
own peak resident memory (the child's ``ru_maxrss``) is the truth. Prints a table:

    python benchmarks/memory_fit.py            # three scripts, about 8 minutes on 2 cores
    python benchmarks/memory_fit.py --repeat 1 # one run of each: quicker, noisier
    python benchmarks/memory_fit.py --json

A process's peak resident memory varies from run to run by up to 10% (the allocator
keeps freed blocks or gives them back depending on timing), so each figure is the
median of ``--repeat`` runs (default 3), the prediction's as well.

Scripts (``benchmarks/scripts``): ``mem_mlp.py`` (no DataLoader: the batch is read from
the model's first input), ``mem_conv.py`` (a conv net over a DataLoader), ``mem_lm.py``
(a small transformer language model over a DataLoader).
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
CASES = (("mem_mlp.py", 256), ("mem_conv.py", 32), ("mem_lm.py", 8))


def peak_rss(cmd) -> int:
    """The child's peak resident bytes."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{cmd} failed ({status})")
    return usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def predicted(script: Path, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "nnprof", "profile", "--quiet", "--no-progress",
                        "--out", str(out), str(script), "--batch", str(batch)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mem = json.loads((out / "summary.json").read_text())["memory"]
    return {"breakdown": mem["breakdown"], "fits": mem["fits"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for name, batch in CASES:
        script = HERE / "scripts" / name
        preds = [predicted(script, batch) for _ in range(args.repeat)]
        real = {k: int(statistics.median(
            peak_rss([sys.executable, str(script), "--batch", str(batch * k)])
            for _ in range(args.repeat))) for k in (1, 2, 4)}
        b = preds[0]["breakdown"]
        f = {key: int(statistics.median(p["fits"][key] for p in preds))
             for key in ("peak_at_1x_bytes", "peak_at_2x_bytes", "peak_at_4x_bytes")}
        row = {"script": name, "batch": batch, "batch_from": b.get("batch_from"),
               "activations_bytes": b.get("activations"),
               "real_1x": real[1], "real_2x": real[2], "real_4x": real[4],
               "pred_1x": f["peak_at_1x_bytes"], "pred_2x": f["peak_at_2x_bytes"],
               "pred_4x": f["peak_at_4x_bytes"]}
        for k in (1, 2, 4):
            row[f"err_{k}x"] = row[f"pred_{k}x"] / row[f"real_{k}x"] - 1
        rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return
    mb = lambda v: f"{v / 1e6:,.0f}"  # noqa: E731
    print("| script | batch | activations (MB) | real 1x / 2x / 4x (MB) | predicted 1x / 2x / 4x "
          "(MB) | error 1x / 2x / 4x |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['script']} | {r['batch']} ({r['batch_from']}) | "
              f"{r['activations_bytes'] / 1e6:.1f} | "
              f"{mb(r['real_1x'])} / {mb(r['real_2x'])} / {mb(r['real_4x'])} | "
              f"{mb(r['pred_1x'])} / {mb(r['pred_2x'])} / {mb(r['pred_4x'])} | "
              + " / ".join(f"{r[f'err_{k}x'] * 100:+.1f}%" for k in (1, 2, 4)) + " |")


if __name__ == "__main__":
    main()
