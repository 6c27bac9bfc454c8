"""The ``nnprof check`` checklist: one line per rung, then the advice of those
that did not pass. Plain text; the status word is coloured on a terminal."""
from __future__ import annotations

import textwrap

from ..analyses.wiring import CATEGORIES, name_list

_COLORS = {"pass": "32", "warn": "33", "fail": "31", "skip": "2"}


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
        return (f"{ev.get('checked')} parameters get gradients and updates "
                f"({ev.get('steps_seen')} optimizer steps)")
    if name == "loss-at-init":
        return (f"first loss {_num(ev.get('first_loss'), '.3f')}, expected "
                f"{_num(ev.get('expected'), '.3f')} ({ev.get('function')}, "
                f"{ev.get('classes')} classes)")
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
    for r in rungs:
        if r.get("status") in ("pass", "skip"):
            continue
        lines.append("")
        lines.append(f"{r.get('name')}:")
        for a in r.get("advice") or []:
            lines.append(textwrap.fill(str(a), width=width, initial_indent="  - ",
                                       subsequent_indent="    "))
    return "\n".join(lines) + "\n"
