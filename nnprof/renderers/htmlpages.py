"""The HTML pages of ``nnprof check`` (the ladder) and ``nnprof compare``."""
from __future__ import annotations

import json

from ..rundir.phases import PHASES
from .chartdata import line_series
from .checklist import LADDER_COLUMNS, ladder_cells, ladder_figures, short
from .htmlkit import _SEVERITY, Markup, esc, ms, num, page, table


# -- the check ladder ------------------------------------------------------------
def ladder_rows(check: dict) -> list:
    rows = []
    for r in check.get("rungs") or []:
        status = str(r.get("status", "?"))
        rows.append([Markup(f'<span class="badge {_SEVERITY.get(status, "muted")}">'
                            f'{esc(status.upper())}</span>'), r.get("name"), short(r)])
    return rows


def ladder_card(check: dict) -> str:
    status = check.get("status")
    return (f'<div class="card {"ok" if status == "passed" else "bad"}"><h3>overfit ladder: '
            f'<span class="verdict">{esc(status)}</span></h3>'
            + table(["", "rung", "evidence"], ladder_rows(check)) + "</div>")


def render_check(check: dict) -> str:
    """The page of an ``nnprof check`` directory: the ladder, each rung's advice and the
    overfit curves."""
    status = check.get("status")
    cls = "ok" if status == "passed" else "bad"
    argv = " ".join(str(a) for a in check.get("argv") or [])
    advice = []
    if check.get("reason"):
        items = "".join(f"<li>{esc(a)}</li>" for a in check.get("advice") or [])
        advice.append(f"<h3>{esc(status)}: {esc(check['reason'])}</h3><ul>{items}</ul>")
    for r in check.get("rungs") or []:
        items = "".join(f"<li>{esc(a)}</li>" for a in r.get("advice") or [])
        if items:
            advice.append(f"<h3>{esc(r.get('name'))}: {esc(r.get('status'))}</h3><ul>{items}</ul>")
    settings = check.get("settings") or {}
    loader = check.get("training_loader")
    body = ('<header><h1>nnprof check <span class="script">' + esc(check.get("script") or "?")
            + "</span></h1>" + (f'<div class="argv">{esc(argv)}</div>' if argv else "")
            + f'<div class="facts"><span class="badge {cls}">{esc(status)}</span> exit '
            f'{esc(check.get("exit_code"))}</div></header><main>'
            '<section id="ladder"><h2>The overfit ladder</h2>'
            + table(["", "rung", "evidence"], ladder_rows(check)) + "</section>"
            + ladder_section(check)
            + '<section id="curves"><h2>Loss curves</h2>'
            '<div class="chart tall"><canvas id="chart-overfit"></canvas></div></section>'
            '<section id="advice"><h2>Advice</h2>' + "".join(advice) + "</section>"
            '<section id="settings"><h2>Settings</h2>'
            + table(["", ""], [[k, v] for k, v in settings.items()]
                    + ([["training loader", json.dumps(loader, default=str)]] if loader else []))
            + "</section></main>")
    curves, val = {}, {}
    for r in check.get("rungs") or []:
        ev = r.get("evidence") or {}
        name = r.get("name", "")
        if not (name.startswith("overfit-") or name == "generalize"):
            continue
        if ev.get("curve"):
            curves[name] = line_series(ev["curve"])
        points = [p for p in ev.get("val_curve") or [] if isinstance(p, (list, tuple))]
        if points:
            val[name] = {"x": [p[0] for p in points], "y": [p[1] for p in points]}
    figures = ladder_figures(check)
    ladder = {"names": [f["name"] for f in figures],
              **{k: [f[k] for f in figures] for k in ("train_loss_first", "train_loss_last",
                                                      "val_loss_first", "val_loss_last")}}
    return page(f"nnprof check: {check.get('script') or ''}", body,
                {"kind": "check", "curves": curves, "val": val, "ladder": ladder})


