"""The HTML page of ``nnprof sweep``: the leaderboard, every trial's curve, the final
value against each parameter, what pruning saved, the failed trials and their last
lines. Built from the sweep record (``sweep.json``) alone; any key may be missing."""
from __future__ import annotations

import json
import re

from . import leaderboard as L
from .htmlkit import Markup, esc, ms, num, page, table

#: points per trial's curve in the data block; a longer curve keeps evenly spaced points
MAX_CURVE_POINTS = 400
#: last lines of a failed trial shown on the page
MAX_TAIL_LINES = 40
_SAFE_DIR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STATE_CLASS = {"complete": "ok", "pruned": "warn", "failed": "bad", "running": "muted"}
_STATUS_CLASS = {"completed": "ok", "running": "muted", "interrupted": "bad", "stopped": "warn"}


def safe_run_dir(run_dir) -> bool:
    """A plain relative name (``trial-3``, ``a/b``): no ``..``, no leading ``/``, no
    scheme, nothing that a browser would read as anything but a folder next to the page."""
    return (isinstance(run_dir, str) and ".." not in run_dir
            and _SAFE_DIR.fullmatch(run_dir) is not None)


def run_link(run_dir):
    """A trial's run directory: a link to its report when the name is safe, else text."""
    if not safe_run_dir(run_dir):
        return L.text(run_dir) or "-"
    return Markup(f'<a href="{esc(run_dir)}/report.html">{esc(run_dir)}</a>')


def curve(trial: dict, limit: int = MAX_CURVE_POINTS) -> list:
    """A trial's intermediate values as ``[[x, y], ...]`` (numbers only), at most ``limit``
    points, the first and the last always among them."""
    pts = []
    for p in L._list(trial.get("intermediate")):
        if isinstance(p, (list, tuple)) and len(p) >= 2:
            x, y = L._float(p[0]), L._float(p[1])
            if x is not None and y is not None:
                pts.append([x, y])
    if len(pts) > limit > 1:
        keep = sorted({round(i * (len(pts) - 1) / (limit - 1)) for i in range(limit)})
        pts = [pts[i] for i in keep]
    return pts


def param_specs(record: dict) -> list:
    """Each parameter's name, kind, log scale and choices, for the charts."""
    specs = L._dict(L.settings(record).get("params"))
    out = []
    for name in L.param_names(record):
        spec = L._dict(specs.get(name))
        seen = [L._dict(t.get("params")).get(name) for t in L.trials(record)]
        seen = [v for v in seen if v is not None]
        kind = L.text(spec.get("kind")) or (
            "float" if all(L._float(v) is not None for v in seen) else "choice")
        choices = spec.get("choices")
        if kind == "choice" and not isinstance(choices, list):
            choices = list(dict.fromkeys(L.text(v) for v in seen))
        out.append({"name": name, "kind": kind, "log": spec.get("log") is True,
                    "choices": [L.text(c) for c in choices] if isinstance(choices, list) else None,
                    "spec": L.text(spec.get("spec"))})
    return out


def chart_data(record: dict) -> dict:
    s = L.settings(record)
    best = L.best_trial(record)
    data_trials = []
    for t in L.ordered(record):
        params = {L.text(k): (v if isinstance(v, (int, float, bool)) else L.text(v))
                  for k, v in L._dict(t.get("params")).items()}
        data_trials.append({"number": t.get("number"), "state": L.text(t.get("state")) or "?",
                            "value": L._float(t.get("value")) if t.get("state") == "complete"
                            else None, "last": L.last_intermediate(t)[1],
                            "curve": curve(t), "params": params})
    return {"kind": "sweep", "metric": L.metric_name(record),
            "direction": L.text(s.get("direction")) or "minimize",
            "resource": L.resource_word(record),
            "best": best.get("number") if best else None,
            "trials": data_trials, "params": param_specs(record)}


def _badge(state: str, best: bool) -> Markup:
    return Markup(f'<span class="badge {_STATE_CLASS.get(state.split(" ")[0], "muted")}">'
                  f'{esc(state)}</span>' + (" <b>best</b>" if best else ""))


def leaderboard_table(record: dict) -> str:
    names = L.param_names(record)
    best = L.best_trial(record)
    best_n = best.get("number") if best else None
    rows = [[r["rank"], r["number"],
             _badge(r["state"], best_n is not None and r["trial"].get("number") == best_n),
             r["value"], *r["params"], ms(L._float(r["trial"].get("step_time_s"))),
             r["bottleneck"], num(L._float(r["trial"].get("duration_s")), "{:.1f}"),
             run_link(r["trial"].get("run_dir"))] for r in L.rows(record)]
    return table(["#", "trial", "state", "value", *names, "step ms", "bottleneck",
                  "duration s", "report"], rows, "num leaderboard")


