"""The merged view of a distributed run: ``RUN/summary.json``, ``RUN/steps.csv`` and
``RUN/report.html`` from the ranks' own run directories ``RUN/rank-<R>/``.

The usual keys of the merged summary (phases, step time, budget, bottleneck, ...) are
those of the **basis rank**: the straggler when there is one (the job's steps last as
long as its), else the lowest rank; ``distributed`` adds the per-rank view, the
straggler and the communication wait (:mod:`nnprof.analyses.ranks` states the rules).
Validation metrics are merged across the ranks that evaluated: confusion counts summed
pass by pass, losses weighted by each rank's samples (its confusion support, else its
evaluation steps); with only one evaluating rank, its own.
"""
from __future__ import annotations

import copy
import json
import os
import time
from typing import Optional

from ..run import Run, write_json
from . import proc_dirs, rank_dirs

STATUS_ORDER = ("crashed", "interrupted", "incomplete", "pruned", "stopped", "completed")
SKEW_POINTS = 2000  # the per-step skew chart's points at most
STEP_FIELDS = ("train_index", "wall_s", "slowest_rank", "gap_s", "skew_s")


class MergeError(Exception):
    """No rank run could be read; the message is one line."""


def _rank_view(run: Run, summary: dict) -> dict:
    steps = summary.get("steps") or {}
    host = summary.get("host") or {}
    loaders = [{"id": d.get("id"), "num_workers": d.get("num_workers"),
                "data_wait_s": d.get("data_wait_s"), "batch_s": d.get("batch_s")}
               for d in summary.get("loader") or []]
    meta = run.meta or {}
    ended = None
    if isinstance(meta.get("started_unix"), (int, float)):
        took = summary.get("wall_s")
        if not took:  # not finished (killed): its last step's end
            st = run.steps
            took = float((st["start_s"] + st["wall_s"]).max()) if len(st) else None
        if took:
            ended = float(meta["started_unix"]) + float(took)
    return {"status": summary.get("status"), "exit_code": summary.get("exit_code"),
            "ended_unix": ended,
            "steps": {"train": steps.get("train", 0), "eval": steps.get("eval", 0),
                      "total": steps.get("total", steps.get("train", 0) + steps.get("eval", 0))},
            "phases": summary.get("phases") or {},
            "step_time": summary.get("step_time") or {},
            "bottleneck": _rank_bottleneck(summary),
            "loaders": loaders, "workers_max": host.get("workers_max"),
            "host": meta.get("hostname"), "pid": meta.get("pid"),
            "node_rank": (meta.get("rank") or {}).get("node_rank")}


def _rank_bottleneck(summary: dict) -> Optional[str]:
    """The rank's own verdict, or ``waits for other ranks`` when most of its compute time
    is communication wait (its backward is long only because it waits)."""
    phases = summary.get("phases") or {}
    cw = (phases.get("comm_wait") or {}).get("share") or 0.0
    compute = sum((phases.get(p) or {}).get("share") or 0.0
                  for p in ("forward", "loss", "backward"))
    if cw >= 0.3 and cw >= 0.5 * compute:
        return "waits for other ranks"
    return (summary.get("bottleneck") or {}).get("verdict")


def _job_status(views: dict) -> tuple:
    """(status, exit code, the failed ranks) of the job from its ranks'."""
    def order(v):
        s = v.get("status")
        return STATUS_ORDER.index(s) if s in STATUS_ORDER else 0
    worst = min(views.values(), key=order)
    failed = [r for r, v in views.items() if v.get("status") in ("crashed", "incomplete")
              or (v.get("exit_code") not in (0, None) and v.get("status") != "interrupted")]
    code = worst.get("exit_code")
    return worst.get("status"), code, failed


