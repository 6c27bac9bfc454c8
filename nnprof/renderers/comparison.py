"""The terminal form of ``nnprof compare`` (rich tables)."""
from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _ms(v) -> str:
    return "-" if v is None else f"{v * 1e3:,.2f}"


def _delta(row: dict) -> str:
    d, r = row.get("delta_s"), row.get("ratio")
    if d is None:
        return "-"
    text = f"{d * 1e3:+,.2f}" + (f" ({r:.2f}x)" if r else "")
    style = {"faster": "green", "slower": "red"}.get(row.get("change"))
    return f"[{style}]{text}[/]" if style else text


def terminal(cmp: dict, color: bool = False, width: int = 100) -> str:
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=color, no_color=not color, width=width,
                  highlight=False, emoji=False)
    na, nb = (escape(str(n)) for n in cmp["names"])
    a, b = cmp["a"], cmp["b"]
    con.rule(f"[bold]nnprof compare[/] A = {na}, B = {nb}")
    for label, s in (("A", a), ("B", b)):
        steps = s.get("steps") or {}
        con.print(f"{label}: {escape(str(s.get('script')))} "
                  f"{escape(' '.join(str(x) for x in s.get('argv') or []))} | "
                  f"{escape(str(s.get('status')))} | {steps.get('train', 0)} train steps")
    t = Table(title="time per train step (ms)", title_justify="left")
    for col in ("phase", "A mean", "B mean", "change", "A p95", "B p95", "p"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for row in cmp["phases"] + [cmp["step"]]:
        p = row.get("p_value")
        name = "[bold]step[/]" if row["name"] == "step" else row["name"]
        t.add_row(name, _ms(row.get("a_mean_s")), _ms(row.get("b_mean_s")), _delta(row),
                  _ms(row.get("a_p95_s")), _ms(row.get("b_p95_s")),
                  "-" if p is None else f"{p:.2g}")
    con.print(t)
    con.print(f"[bold]verdict:[/] {escape(cmp['verdict'])}")
    for c in cmp["changes"]:
        word = "slower" if c["change"] == "slower" else "faster"
        con.print(f"  - {escape(c['name'])}: {_ms(c['a_mean_s'])} -> {_ms(c['b_mean_s'])} ms "
                  f"({word} by {abs(c['delta_s']) * 1e3:.2f} ms"
                  + (f", {c['ratio']:.2f}x" if c.get("ratio") else "") + ")")
    rows = [("budget", a.get("budget_verdict"), b.get("budget_verdict")),
            ("over budget", a.get("over_budget"), b.get("over_budget")),
            ("bottleneck", a.get("bottleneck"), b.get("bottleneck")),
            ("samples/s", _num(a.get("samples_per_s")), _num(b.get("samples_per_s"))),
            ("input share", _pct(a.get("input_share")), _pct(b.get("input_share"))),
            ("epoch (projected s)", _num(a.get("epoch_s")), _num(b.get("epoch_s"))),
            ("last train loss", _num(a.get("last_loss")), _num(b.get("last_loss"))),
            ("accuracy (last pass)", _num(a.get("accuracy")), _num(b.get("accuracy")))]
    t2 = Table(title="verdicts", title_justify="left")
    for col in ("", "A", "B"):
        t2.add_column(col)
    for label, va, vb in rows:
        t2.add_row(label, escape(str(va if va is not None else "-")),
                   escape(str(vb if vb is not None else "-")))
    con.print(t2)
    if cmp.get("differences"):
        con.print("[bold]set-up differences:[/] " + "; ".join(
            f"{escape(str(d['key']))}: {escape(str(d['a']))} -> {escape(str(d['b']))}"
            for d in cmp["differences"]))
    r = cmp.get("rules") or {}
    con.print(f"[dim]a change is called when it is >= {r.get('min_rel', 0) * 100:.0f}% and >= "
              f"{r.get('min_abs_s', 0) * 1e3:.2f} ms, and the {escape(str(r.get('test')))} gives "
              f"p < {r.get('alpha')}[/]")
    return buf.getvalue()


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _num(v) -> str:
    return "-" if v is None else f"{v:.4g}"
