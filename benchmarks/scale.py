"""How nnprof scales with the length of a run: memory, disk, and report times.

Profiles a trivial, very fast training loop (free steps: a tiny forward, backward
and optimizer step, no DataLoader) for --steps steps (default 100,000) and prints:

* the resident memory (VmRSS, read by the script itself) at several step counts,
  profiled and bare: it must stay flat, nnprof keeps no per-step state;
* the peak memory of the whole profiled process (``ru_maxrss`` from ``wait4``,
  finalisation and the end-of-run reports included) and of the bare script;
* the time the run takes to finalise after the script's last line (summary.json,
  report.html, tensorboard/ written at the end of every run);
* each file of the run directory and its size;
* the time to render the run again: ``nnprof report RUN --format json`` (reads
  summary.json), the same on a copy without summary.json (the summary rebuilt from
  steps.csv, as for a killed run), ``nnprof report RUN --format html -o FILE``, and
  the TensorBoard event files (``--format tensorboard`` when the CLI offers it, else
  the renderer called directly), each minus an ``nnprof --version`` start-up.

    python benchmarks/scale.py                  # 100k steps (about a minute on 2 cores)
    python benchmarks/scale.py --steps 20000    # quicker
    python benchmarks/scale.py --json           # one JSON object
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = r'''
import sys, time
import torch
from torch import nn

n = int(sys.argv[1])
marks = {int(m) for m in sys.argv[2].split(",")}


def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(8, 4), torch.randn(8, 1)
t0 = time.perf_counter()
for step in range(1, n + 1):
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step in marks:
        print(f"rss {step} {status('VmRSS')}", flush=True)
print(f"loop_s {time.perf_counter() - t0}", flush=True)
print(f"hwm {status('VmHWM')}", flush=True)
print(f"end_wall {time.time()!r}", flush=True)
'''


def nnprof_cmd() -> list:
    exe = Path(sys.executable).parent / "nnprof"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]


def run_measured(argv, cwd=None) -> dict:
    """Run ``argv``; its stdout, wall time, exit code and peak RSS (``wait4``)."""
    t0 = time.time()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    end = time.time()
    return {"rc": proc.returncode, "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"), "wall_s": end - t0, "end_wall": end,
            "maxrss_bytes": usage.ru_maxrss * 1024}


def timed(argv) -> tuple:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - t0, r


def parse_script(stdout: str) -> dict:
    rss = {int(m[0]): int(m[1]) for m in re.findall(r"^rss (\d+) (\d+)$", stdout, re.M)}
    get = lambda key, cast: cast(re.search(rf"^{key} (\S+)$", stdout, re.M).group(1))  # noqa
    return {"rss_bytes": rss, "loop_s": get("loop_s", float), "hwm_bytes": get("hwm", int),
            "end_wall": get("end_wall", float)}


def files_of(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file()}


def report_formats() -> list:
    r = subprocess.run(nnprof_cmd() + ["report", "--help"], capture_output=True, text=True)
    m = re.search(r"--format \{([^}]*)\}", r.stdout)
    return m.group(1).split(",") if m else []


TB_SNIPPET = r'''
import sys, time
from nnprof.run import Run
from nnprof.renderers import get
run = Run.load(sys.argv[1])
summary = run.summary()
t0 = time.perf_counter()
get("tensorboard").write(sys.argv[2], summary, run)
print(time.perf_counter() - t0)
'''


def measure_renders(run: Path, work: Path, startup: float) -> dict:
    out = {}
    cmd = nnprof_cmd()
    formats = report_formats()

    t, r = timed(cmd + ["report", str(run), "--format", "json"])
    out["report_json"] = _render_entry(t, startup, r)

    rebuilt = work / "no-summary"
    shutil.copytree(run, rebuilt, ignore=shutil.ignore_patterns("tensorboard", "report.html"))
    (rebuilt / "summary.json").unlink()
    t, r = timed(cmd + ["report", str(rebuilt), "--format", "json"])
    out["report_json_rebuilt"] = _render_entry(t, startup, r)

    html = work / "report.html"
    if "html" in formats:
        t, r = timed(cmd + ["report", str(run), "--format", "html", "-o", str(html)])
        out["html"] = _render_entry(t, startup, r, html)
    else:
        out["html"] = {"available": False, "why": "nnprof report has no --format html yet"}

    tb = work / "tensorboard"
    if "tensorboard" in formats:
        t, r = timed(cmd + ["report", str(run), "--format", "tensorboard", "-o", str(tb)])
        out["tensorboard"] = _render_entry(t, startup, r, tb)
        out["tensorboard"]["how"] = "nnprof report --format tensorboard"
    else:
        t, r = timed([sys.executable, "-c", TB_SNIPPET, str(run), str(tb)])
        if r.returncode == 0:
            out["tensorboard"] = {"available": True, "s": float(r.stdout.strip().splitlines()[-1]),
                                  "bytes": _size(tb),
                                  "how": "renderer called in-process (no CLI format yet)"}
        else:
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            out["tensorboard"] = {"available": False, "why": last}
    return out


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _render_entry(t, startup, r, path: Path = None) -> dict:
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"available": False, "why": f"exit {r.returncode}: {last}"}
    entry = {"available": True, "s": t, "s_minus_startup": max(0.0, t - startup)}
    if path is not None:
        entry["bytes"] = _size(path)
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare-python run")
    ap.add_argument("--keep", metavar="DIR", help="keep the run directory here")
    args = ap.parse_args()
    n = args.steps
    marks = sorted({max(1, int(n * f)) for f in (0.01, 0.1, 0.25, 0.5, 0.75, 1.0)})
    result = {"steps": n, "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="rel_scale_") as tmp:
        work = Path(tmp)
        script = work / "loop.py"
        script.write_text(SCRIPT)
        run = Path(args.keep) if args.keep else work / "run"
        argv = [str(script), str(n), ",".join(map(str, marks))]

        prof = run_measured(nnprof_cmd() + ["profile", "--quiet", "--no-progress", "--out",
                                            str(run), *argv])
        if prof["rc"] != 0:
            print(prof["stderr"][-3000:], file=sys.stderr)
            return 1
        inside = parse_script(prof["stdout"])
        result["nnprof"] = {
            "wall_s": prof["wall_s"], "loop_s": inside["loop_s"],
            "step_us": inside["loop_s"] / n * 1e6,
            "finalise_s": prof["end_wall"] - inside["end_wall"],
            "rss_bytes": inside["rss_bytes"], "script_hwm_bytes": inside["hwm_bytes"],
            "process_peak_bytes": prof["maxrss_bytes"]}
        if not args.no_bare:
            bare = run_measured([sys.executable, *argv])
            b = parse_script(bare["stdout"])
            result["bare"] = {"wall_s": bare["wall_s"], "loop_s": b["loop_s"],
                              "step_us": b["loop_s"] / n * 1e6, "rss_bytes": b["rss_bytes"],
                              "process_peak_bytes": bare["maxrss_bytes"]}
        result["run_dir_files"] = files_of(run)
        result["run_dir_bytes"] = sum(result["run_dir_files"].values())
        startup, _ = timed(nnprof_cmd() + ["--version"])
        result["cli_startup_s"] = startup
        result["renders"] = measure_renders(run, work, startup)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_table(result)
    return 0


def _mib(b) -> str:
    return f"{b / 2**20:8.1f} MiB"


def print_table(r: dict) -> None:
    p, b = r["nnprof"], r.get("bare")
    print(f"{r['steps']:,} free steps, python {r['python']}")
    print(f"\nresident memory (VmRSS) by step{'':10}{'nnprof':>12}{'bare':>13}")
    for step, rss in p["rss_bytes"].items():
        bare = _mib(b["rss_bytes"][step]) if b else "n/a"
        print(f"  step {step:>9,}{'':21}{_mib(rss)}{bare:>13}")
    first, last = min(p["rss_bytes"]), max(p["rss_bytes"])
    growth = p["rss_bytes"][last] - p["rss_bytes"][first]
    print(f"  growth step {first:,} -> {last:,}: {growth / 2**20:+.2f} MiB "
          f"({growth / max(1, last - first):+.1f} bytes/step)")
    print(f"peak RSS of the whole process (wait4)   {_mib(p['process_peak_bytes'])}"
          f"{_mib(b['process_peak_bytes']) if b else 'n/a':>13}")
    print(f"loop time per step                      {p['step_us']:8.1f} us "
          f"{(format(b['step_us'], '8.1f') + ' us') if b else 'n/a':>12}")
    print(f"finalisation after the script's end     {p['finalise_s']:8.2f} s "
          "(summary.json, report.html, tensorboard/)")
    print(f"\nrun directory: {r['run_dir_bytes'] / 2**20:.1f} MiB")
    for name, size in r["run_dir_files"].items():
        print(f"  {name:40} {size:>12,} B")
    print(f"\nrendering again (nnprof --version start-up: {r['cli_startup_s']:.2f} s)")
    labels = {"report_json": "nnprof report --format json",
              "report_json_rebuilt": "  ... without summary.json (rebuilt)",
              "html": "nnprof report --format html -o FILE",
              "tensorboard": "tensorboard event files"}
    for key, label in labels.items():
        e = r["renders"][key]
        if not e.get("available"):
            print(f"  {label:40} n/a: {e.get('why')}")
            continue
        extra = f", {e['bytes'] / 2**20:.1f} MiB" if "bytes" in e else ""
        net = f" ({e['s_minus_startup']:.2f} s after start-up)" if "s_minus_startup" in e else ""
        how = f" [{e['how']}]" if "how" in e else ""
        print(f"  {label:40} {e['s']:.2f} s{net}{extra}{how}")


if __name__ == "__main__":
    sys.exit(main())
