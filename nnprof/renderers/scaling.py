"""The scaling projection as text (``nnprof project``, and the terminal report's
``scaling`` section) and as chart data for the HTML report."""
from __future__ import annotations

from typing import Optional


def _ms(v) -> str:
    return f"{v * 1e3:.1f} ms" if isinstance(v, (int, float)) else "-"


def _rate(v) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _pct(v) -> str:
    return f"{v * 100:.0f}%" if isinstance(v, (int, float)) else "-"


def rows(result: dict) -> list:
    """One row of strings per projection: workers, ranks, nodes, step, samples/s,
    efficiency, bound (a * where communication could not be included)."""
    out = []
    for p in result.get("projections") or []:
        mem = p.get("memory") or {}
        bound = p.get("bound") or "-"
        if mem.get("fits") is False:
            bound = "memory (does not fit)"
        out.append([str(p["workers"]), str(p["ranks"]), str(p["nodes"]), _ms(p["step_s"]),
                    _rate(p.get("samples_per_s")), _pct(p.get("efficiency")),
                    bound + ("" if p.get("complete", True) else " *")])
    return out


def table(result: dict, indent: str = "  ") -> list:
    head = ["workers", "ranks", "nodes", "step", "samples/s", "efficiency", "bound"]
    body = rows(result)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = [lambda s, w=w: s.rjust(w) for w in widths[:6]] + [lambda s, w=widths[6]: s.ljust(w)]
    return [indent + "  ".join(f(c) for f, c in zip(fmt, r)).rstrip() for r in [head] + body]


def basis_lines(result: dict) -> list:
    b = result.get("basis") or {}
    if not b.get("step_s"):
        return []
    out = [f"measured: {b['ranks']} rank(s) on {b['nodes']} node(s), {b['device']}, "
           f"{b['cores']} usable cores; step {_ms(b['step_s'])} (main {_ms(b['main_s'])}, "
           f"data {_ms(b['data_s'])}" + (f", comm wait {_ms(b['comm_wait_s'])}"
                                          if b.get("comm_wait_s") else "") + ")"]
    if b.get("loader"):
        out.append(f"loader: {b['workers']} worker(s), {_ms(b.get('loader_batch_s'))} per "
                   f"batch of {b.get('batch_size')} made in the {b.get('loader_where')}")
    if b.get("grad_bytes"):
        out.append(f"gradients: {b['grad_bytes'] / 1e6:.1f} MB per all-reduce step")
    return out


def advice_lines(result: dict) -> list:
    seen, out = set(), []
    for p in result.get("projections") or []:
        a = p.get("advice")
        if a and (p["bound"], a) not in seen:
            seen.add((p["bound"], a))
            out.append(f"{p['bound']} (at {p['ranks']} rank(s), {p['workers']} worker(s)): {a}")
    return out


def projection_text(result: dict, name: Optional[str] = None, width: int = 100) -> str:
    lines = [f"nnprof project{(' ' + name) if name else ''}", ""]
    lines += basis_lines(result)
    if result.get("projections"):
        lines += [""] + table(result)
        if any(not p.get("complete", True) for p in result["projections"]):
            lines.append("  * communication not included (see the notices)")
        lines += ["", "what to change first:"] + ["  " + a for a in advice_lines(result)]
    lines += ["", "assumptions:"] + ["  - " + a for a in result.get("assumptions") or []]
    if result.get("notices"):
        lines += ["", "notices:"] + ["  - " + n for n in result["notices"]]
    return "\n".join(_wrap(line, width) for line in lines) + "\n"


def _wrap(line: str, width: int) -> str:
    if len(line) <= width or not line.startswith("  "):
        return line
    import textwrap
    lead = len(line) - len(line.lstrip(" -"))
    return textwrap.fill(line, width=width, subsequent_indent=" " * lead)


def chart(result: Optional[dict]) -> Optional[dict]:
    """Throughput against ranks at the run's own workers, with the bound at each point
    (None without projections)."""
    if not result or not result.get("projections"):
        return None
    k0 = (result.get("basis") or {}).get("workers", 0)
    pts = sorted((p for p in result["projections"] if p["workers"] == k0
                  and p.get("samples_per_s")), key=lambda p: p["ranks"])
    if len(pts) < 2:
        return None
    one = next((p for p in pts if p["ranks"] == 1), None)
    return {"ranks": [p["ranks"] for p in pts],
            "samples_per_s": [p["samples_per_s"] for p in pts],
            "linear": [one["samples_per_s"] * p["ranks"] for p in pts] if one else None,
            "bounds": [p["bound"] + ("" if p.get("complete", True) else " (no comm)")
                       for p in pts]}


def html_section(s: dict) -> str:
    """The HTML report's Scaling section (every value escaped); "" without projections."""
    from .htmlkit import esc, table
    sc = s.get("scaling") or {}
    if not sc.get("projections"):
        return ""
    advice = "".join(f"<li>{esc(a)}</li>" for a in advice_lines(sc)
                     if not a.startswith("compute "))
    notes = "".join(f"<li>{esc(n)}</li>" for n in sc.get("notices") or [])
    assume = "".join(f"<li>{esc(a)}</li>" for a in sc.get("assumptions") or [])
    return ('<section id="scaling"><h2>Scaling</h2>'
            + "".join(f"<p>{esc(line)}</p>" for line in basis_lines(sc))
            + table(["workers", "ranks", "nodes", "step", "samples/s", "efficiency",
                     "bound"], rows(sc), "num")
            + '<div class="chart"><canvas id="chart-scaling"></canvas></div>'
            + (f"<h3>What to change first</h3><ul>{advice}</ul>" if advice else "")
            + (f'<ul class="notices">{notes}</ul>' if notes else "")
            + f"<details><summary>Assumptions (nnprof project RUN for other targets; "
              f"docs/scaling.md)</summary><ul>{assume}</ul></details></section>")