def _merge_validation(runs: dict, summaries: dict) -> tuple:
    """(val_loss curve, metrics per pass) merged over the ranks that evaluated."""
    from ..analyses.metrics import validation_passes
    from ..summary import pass_metrics
    by_rank = {}
    for r, run in runs.items():
        passes = validation_passes(run.steps)
        if passes:
            by_rank[r] = (passes, run.metrics_passes)
    if not by_rank:
        return None, None
    if len(by_rank) == 1:
        (r,) = by_rank
        s = summaries[r]
        return (s.get("curves") or {}).get("val_loss") or [], s.get("metrics") or []
    n = min(len(p) for p, _ in by_rank.values())
    curve, merged_passes = [], []
    for i in range(n):
        total, weight, confusion = 0.0, 0.0, None
        for r, (passes, conf) in by_rank.items():
            p = passes[i]
            c = conf[i]["confusion"] if i < len(conf) else None
            support = sum(sum(row) for row in c) if c else 0
            w = float(support or p.get("steps") or 1)
            if p.get("loss") is not None:
                total += w * p["loss"]
                weight += w
            if c is not None:
                confusion = c if confusion is None else _add(confusion, c)
        first = next(iter(by_rank.values()))[0][i]
        if weight:
            curve.append([first["after_train_steps"], total / weight])
        if confusion is not None:
            conf0 = next(iter(by_rank.values()))[1]
            rec = dict(conf0[i]) if i < len(conf0) else {}
            rec["confusion"] = confusion
            merged_passes.append(rec)
    return curve, pass_metrics(merged_passes)


