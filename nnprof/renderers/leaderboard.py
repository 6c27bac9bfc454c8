"""The ``nnprof sweep`` leaderboard in the terminal: plain text, the state word
coloured on a terminal. Built from the sweep record (``sweep.json``) alone, where
any key may be missing or null; the ordering and the cell texts are shared with the
HTML page (:mod:`.sweeppage`)."""
from __future__ import annotations

import math
import re
import textwrap

_COLORS = {"complete": "32", "pruned": "33", "failed": "31", "running": "36"}
_STATE_RANK = {"complete": 0, "pruned": 1, "running": 2, "failed": 3}
_RESOURCE_WORD = {"passes": "pass", "steps": "step", "seconds": "second"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
ELLIPSIS = "\u2026"


def _float(v):
    """``v`` as a finite float, else None (bools are not numbers here)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else []


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def text(v) -> str:
    """One line of text from anything in the record (control characters dropped)."""
    return "" if v is None else _CONTROL.sub(" ", str(v)).strip()


def sig(v, digits: int = 4) -> str:
    f = _float(v)
    return "-" if f is None else f"{f:.{digits}g}"


def param_text(v) -> str:
    """A parameter's value: floats to 4 significant digits, the rest as written."""
    if isinstance(v, float):
        return sig(v)
    return "-" if v is None else text(v)


def fixed(v, digits: int = 1, scale: float = 1.0) -> str:
    f = _float(v)
    return "-" if f is None else f"{f * scale:.{digits}f}"


def settings(record: dict) -> dict:
    return _dict(_dict(record).get("settings"))


def trials(record: dict) -> list:
    return [t for t in _list(_dict(record).get("trials")) if isinstance(t, dict)]


def resource_word(record: dict) -> str:
    res = text(settings(record).get("resource")) or "passes"
    return _RESOURCE_WORD.get(res, res)


def last_intermediate(trial: dict):
    """(resource, value) of a trial's last intermediate value, or (None, None)."""
    for point in reversed(_list(trial.get("intermediate"))):
        if isinstance(point, (list, tuple)) and len(point) >= 2 and _float(point[1]) is not None:
            return point[0], _float(point[1])
    return None, None


def sort_value(trial: dict):
    """What a trial is ranked by: the final value, or a pruned trial's last report."""
    if trial.get("state") == "pruned":
        return last_intermediate(trial)[1]
    return _float(trial.get("value")) if trial.get("state") == "complete" else None


def ordered(record: dict) -> list:
    """Trials best first: complete by value in the metric's direction, then pruned by
    their last intermediate value, then running, then failed (then anything else)."""
    sign = -1.0 if text(settings(record).get("direction")).lower() == "maximize" else 1.0

    def key(t):
        v, number = sort_value(t), _float(t.get("number"))
        return (_STATE_RANK.get(text(t.get("state")), 4), v is None, sign * (v or 0.0),
                math.inf if number is None else number)
    return sorted(trials(record), key=key)


def state_text(trial: dict, record: dict) -> str:
    """The state; for a pruned trial, where it stopped: ``pruned @ pass 2``."""
    state = text(trial.get("state")) or "?"
    at = trial.get("pruned_at")
    at = last_intermediate(trial)[0] if at is None else at
    if state != "pruned" or at is None:
        return state
    at, word = sig(at) if isinstance(at, float) else text(at), resource_word(record)
    return f"pruned @ {at} s" if word == "second" else f"pruned @ {word} {at}"


def value_text(trial: dict) -> str:
    """A complete trial's value; a pruned or running one's last report in parentheses."""
    if trial.get("state") in ("pruned", "running"):
        v = last_intermediate(trial)[1]
        return "-" if v is None else f"({sig(v)})"
    return sig(trial.get("value"))


def param_names(record: dict) -> list:
    """The searched parameters: those of the settings, then any other a trial has."""
    names = list(_dict(settings(record).get("params")))
    names += [n for t in trials(record) for n in _dict(t.get("params"))]
    return list(dict.fromkeys(str(n) for n in names))


def trials_done(record: dict) -> str:
    done = sum(1 for t in trials(record) if t.get("state") in ("complete", "pruned", "failed"))
    asked = settings(record).get("trials")
    return f"{done} of {text(asked)} trials done" if asked is not None else f"{done} trials done"


def metric_name(record: dict) -> str:
    """The metric the trials were ranked by."""
    s = settings(record)
    return text(s.get("metric_used")) or text(s.get("metric")) or "value"


def metric_text(record: dict) -> str:
    s = settings(record)
    metric, used = text(s.get("metric")) or "?", text(s.get("metric_used"))
    return (f"{metric}{f' (as {used})' if used and used != metric else ''}, "
            f"{text(s.get('direction')) or 'minimize'}")


def prune_text(record: dict) -> str:
    s = settings(record)
    if text(s.get("prune")).lower() in ("none", "off", "false"):
        return "no pruning"
    return text(s.get("prune_rule")) or text(s.get("prune")) or "pruner not recorded"


def best_trial(record: dict):
    """The record's best trial, else the first complete trial with a value, else None."""
    best = _dict(_dict(record).get("best"))
    if best:
        return best
    for t in ordered(record):
        if t.get("state") == "complete" and _float(t.get("value")) is not None:
            return t
    return None


def pruning_line(record: dict):
    """``pruning saved ~X trial-seconds of Y spent (Z%)``, or None without a saving."""
    p = _dict(_dict(record).get("pruning"))
    saved = _float(p.get("saved_s"))
    if saved is None:
        return None
    spent, share = _float(p.get("trial_seconds")), _float(p.get("saved_share"))
    return (f"pruning saved ~{saved:,.0f} trial-seconds"
            + (f" of {spent:,.0f} spent" if spent is not None else "")
            + (f" ({share * 100:.0f}%)" if share is not None else ""))


def rows(record: dict) -> list:
    """The leaderboard's cells (text), best first; ``rank`` only where there is a value."""
    out, rank = [], 0
    for t in ordered(record):
        params = _dict(t.get("params"))
        ranked = sort_value(t) is not None
        rank += ranked
        out.append({"trial": t, "rank": str(rank) if ranked else "-",
                    "number": text(t.get("number")) or "?", "state": state_text(t, record),
                    "value": value_text(t),
                    "params": [param_text(params.get(n)) for n in param_names(record)],
                    "step_ms": fixed(t.get("step_time_s"), 2, 1e3),
                    "bottleneck": text(t.get("bottleneck")) or "-",
                    "duration": fixed(t.get("duration_s")),
                    "run_dir": text(t.get("run_dir")) or "-"})
    return out


# -- the terminal text ------------------------------------------------------------
def _cut(s: str, w: int) -> str:
    return s if len(s) <= w else (s[:w - 1].rstrip() + ELLIPSIS if w > 1 else s[:w])


def _wrap(s: str, width: int, indent: str = "", more: str = "  ") -> list:
    return textwrap.wrap(text(s), width=width, initial_indent=indent, subsequent_indent=more,
                         break_long_words=True, break_on_hyphens=False) or [indent.rstrip()]


def _fit(table: list, width: int, drop_order) -> tuple:
    """Cut the widest column first, down to each floor in turn, gaps closed up to one
    space; columns that do not fit at their tight floor go, in ``drop_order``."""
    def total(sep, level=None):
        return sum(c["w"] if level is None else c["floors"][level] for c in table) \
            + sep * (len(table) - 1)

    def cut(level, sep, keep=()):
        while total(sep) > width:
            c = max((c for c in table if c["w"] > c["floors"][level] and c["key"] not in keep),
                    key=lambda c: c["w"], default=None)
            if c is None:
                return
            c["w"] -= 1
    cut(0, 2)
    sep = 2 if total(2) <= width else 1
    dropped = []
    for key in drop_order:
        if total(sep, 1) <= width:
            break
        c = next(c for c in table if c["key"] == key)
        table.remove(c)
        dropped.append(c["head"])
    cut(0, sep)
    cut(1, sep)
    cut(2, sep, ("state", "value"))
    cut(2, sep)
    return sep, dropped


def _table(record: dict, width: int, color: bool) -> list:
    names = param_names(record)
    cols = [("#", "rank", True), ("trial", "number", True), ("state", "state", False),
            ("value", "value", True), *[(n, i, None) for i, n in enumerate(names)],
            ("step ms", "step_ms", True), ("bottleneck", "bottleneck", False),
            ("dur s", "duration", True), ("run dir", "run_dir", False)]
    data, table = rows(record), []
    for head, key, right in cols:
        cells = [r["params"][key] if isinstance(key, int) else r[key] for r in data]
        if right is None:  # a parameter: numbers to the right
            right = all(_float(c) is not None or c == "-" for c in cells)
        widest = max([len(c) for c in cells] + [3])
        natural = max(len(head), widest)
        # floors, loosest first: long text to 13 characters; then headers cut to their
        # cells and text to 9; then the least. Numbers are never cut (a cut number misleads)
        if right or key == "state":
            least = min(widest, 16 if key == "state" else 12)
            floors = (natural, max(least, min(natural, 4)), least)
        else:
            least = min(natural, 5)
            floors = (min(natural, 13), max(least, min(natural, 9)), least)
        table.append({"head": head, "key": key, "right": right, "cells": cells, "w": natural,
                      "floors": floors})
    sep, dropped = _fit(table, width, ("duration", "run_dir", "bottleneck", "step_ms")
                        + tuple(range(len(names) - 1, -1, -1)))

    def line(cells, state=None):
        out = []
        for c, v in zip(table, cells):
            v = _cut(v, c["w"])
            padded = v.rjust(c["w"]) if c["right"] else v.ljust(c["w"])
            if color and c["key"] == "state" and state in _COLORS:
                padded = padded.replace(v, f"\x1b[{_COLORS[state]}m{v}\x1b[0m", 1)
            out.append(padded)
        return (" " * sep).join(out).rstrip()
    lines = [line([c["head"] for c in table])]
    for i, r in enumerate(data):
        lines.append(line([c["cells"][i] for c in table], text(r["trial"].get("state"))))
    if dropped:
        lines += _wrap(f"(left out to fit {width} columns: {', '.join(dropped)})", width)
    return lines


def render_leaderboard(record: dict, color: bool = False, width: int = 100) -> str:
    """The sweep record as plain text, ``width`` columns wide at most."""
    record = _dict(record)
    width = max(int(width or 100), 30)
    lines = _wrap(f"nnprof sweep  {text(record.get('script')) or '?'}  study "
                  f"{text(record.get('study')) or '?'}", width)
    status, wall = text(record.get("status")), _float(record.get("wall_s"))
    facts = [f"metric {metric_text(record)}", trials_done(record),
             f"status {status}" if status else "", f"{wall:,.1f} s" if wall is not None else ""]
    lines += _wrap(" | ".join(f for f in facts if f), width)
    lines += _wrap(f"pruner: {prune_text(record)}", width)
    if record.get("reason"):
        lines += _wrap(f"stopped early: {text(record.get('reason'))}", width)
    lines.append("")
    if not trials(record):
        lines.append("no trials yet")
    else:
        lines += _table(record, width, color)
        if any(r["value"].startswith("(") for r in rows(record)):
            lines += _wrap("(value): the last value a pruned or running trial reported", width)
    lines.append("")
    best = best_trial(record)
    if best:
        params = " ".join(f"{text(k)}={param_text(v)}"
                          for k, v in _dict(best.get("params")).items())
        lines += _wrap(f"best: trial {text(best.get('number')) or '?'}  {metric_name(record)} "
                       f"{sig(best.get('value'))}  {params}"
                       + (f"  ({text(best.get('run_dir'))})" if best.get("run_dir") else ""),
                       width)
    else:
        lines.append("best: none yet (no trial completed)")
    lines += _wrap(pruning_line(record), width) if pruning_line(record) else []
    failed = [t for t in ordered(record) if t.get("state") == "failed"]
    if failed:
        lines += ["", "failed trials:"]
        for t in failed:
            why = text(t.get("error")) or text((_list(t.get("tail")) or [""])[-1])
            code = t.get("exit_code")
            lines += _wrap(f"trial {text(t.get('number')) or '?'}"
                           + (f" (exit {text(code)})" if code is not None else "")
                           + f": {why or 'no error line'}", width, "  ", "    ")
    for n in _list(record.get("notices")):
        lines += _wrap(f"note: {text(n)}", width)
    return "\n".join(lines).rstrip("\n") + "\n"
