"""Building blocks of nnprof's HTML pages: one self-contained document per page.

Everything a page needs is inlined: its CSS and script and the bundled charting
library (Chart.js, MIT, ``assets/``), so it opens offline. Text that comes from the
script (names, messages, tracebacks) is escaped here, where the page is built, and
chart data travels as JSON inside a ``<script type="application/json">`` block with
``<``, ``>`` and ``&`` escaped, read with ``JSON.parse`` and put on the page with
``textContent`` only.
"""
from __future__ import annotations

import html
import json
import os
from functools import lru_cache
from typing import Optional

PHASE_COLORS = {
    "data": "#4e79a7", "prep": "#a0cbe8", "forward": "#f28e2b", "loss": "#ffbe7d",
    "backward": "#59a14f", "optimizer": "#e15759", "other": "#bab0ac",
}
_ASSETS = os.path.join(os.path.dirname(__file__), "assets")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as fh:
        return fh.read()


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def data_block(obj, element_id: str) -> str:
    """JSON for the page's script, safe inside ``<script>`` whatever the strings hold."""
    from ..rundir.files import json_safe as _clean  # NaN and infinities become null
    text = json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def page(title: str, body: str, data: dict) -> str:
    """The whole document: CSS, body, data, Chart.js and the page script, all inline."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{esc(title)}</title>\n<style>{asset('report.css')}</style>\n</head>\n"
        f"<body>\n{body}\n{data_block(data, 'nnprof-data')}\n"
        f"<script>{asset('chart.umd.min.js')}</script>\n"
        f"<script>{asset('report.js')}</script>\n</body>\n</html>\n")


# -- formatting ----------------------------------------------------------------
def ms(v) -> str:
    return "-" if v is None else f"{v * 1e3:,.2f}"


def pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def num(v, fmt: str = "{:.4g}") -> str:
    return "-" if v is None else fmt.format(v)


def table(headers, rows, cls: str = "") -> str:
    """Cells are escaped here, unless given as ``Markup``."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else esc(c)}</td>"
                                    for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Markup(str):
    """Already-escaped HTML."""


_SEVERITY = {"info": "ok", "warn": "warn", "fail": "bad", "pass": "ok", "skip": "muted"}


def verdict_card(title: str, finding: Optional[dict], extra: str = "") -> str:
    if not finding:
        return ""
    verdict = finding.get("verdict")
    sev = finding.get("severity") or {"pass": "info", "warn": "warn", "fail": "fail"}.get(
        str(verdict), "info")
    if verdict in ("pass", "warn", "fail", "skip"):
        sev = {"pass": "info", "warn": "warn", "fail": "fail", "skip": "skip"}[verdict]
    advice = "".join(f"<li>{esc(a)}</li>" for a in finding.get("advice") or [])
    return (f'<div class="card {_SEVERITY.get(sev, "ok")}"><h3>{esc(title)}: '
            f'<span class="verdict">{esc(verdict)}</span></h3>{extra}'
            + (f"<ul>{advice}</ul>" if advice else "") + "</div>")