def _add(a, b):
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("confusion matrices of different sizes")
    return [[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def _load_runs(dirs: dict, label: str, notices: list) -> tuple:
    runs, summaries = {}, {}
    for r, folder in dirs.items():
        try:
            run = Run.load(folder)
            summaries[r] = run.summary()
            runs[r] = run
        except Exception as exc:  # one damaged run must not lose the rest
            why = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            notices.append(f"{label} {r}: cannot be read ({why})")
    return runs, summaries


def _processes(path: str, procs: dict) -> dict:
    """The job's processes: the runs of those that trained without a rank, and the
    record's line for every followed process (:mod:`.follow`)."""
    from .processes import read_record
    lines = read_record(path)
    return {"runs": {f"proc-{k}": v for k, v in procs.items()},
            "trained": [x for x in lines if x.get("trained")],
            "not_trained": [x for x in lines if x.get("trained") is False],
            "not_followed": [x for x in lines if x.get("followed") is False]}


def _unfollowed_notices(path: str) -> list:
    from .processes import read_record, unfollowed_notice
    return [unfollowed_notice(x.get("pid"), x.get("command") or [], x.get("why"), x.get("hint"))
            for x in read_record(path) if x.get("followed") is False]


def merge_processes(path: str) -> tuple:
    """Processes that each trained on their own (Hogwild workers updating one shared
    model): their steps add up (``steps.train`` is the number of updates over all of
    them); the phases, step time and verdicts are those of the process that ran the most
    train steps. Returns what :func:`merge` does, the per-step frame being every
    process's steps with a ``process`` column, and no aligned steps."""
    import pandas as pd
    notices: list = []
    runs, summaries = _load_runs(proc_dirs(path), "process", notices)
    if not runs:
        raise MergeError(f"{path}: none of the process runs can be read")
    views = {k: _rank_view(runs[k], summaries[k]) for k in sorted(runs)}
    basis = max(views, key=lambda k: (views[k]["steps"]["train"], -k))
    merged = copy.deepcopy(summaries[basis])
    status, code, failed = _job_status(views)
    steps = dict(merged.get("steps") or {})
    for key in ("train", "eval", "total"):
        steps[key] = int(sum(v["steps"][key] or 0 for v in views.values()))
    for k in failed:
        notices.append(f"process {k} {views[k].get('status')}")
    frames = []
    for k in sorted(runs):
        st = runs[k].steps
        if len(st):
            frames.append(st.assign(process=k))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    merged.update({
        "status": status, "exit_code": code, "steps": steps,
        "notices": notices + _unfollowed_notices(path) + [
            f"{len(runs)} processes trained on their own (no process "
                              f"group): steps are summed over them; the phases, step time "
                              f"and verdicts are proc-{basis}'s (the most train steps); "
                              "per-process figures under processes"]
        + list(merged.get("notices") or []),
        "processes": dict(_processes(path, views), basis=f"proc-{basis}"),
    })
    return merged, runs[basis], table, None


JOB_FILE = "job.json"  # the main process's outcome when nnprof followed the others


def merge(path: str) -> tuple:
    """(merged summary, the basis rank's Run, the per-step frame, the aligned steps) of
    the distributed run at ``path``."""
    out = _merge(path)
    try:
        with open(os.path.join(path, JOB_FILE)) as fh:
            job = json.load(fh)
        job_outcome(out[0], job.get("status"), job.get("exit_code"))
    except (OSError, ValueError, AttributeError):
        pass
    return out


def _merge(path: str) -> tuple:
    from ..analyses import ranks as rk
    dirs = rank_dirs(path)
    if not dirs and proc_dirs(path):
        return merge_processes(path)
    if not dirs:
        raise MergeError(f"{path}: no rank-<R> run directories to merge")
    notices: list = []
    runs, summaries = _load_runs(dirs, "rank", notices)
    if not runs:
        raise MergeError(f"{path}: none of the rank runs can be read")
    ranks = sorted(runs)
    views = {r: _rank_view(runs[r], summaries[r]) for r in ranks}
    aligned = rk.align({r: runs[r].steps for r in ranks})
    table = rk.per_step(aligned, ranks)
    straggler = rk.straggler(aligned, ranks)
    basis = straggler["rank"] if straggler else ranks[0]
    merged = copy.deepcopy(summaries[basis])
    status, code, failed = _job_status(views)
    meta = runs[basis].meta or {}
    world = int((meta.get("rank") or {}).get("world_size") or len(dirs))
    nodes = sorted({v["node_rank"] for v in views.values() if v.get("node_rank") is not None})
    ends = {r: views[r]["ended_unix"] for r in failed if views[r].get("ended_unix")}
    if len(failed) > 1 and len(ends) > 1:
        first = min(ends, key=ends.get)
        notices.append(f"rank {first} failed first ({views[first].get('status')}, exit "
                       f"{views[first].get('exit_code')}); the other failed ranks ended up "
                       f"to {max(ends.values()) - ends[first]:.1f} s after it")
    for r in failed:
        v = views[r]
        notices.append(f"rank {r} {v.get('status')}" + (
            f" (exit {v.get('exit_code')})" if v.get("exit_code") not in (None, 0) else "")
            + ("; its run was not finished: merged from what it wrote"
               if v.get("status") == "incomplete" else ""))
    missing = [r for r in range(world) if r not in dirs]
    if missing:
        notices.append(f"no run directory for rank(s) {', '.join(map(str, missing))} here "
                       "(another node's: nnprof merge RUN_A RUN_B ...)")
    if len(ranks) > 1:
        short = [r for r in ranks if views[r]["steps"]["train"] != len(aligned)]
        if short:
            notices.append(f"{len(aligned)} train steps ran on every rank; rank(s) "
                           f"{', '.join(map(str, short))} ran a different number")
    if len(table):
        steady = rk.steady(table)
        wall = steady["wall_s"]
        merged["step_time"] = dict(merged.get("step_time") or {}, mean_s=float(wall.mean()),
                                   p50_s=float(wall.quantile(0.5)),
                                   p95_s=float(wall.quantile(0.95)))
    curve, metrics = _merge_validation(runs, summaries)
    if curve is not None:
        merged.setdefault("curves", {})["val_loss"] = curve
        merged["metrics"] = metrics
    pts = table.iloc[::max(1, -(-len(table) // SKEW_POINTS))] if len(table) else table
    merged.update({
        "status": status, "exit_code": code,
        "notices": notices + _unfollowed_notices(path)
        + [f"the phases, step time and verdicts are rank {basis}'s"
                              + (" (the straggler)" if straggler else "")
                              + "; per-rank figures under distributed"]
        + list(merged.get("notices") or []),
        "distributed": {
            "world_size": world, "nodes": len(nodes) or 1, "basis_rank": basis,
            "ranks": {str(r): views[r] for r in ranks},
            "failed_ranks": failed, "aligned_steps": int(len(aligned)),
            "steps": {k: int(sum(v["steps"][k] or 0 for v in views.values()))
                      for k in ("train", "eval", "total")},
            "straggler": straggler, "comm_wait": {str(r): v for r, v in
                                                  rk.comm_wait({r: views[r]["phases"]
                                                                for r in ranks}).items()},
            "skew": {"train_index": [int(x) for x in pts["train_index"]] if len(pts) else [],
                     "gap_s": [float(x) for x in pts["gap_s"]] if len(pts) else [],
                     "slowest_rank": [int(x) for x in pts["slowest_rank"]] if len(pts) else []},
        },
    })
    procs = proc_dirs(path)
    if procs or os.path.exists(os.path.join(path, "processes.jsonl")):
        proc_runs, proc_summaries = _load_runs(procs, "process", notices)
        merged["processes"] = _processes(path, {k: _rank_view(proc_runs[k], proc_summaries[k])
                                                for k in sorted(proc_runs)})
    return merged, runs[basis], table, aligned


def job_outcome(merged: dict, status: str, exit_code) -> None:
    """The job's status and exit code when nnprof ran its main process (the other
    processes followed): the main process's, as python would exit; ``crashed`` when it
    completed but a followed process crashed (named in the notices)."""
    views = dict((merged.get("distributed") or {}).get("ranks") or {})
    views.update((merged.get("processes") or {}).get("runs") or {})
    crashed = any(v.get("status") == "crashed" for v in views.values())
    merged["status"] = "crashed" if status == "completed" and crashed else status
    merged["exit_code"] = exit_code


def write_merged(path: str, job: Optional[tuple] = None) -> tuple:
    """Merge and write ``summary.json``, ``steps.csv`` and ``report.html`` at ``path``.
    ``job``: (status, exit code) of the main process when nnprof followed the others
    (see :func:`job_outcome`). Returns (summary, basis Run, notices of reports that could
    not be written)."""
    if job is not None:  # kept, so that ``nnprof report RUN`` merges to the same outcome
        try:
            write_json(os.path.join(path, JOB_FILE), {"status": job[0], "exit_code": job[1]})
        except OSError:
            pass
    merged, basis_run, table, aligned = merge(path)
    if job is not None:
        job_outcome(merged, *job)
    problems = []
    try:
        if aligned is None:  # processes without ranks: their steps, one after the other
            _write_csv(os.path.join(path, "steps.csv"), table)
        else:
            _write_steps(os.path.join(path, "steps.csv"), table, aligned,
                         sorted(int(r) for r in merged["distributed"]["ranks"]))
    except OSError as exc:
        problems.append(f"cannot write steps.csv: {exc.strerror or exc}")
    try:
        write_json(os.path.join(path, "summary.json"), merged)
    except OSError as exc:
        problems.append(f"cannot write summary.json: {exc.strerror or exc}")
    try:
        from ..renderers import get, write_text
        write_text(os.path.join(path, "report.html"), get("html").render(merged, basis_run))
    except Exception as exc:  # a report must never cost the others
        problems.append(f"html report not written: {exc.__class__.__name__}: {exc}")
    if problems:
        merged.setdefault("notices", []).extend(problems)
    return merged, basis_run, problems


def _write_steps(path: str, table, aligned, ranks: list) -> None:
    """One row per aligned train step: the job's wall time, slowest rank, gap and skew,
    then each rank's wall time, own work and communication wait."""
    import pandas as pd
    out = pd.DataFrame({"train_index": table["train_index"].astype(int),
                        "wall_s": table["wall_s"], "slowest_rank": table["slowest_rank"],
                        "gap_s": table["gap_s"], "skew_s": table["skew_s"]})
    for r in ranks:
        for k, col in (("wall_s", f"wall_{r}"), ("own_s", f"own_{r}"),
                       ("comm_wait_s", f"comm_{r}")):
            out[f"rank{r}_{k}"] = aligned[col].to_numpy() if len(aligned) else []
    _write_csv(path, out)


def _write_csv(path: str, frame) -> None:
    text = frame.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def finished(folder: str) -> bool:
    """A rank's run is over: its summary is written, or its process is gone (this host)."""
    if os.path.exists(os.path.join(folder, "summary.json")):
        return True
    try:
        with open(os.path.join(folder, "meta.json")) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return False
    import socket
    pid = meta.get("pid")
    if meta.get("hostname") not in (None, socket.gethostname()) or not isinstance(pid, int):
        return False
    try:
        import psutil
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except Exception:
        return False


def wait_for_ranks(path: str, expected: list, timeout_s: float = 120.0,
                   poll_s: float = 0.2) -> list:
    """Wait until the runs of ``expected`` ranks (and of any other rank found) are over,
    or ``timeout_s`` passed; returns the ranks still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        dirs = rank_dirs(path)
        want = sorted(set(expected) | set(dirs))
        pending = [r for r in want if r not in dirs or not finished(dirs[r])]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(poll_s)


def merge_quietly(path: str) -> Optional[str]:
    """Merge at ``path``; a one-line reason when it could not be done, else None."""
    try:
        write_merged(path)
    except MergeError as exc:
        return str(exc)
    except Exception as exc:
        return f"merge failed: {exc.__class__.__name__}: {exc}"
    return None
