"""Loader start-up and shutdown: the cost of a pass over a loader, apart from its steps."""
from __future__ import annotations

from typing import Optional

from . import Finding

STARTUP_SHARE = 0.10  # of the time in steps: start-ups worth removing
SHUTDOWN_S = 0.5      # one worker shutdown that long is worth a line


def loader_startup(loaders: list, time_in_steps_s: float, budget_s: float) -> Optional[Finding]:
    """Rule, per loader with workers (``loaders`` from ``loader_stats``):

    * start-up of a pass = its ``iter()`` + the wait for its first batch when the
      pass started workers (workers start asynchronously: the spawn, the imports and
      ``worker_init_fn`` land in the first ``next()``). It is charged to no step.
    * verdict ``restarts`` (``warn``) when a loader without persistent workers was
      started in 2 or more passes and its start-ups add up to >= 10% of the time in
      steps, or one start-up exceeds the step budget: advice
      ``persistent_workers=True`` (with the figures);
    * ``starts`` (``info``) otherwise, with the figures, for every loader that
      started workers;
    * a shutdown of >= 0.5 s (workers joined when an iterator ends or is dropped,
      e.g. after a ``break``) is named too.

    None when no loader has workers.
    """
    rows, advice, warn = [], [], False
    for ld in loaders:
        if not ld.get("num_workers"):
            continue
        per = [float(x) for x in ld.get("startup_per_pass_s") or []]
        down = [float(x) for x in ld.get("shutdown_per_pass_s") or [] if x is not None]
        total = float(sum(per))
        rows.append({"loader": ld.get("id"), "site": ld.get("site"), "passes": len(per),
                     "startup_s": total, "startup_per_pass_s": per,
                     "shutdown_s": float(sum(down)), "persistent_workers":
                     bool(ld.get("persistent_workers")), "num_workers": ld.get("num_workers"),
                     "start_method": ld.get("start_method")})
        name = f"loader {ld.get('id')} ({ld.get('site')})"
        if not per:
            continue
        mean = total / len(per)
        costly = (time_in_steps_s > 0 and total >= STARTUP_SHARE * time_in_steps_s) or \
            max(per) > budget_s
        if not ld.get("persistent_workers") and len(per) >= 2 and costly:
            warn = True
            share = f", {100 * total / time_in_steps_s:.0f}% of the time in steps" \
                if time_in_steps_s > 0 else ""
            advice.append(
                f"{name} starts its {ld.get('num_workers')} "
                f"{ld.get('start_method') or ''} workers afresh at each of its {len(per)} "
                f"passes: {mean:.2f} s per pass before the first batch, {total:.2f} s in "
                f"all{share}. Set persistent_workers=True to start them once.")
        else:
            advice.append(f"{name}: worker start-up {mean:.2f} s per pass "
                          f"({len(per)} pass{'es' if len(per) > 1 else ''}, {total:.2f} s in "
                          "all), charged to no step.")
        if down and max(down) >= SHUTDOWN_S:
            advice.append(f"{name}: its workers took {max(down):.2f} s to shut down "
                          f"({sum(down):.2f} s in all), charged to no step.")
    if not rows:
        return None
    return Finding("startup", "restarts" if warn else "starts",
                   {"loaders": rows, "time_in_steps_s": time_in_steps_s}, tuple(advice),
                   "warn" if warn else "info")
