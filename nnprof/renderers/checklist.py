"""The ``nnprof check`` checklist: one line per rung, then the advice of those
that did not pass. Plain text; the status word is coloured on a terminal."""
from __future__ import annotations

import textwrap

from ..analyses.wiring import CATEGORIES, name_list

_COLORS = {"pass": "32", "warn": "33", "fail": "31", "skip": "2"}
_RESULT_COLORS = {"passed": "32", "inconclusive": "33", "failed": "31", "script-failed": "31",
                  "interrupted": "33"}


def _num(v, fmt: str = ".4g") -> str:
    try:
        return format(float(v), fmt)
    except (TypeError, ValueError):
        return "?"


def short(rung: dict) -> str:
    """The evidence of one rung in a few words."""
    name, status = rung.get("name", ""), rung.get("status")
    ev = rung.get("evidence") or {}
    advice = rung.get("advice") or []
    if status == "skip":
        return str(ev.get("reason") or (advice[0] if advice else ""))
    if name == "simplicity":
        found = ev.get("triggered") or []
        total = ev.get("total_parameters")
        if found:
            return "found " + ", ".join(str(t).replace("_", " ") for t in found)
        return f"small and plain ({total:,} parameters)" if isinstance(total, int) \
            else "small and plain"
    if name == "wiring":
        bad = [f"{k}: {name_list(ev.get(k) or [], 3)}" for k in CATEGORIES if ev.get(k)]
        if bad:
            return "; ".join(bad)
        noted = [f"{words}: {name_list(ev.get(k) or [], 3)}" for k, words in (
            ("below_resolution", "updates below float resolution"),
            ("unjudged", "unchanged, update unreadable")) if ev.get(k)]
        if noted:
            return "; ".join(noted)
        return (f"{ev.get('checked')} parameters get gradients and updates "
                f"({ev.get('steps_seen')} optimizer steps)")
    if name == "loss-at-init":
        return (f"first loss {_num(ev.get('first_loss'), '.3f')}, expected "
                f"{_num(ev.get('expected'), '.3f')} ({ev.get('function')}, "
                f"{ev.get('classes')} classes)")
    if name == "generalize":
        if "error" in ev:
            return f"script failed: {ev['error']}"
        return (f"validation {_num(ev.get('val_loss_first'))} -> "
                f"{_num(ev.get('val_loss_last'))} over {ev.get('val_passes')} passes, train "
                f"{_num(ev.get('train_loss_first'))} -> {_num(ev.get('train_loss_last'))} "
                f"in {ev.get('steps')} steps on the full data")
    if name.startswith("overfit-"):
        if "error" in ev:
            return f"script failed: {ev['error']}"
        text = (f"loss {_num(ev.get('first'))} -> {_num(ev.get('last_mean'))} "
                f"({_num(ev.get('ratio_achieved'), '.3f')} x first, needs "
                f"{_num(ev.get('ratio'), 'g')} x) in {ev.get('steps')} steps")
        vals = ev.get("val_losses") or []
        if vals:
            text += f"; validation {_num(vals[0])} -> {_num(vals[-1])}"
        return text
    return ""


LADDER_COLUMNS = ("rung", "data", "steps", "train loss start -> end",
                  "validation loss start -> end")


def ladder_figures(check: dict) -> list:
    """Per rung that trained: {name, status, data, steps, train_loss_first,
    train_loss_last, val_loss_first, val_loss_last}: the ladder as the advice reads
    it (overfit rungs: train -> ~0 while validation stays high; generalize:
    validation falls)."""
    out = []
    for r in check.get("rungs") or []:
        ev = r.get("evidence") or {}
        if "train_loss_first" not in ev:
            continue
        name = r.get("name", "")
        method = r.get("method") or ev.get("method")
        data = ("full data" if name == "generalize" else
                f"{ev.get('examples')} example(s), " + ("replayed" if method == "replay"
                                                        else "loader cut"))
        out.append({"name": name, "status": r.get("status"), "data": data,
                    "steps": ev.get("steps"),
                    **{k: ev.get(k) for k in ("train_loss_first", "train_loss_last",
                                              "val_loss_first", "val_loss_last")}})
    return out


def ladder_cells(f: dict) -> list:
    def pair(a, b):
        if a is None and b is None:
            return "-"
        return f"{_num(a)} -> {_num(b)}"
    return [f["name"], f["data"], "" if f["steps"] is None else str(f["steps"]),
            pair(f["train_loss_first"], f["train_loss_last"]),
            pair(f["val_loss_first"], f["val_loss_last"])]


def ladder_table(check: dict) -> list:
    """The ladder's figures as aligned text lines (none when no rung trained)."""
    rows = [ladder_cells(f) for f in ladder_figures(check)]
    if not rows:
        return []
    rows.insert(0, list(LADDER_COLUMNS))
    widths = [max(len(r[i]) for r in rows) for i in range(len(LADDER_COLUMNS))]
    return ["  ".join(c.rjust(w) if i == 2 else c.ljust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def render_checklist(check: dict, color: bool = False, width: int = 100) -> str:
    rungs = check.get("rungs") or []
    pad = max([len(r.get("name", "")) for r in rungs] + [10])
    lines = [f"nnprof check  {check.get('script')}"]
    for r in rungs:
        status = str(r.get("status", "?"))
        word = f"{status.upper():<4}"
        if color and status in _COLORS:
            word = f"\x1b[{_COLORS[status]}m{word}\x1b[0m"
        lines.append(f"{word}  {r.get('name', ''):<{pad}}  {short(r)}")
    table = ladder_table(check)
    if table:
        lines += [""] + table
    for r in rungs:
        if r.get("status") in ("pass", "skip"):
            continue
        lines.append("")
        lines.append(f"{r.get('name')}:")
        for a in r.get("advice") or []:
            lines.append(textwrap.fill(str(a), width=width, initial_indent="  - ",
                                       subsequent_indent="    "))
    status = str(check.get("status") or "?")
    word = status.upper()
    if color and status in _RESULT_COLORS:
        word = f"\x1b[{_RESULT_COLORS[status]}m{word}\x1b[0m"
    lines += ["", textwrap.fill(f"result: {word}" + (
        f": {check['reason']}" if check.get("reason") else ""), width=width,
        subsequent_indent="  ")]
    for a in check.get("advice") or []:
        lines.append(textwrap.fill(str(a), width=width, initial_indent="  - ",
                                   subsequent_indent="    "))
    return "\n".join(lines) + "\n"