def ladder_section(check: dict) -> str:
    """The ladder as the advice reads it: per rung that trained, train and validation
    loss at its start and end, as a table and a chart."""
    figures = ladder_figures(check)
    if not figures:
        return ""
    return ('<section id="ladder-losses"><h2>Memorising, then generalising</h2>'
            '<p class="muted">On the overfit rungs the training loss should fall to about 0 '
            'while the validation loss stays high; on the generalize rung the validation '
            'loss should fall.</p>'
            + table(list(LADDER_COLUMNS), [ladder_cells(f) for f in figures])
            + '<div class="chart"><canvas id="chart-ladder"></canvas></div></section>')


# -- nnprof compare ----------------------------------------------------------------
def render_compare(cmp: dict) -> str:
    na, nb = cmp["names"]
    a, b = cmp["a"], cmp["b"]

    def delta(r):
        d, ratio = r.get("delta_s"), r.get("ratio")
        if d is None:
            return "-"
        text = f"{d * 1e3:+,.2f} ms" + (f" ({ratio:.2f}x)" if ratio else "")
        cls = {"faster": "delta-faster", "slower": "delta-slower"}.get(r.get("change"))
        return Markup(f'<span class="{cls}">{esc(text)}</span>' if cls else esc(text))
    rows = [[r["name"], ms(r.get("a_mean_s")), ms(r.get("b_mean_s")), delta(r),
             ms(r.get("a_p95_s")), ms(r.get("b_p95_s")),
             "-" if r.get("p_value") is None else f"{r['p_value']:.2g}"]
            for r in cmp["phases"] + [cmp["step"]]]
    changes = "".join(
        f"<li>{esc(c['name'])}: {ms(c['a_mean_s'])} \u2192 {ms(c['b_mean_s'])} ms "
        f"({esc(c['change'])} by {abs(c['delta_s']) * 1e3:.2f} ms"
        + (f", {c['ratio']:.2f}x" if c.get("ratio") else "") + ")</li>" for c in cmp["changes"])
    def cell(v):
        return num(v) if isinstance(v, float) else v
    side_rows = [[label, cell(a.get(k)), cell(b.get(k))] for label, k in (
        ("script", "script"), ("status", "status"), ("budget", "budget_verdict"),
        ("over budget", "over_budget"), ("bottleneck", "bottleneck"),
        ("batch size", "batch_size"), ("samples/s", "samples_per_s"),
        ("projected epoch (s)", "epoch_s"), ("last train loss", "last_loss"),
        ("accuracy (last pass)", "accuracy"), ("F1 macro (last pass)", "f1_macro"))]
    diffs = [[d["key"], d["a"], d["b"]] for d in cmp.get("differences") or []]
    r = cmp.get("rules") or {}
    body = (f'<header><h1>nnprof compare</h1><div class="facts">A = {esc(na)} · B = {esc(nb)}'
            f'</div></header><main><section id="verdict"><h2>Verdict</h2>'
            f"<p><b>{esc(cmp['verdict'])}</b></p><ul>{changes}</ul>"
            f'<p class="muted">A change is called when it is at least '
            f"{r.get('min_rel', 0) * 100:.0f}% and {r.get('min_abs_s', 0) * 1e3:.2f} ms, and the "
            f"{esc(r.get('test'))} gives p &lt; {esc(r.get('alpha'))}.</p></section>"
            '<section id="phases"><h2>Time per train step</h2>'
            + table(["phase", "A mean ms", "B mean ms", "change", "A p95 ms", "B p95 ms", "p"],
                    rows, "num")
            + '<div class="chart"><canvas id="chart-compare"></canvas></div></section>'
            '<section id="sides"><h2>Verdicts and results</h2>'
            + table(["", "A", "B"], side_rows)
            + ("<h3>Set-up differences</h3>" + table(["", "A", "B"], diffs) if diffs else "")
            + "</section></main>")
    data = {"kind": "compare", "names": [na, nb], "phases": list(PHASES) + ["step"],
            "a": {"mean": [x.get("a_mean_s") for x in cmp["phases"] + [cmp["step"]]],
                  "p95": [x.get("a_p95_s") for x in cmp["phases"] + [cmp["step"]]]},
            "b": {"mean": [x.get("b_mean_s") for x in cmp["phases"] + [cmp["step"]]],
                  "p95": [x.get("b_p95_s") for x in cmp["phases"] + [cmp["step"]]]}}
    return page(f"nnprof compare: {na} vs {nb}", body, data)

