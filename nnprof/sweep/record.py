"""``sweep.json``: the leaderboard record of a sweep, built from the study (every
trial of it, whichever machine ran it) and what this sweep process measured.

Time saved by pruning: a pruned trial stopped at resource r after training for a
seconds (its first step's start to its last step's end) would have trained on, at
its own pace, to R, the median resource the complete trials reached: a * (R / r - 1)
trial-seconds more (0 when r >= R). Start-up and reports cost a trial the same
however far it trains, so they are not scaled.
"""
from __future__ import annotations

import math
import os
from statistics import median
from typing import Optional

SCHEMA_VERSION = 1
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
          "WAITING": "running"}
SAVED_RULE = ("a pruned trial would have trained on to the median resource the complete "
              "trials reached, at its own pace (start-up and reports not scaled)")


def _finite(v) -> Optional[float]:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def trial_entry(t, sweep_dir: str, live: Optional[dict] = None) -> dict:
    """One trial of the study as the record shows it; ``live``: what this process
    knows of a trial it is running (its intermediate values so far, step time)."""
    a = dict(t.user_attrs)
    if live:
        a.update({k: v for k, v in live.items() if v is not None})
    state = STATES.get(t.state.name, t.state.name.lower())
    run_dir = a.get("run_dir")
    if run_dir and (a.get("sweep_dir") != os.path.abspath(sweep_dir)):
        run_dir = f"{a.get('host', '?')}:{os.path.join(a.get('sweep_dir') or '', run_dir)}"
    inter = sorted((int(k), v) for k, v in t.intermediate_values.items())
    return {
        "number": t.number, "params": a.get("values") or dict(t.params), "args": a.get("args"),
        "state": state,
        "value": _finite(t.value) if state == "complete" else None,
        "intermediate": [[k, v] for k, v in inter],
        "pruned_at": a.get("pruned_at") if state == "pruned" else None,
        "run_dir": run_dir, "step_time_s": a.get("step_time_s"),
        "bottleneck": a.get("bottleneck"), "exit_code": a.get("exit_code"),
        "duration_s": a.get("duration_s"), "active_s": a.get("active_s"),
        "position": a.get("position"),
        "host": a.get("host"), "error": a.get("error"), "tail": a.get("tail") or [],
    }


def pruning_stats(trials: list) -> dict:
    spent = sum(_finite(t.get("duration_s")) or 0.0 for t in trials)
    ends = [_finite(t.get("position")) for t in trials if t["state"] == "complete"]
    ends = [e for e in ends if e]
    reach = median(ends) if ends else None
    saved = 0.0
    pruned = [t for t in trials if t["state"] == "pruned"]
    for t in pruned:
        r, d = _finite(t.get("position")), _finite(t.get("active_s"))
        if reach and r and d and reach > r:
            saved += d * (reach / r - 1)
    return {"pruned": len(pruned), "trial_seconds": round(spent, 3),
            "saved_s": round(saved, 3) if reach else None,
            "saved_share": round(saved / (spent + saved), 4) if reach and spent + saved > 0
            else None,
            "rule": SAVED_RULE}


def build_record(study, sweep_dir: str, settings: dict, *, status: str, script: str,
                 argv: list, storage: str, started_at: str, wall_s: float,
                 exit_code: Optional[int] = None, reason: Optional[str] = None,
                 live: Optional[dict] = None, notices: Optional[list] = None) -> dict:
    trials = [trial_entry(t, sweep_dir, (live or {}).get(t.number))
              for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    maximize = settings.get("direction") == "maximize"
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    best = None
    if done:
        b = (max if maximize else min)(done, key=lambda t: t["value"])
        best = {k: b[k] for k in ("number", "value", "params", "run_dir")}
    return {
        "schema_version": SCHEMA_VERSION, "kind": "sweep", "status": status,
        "exit_code": exit_code, "reason": reason, "script": script, "argv": list(argv),
        "study": study.study_name, "storage": storage, "started_at": started_at,
        "wall_s": round(wall_s, 3), "settings": settings, "trials": trials, "best": best,
        "pruning": pruning_stats(trials), "notices": list(notices or []),
    }


def load_record(path: str) -> dict:
    """``sweep.json`` of a sweep directory; ValueError with one line when it is not one."""
    import json
    file = os.path.join(path, "sweep.json")
    try:
        with open(file, encoding="utf-8") as fh:
            rec = json.load(fh)
    except OSError as exc:
        raise ValueError(f"{file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(rec, dict) or rec.get("kind") != "sweep" or \
            not isinstance(rec.get("trials"), list):
        raise ValueError(f"{file}: not a sweep record")
    return rec