def _cards(record: dict) -> str:
    best = L.best_trial(record)
    if best:
        link = run_link(best.get("run_dir")) if best.get("run_dir") else ""
        best_card = ('<div class="card ok"><h3>best trial: <span class="verdict">trial '
                     f'{esc(L.text(best.get("number")) or "?")}</span></h3>'
                     f"<p>{esc(L.metric_name(record))} <b>{esc(L.sig(best.get('value')))}</b>"
                     + (f" · {link}" if link else "") + "</p>"
                     + table(["parameter", "value"], [[L.text(k), L.param_text(v)] for k, v in
                                                      L._dict(best.get("params")).items()])
                     + "</div>")
    else:
        best_card = ('<div class="card muted"><h3>best trial: <span class="verdict">none yet'
                     "</span></h3><p>No trial has completed.</p></div>")
    p = L._dict(record.get("pruning"))
    line = L.pruning_line(record)
    pruned = sum(1 for t in L.trials(record) if t.get("state") == "pruned")
    saved_card = (f'<div class="card {"ok" if line else "muted"}" id="pruning-saved">'
                  "<h3>time saved by pruning</h3>"
                  f"<p>{esc(line or 'Nothing recorded yet.')}</p>"
                  f"<p>{esc(L.text(p.get('pruned') if p.get('pruned') is not None else pruned))}"
                  f" trials pruned · rule: {esc(L.prune_text(record))}</p>"
                  + (f'<p class="muted">{esc(p.get("rule"))}</p>' if p.get("rule") else "")
                  + "</div>")
    return f'<div class="cards">{best_card}{saved_card}</div>'


def _line(x) -> str:
    """One output line as it was, less its colour codes and control characters."""
    x = _ANSI.sub("", "" if x is None else str(x))
    return L._CONTROL.sub(" ", x.replace("\t", "    ")).rstrip()


def _failed(record: dict) -> str:
    out = []
    for t in L.ordered(record):
        if t.get("state") != "failed":
            continue
        code = t.get("exit_code")
        tail = [_line(x) for x in L._list(t.get("tail"))][-MAX_TAIL_LINES:]
        out.append(f'<div class="card bad"><h3>trial {esc(L.text(t.get("number")) or "?")}'
                   + (f" (exit {esc(code)})" if code is not None else "") + "</h3>"
                   + (f"<p>{esc(L.text(t.get('error')))}</p>" if t.get("error") else "")
                   + (f'<pre class="tail">{esc(chr(10).join(tail))}</pre>' if tail else "")
                   + "</div>")
    if not out:
        return ""
    return '<section id="failed"><h2>Failed trials</h2>' + "".join(out) + "</section>"


def _space(record: dict) -> str:
    rows = []
    for p in param_specs(record):
        rows.append([p["name"], p["spec"] or "-", p["kind"],
                     ", ".join(p["choices"]) if p["choices"] else "-",
                     "log" if p["log"] else "linear"])
    return table(["parameter", "spec", "kind", "choices", "scale"], rows) if rows else ""


def render_sweep_html(record: dict) -> str:
    """The page of an ``nnprof sweep`` directory, from its record (``sweep.json``)."""
    record = L._dict(record)
    s = L.settings(record)
    status = L.text(record.get("status")) or "?"
    argv = " ".join(L.text(a) for a in L._list(record.get("argv")))
    wall, code = L._float(record.get("wall_s")), record.get("exit_code")
    facts = (f'<div class="facts"><span class="badge {_STATUS_CLASS.get(status, "muted")}">'
             f"{esc(status)}</span> study <b>{esc(L.text(record.get('study')) or '?')}</b>"
             f" · {esc(L.trials_done(record))}"
             + (f" · {wall:,.1f} s" if wall is not None else "")
             + (f" · exit {esc(code)}" if code not in (None, 0) else "") + "</div>"
             f'<div class="facts">metric {esc(L.metric_text(record))} · pruner: '
             f"{esc(L.prune_text(record))}</div>"
             + (f'<div class="facts">storage: {esc(L.text(record.get("storage")))}</div>'
                if record.get("storage") else "")
             + (f'<div class="facts">stopped early: {esc(L.text(record.get("reason")))}</div>'
                if record.get("reason") else ""))
    board = leaderboard_table(record) if L.trials(record) else "<p>No trials yet.</p>"
    charts = "".join(f'<div class="chart"><canvas id="chart-param-{i}"></canvas></div>'
                     for i in range(len(L.param_names(record))))
    notices = "".join(f"<li>{esc(L.text(n))}</li>" for n in L._list(record.get("notices")))
    rest = [[L.text(k), v if isinstance(v, str) else json.dumps(v, default=str)]
            for k, v in s.items() if k != "params"]
    body = ('<header><h1>nnprof sweep <span class="script">'
            + esc(L.text(record.get("script")) or "?") + "</span></h1>"
            + (f'<div class="argv">{esc(argv)}</div>' if argv else "") + facts + "</header><main>"
            + _cards(record)
            + '<section id="leaderboard"><h2>Leaderboard</h2>' + board
            + '<p class="muted">Best first: complete trials by their value, then pruned trials'
            " by the last value they reported (in parentheses), then running, then failed."
            "</p></section>"
            '<section id="curves"><h2>Every trial\'s curve</h2>'
            '<div class="chart tall"><canvas id="chart-curves"></canvas></div>'
            '<p class="muted" id="curves-note"></p></section>'
            + (f'<section id="params"><h2>Value against each parameter</h2>'
               f'<div class="row">{charts}</div></section>' if charts else "")
            + _failed(record)
            + (f'<section id="notices"><h2>Notices</h2><ul>{notices}</ul></section>'
               if notices else "")
            + '<section id="settings"><h2>Search space and settings</h2>' + _space(record)
            + table(["", ""], rest) + "</section></main>")
    return page(f"nnprof sweep: {L.text(record.get('script'))} "
                f"{L.text(record.get('study'))}".strip(), body, chart_data(record))
