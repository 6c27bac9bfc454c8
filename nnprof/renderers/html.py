"""The HTML report: one self-contained file (``report.html`` in every run directory).

Everything it needs is inlined: the page's own CSS and script and the bundled
charting library (Chart.js, MIT, ``assets/``), so it opens offline. Text that
comes from the script (names, messages, tracebacks) is escaped where the page is
built, and the chart data travels as JSON inside a ``<script type="application/json">``
block with ``<``, ``>`` and ``&`` escaped, read with ``JSON.parse`` and put on the
page with ``textContent`` only.

Long runs stay light: the per-step charts get at most :data:`MAX_BARS` bars (a bar
is the mean of a bucket of consecutive steps, with the bucket's slowest step and
its over-budget count drawn on top) and the time series at most
:data:`MAX_POINTS` points; the full data stays in ``steps.csv``.
"""
from __future__ import annotations

import html
import json
import math
import os
from functools import lru_cache
from typing import Optional

from ..instrument.steps import LOADER_PHASES, PHASES
from . import Renderer

MAX_BARS = 600
MAX_POINTS = 1500
HIST_BINS = 40
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
    from ..summary import _clean  # NaN and infinities become null
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


# -- the run report ------------------------------------------------------------
class HtmlRenderer(Renderer):
    name = "html"
    default_name = "report.html"

    def render_compare(self, comparison: dict) -> str:
        return render_compare(comparison)

    def render(self, summary: dict, run=None) -> str:
        s = summary
        title = f"nnprof: {s.get('script') or 'run'}"
        parts = [self._header(s), '<main>', self._verdicts(s), self._step_charts(s, run),
                 self._phase_table(s), self._training(s), self._loaders(s),
                 self._machine(s, run), self._trace(s), self._environment(s, run), "</main>"]
        return page(title, "\n".join(p for p in parts if p), self._data(s, run))

    # -- static parts (escaped here) --------------------------------------------
    def _header(self, s) -> str:
        steps = s.get("steps") or {}
        status = s.get("status")
        cls = {"completed": "ok", "stopped": "ok", "incomplete": "warn",
               "interrupted": "warn"}.get(status, "bad")
        argv = " ".join(str(a) for a in s.get("argv") or [])
        code = s.get("exit_code")
        facts = [f"{steps.get('train', 0)} train + {steps.get('eval', 0)} eval steps",
                 f"budget {s.get('budget_s', 1.0):g} s per step"]
        if s.get("wall_s"):
            facts.append(f"{s['wall_s']:.2f} s wall")
        if s.get("started_at"):
            facts.append(f"started {s['started_at']}")
        overhead = s.get("overhead") or {}
        if overhead.get("per_step_s") is not None:
            facts.append(f"nnprof's own cost about {overhead['per_step_s'] * 1e6:.0f} µs per "
                         "step" + (f" ({pct(overhead.get('share'))} of the mean step)"
                                   if overhead.get("share") is not None else "")
                         + ", estimated from its hook costs")
        return ('<header><h1>nnprof <span class="script">' + esc(s.get("script") or "?")
                + "</span></h1>"
                + (f'<div class="argv">{esc(argv)}</div>' if argv else "")
                + f'<div class="facts"><span class="badge {cls}">{esc(status)}'
                + (f" (exit {esc(code)})" if code not in (None, 0) else "") + "</span> "
                + " · ".join(esc(f) for f in facts) + "</div></header>")

    def _verdicts(self, s) -> str:
        cards = []
        b = s.get("budget") or {}
        ev = b.get("evidence") or {}
        extra = ""
        if ev.get("count"):
            listed = ev.get("over_budget_steps") or []
            shown = ", ".join(f"#{d.get('train_index', d.get('index'))} {d['wall_s']:.2f}s "
                              f"({d.get('phase')})" for d in listed[:10])
            more = f" and {ev['count'] - 10} more" if ev["count"] > 10 else ""
            extra += (f"<p>{esc(ev['count'])} of {esc(ev.get('train_steps'))} train steps over "
                      f"budget ({pct(ev.get('share'))}): {esc(shown)}{esc(more)}</p>")
        ep = s.get("epoch") or {}
        if ep.get("projected_s") is not None:
            extra += (f"<p>projected epoch: {ep['projected_s']:.1f} s ({esc(ep['steps_per_epoch'])}"
                      f" steps of loader {esc(ep['loader'])})</p>")
        if ev.get("p50_s") is not None:
            extra += (f"<p>step p50 {ms(ev.get('p50_s'))} ms, p95 {ms(ev.get('p95_s'))} ms, "
                      f"max {ms(ev.get('max_s'))} ms</p>")
        cards.append(verdict_card("budget", b, extra))
        bn = s.get("bottleneck") or {}
        bev = bn.get("evidence") or {}
        extra = ""
        if bev.get("shares"):
            extra = self._share_bar(bev["shares"]) + (
                f"<p class=\"muted\">{esc(bev.get('source', 'host'))} time: input "
                f"{pct(bev.get('input_share'))}, compute {pct(bev.get('compute_share'))}, "
                f"optimizer {pct(bev.get('optimizer_share'))}, other "
                f"{pct(bev.get('other_share'))}"
                + (f"; first {esc(bev['warmup_steps_excluded'])} step left out as warm-up"
                   if bev.get("warmup_steps_excluded") else "") + "</p>")
        cards.append(verdict_card("bottleneck", bn, extra))
        for key, title in (("wiring", "wiring"), ("loss_at_init", "loss at init")):
            f = s.get(key)
            if f and f.get("verdict") not in (None, "skip"):
                cards.append(verdict_card(title, f, self._wiring_lists(f) if key == "wiring"
                                          else ""))
        for f in s.get("hardware") or []:
            cards.append(verdict_card(f"machine ({f.get('name', '')})", f))
        for f in (s.get("hotspots") or {}).get("findings") or []:
            cards.append(verdict_card(f"hotspot ({f.get('name', '')})", f))
        check = s.get("check")
        if isinstance(check, dict) and check.get("rungs"):
            cards.append(ladder_card(check))
        return '<section id="verdicts"><h2>Verdicts</h2><div class="cards">' + "".join(
            cards) + "</div></section>"

    @staticmethod
    def _wiring_lists(f) -> str:
        ev = f.get("evidence") or {}
        out = []
        for k in ("no_grad", "zero_grad", "not_in_optimizer", "unchanged", "frozen"):
            names = ev.get(k) or []
            if names:
                shown = ", ".join(str(n) for n in names[:12])
                out.append(f"<p><b>{esc(k)}</b>: {esc(shown)}"
                           + (f" and {len(names) - 12} more" if len(names) > 12 else "") + "</p>")
        return "".join(out)

    @staticmethod
    def _share_bar(shares: dict) -> str:
        segs = []
        for p in PHASES:
            v = shares.get(p) or 0
            if v > 0:
                segs.append(f'<span style="width:{v * 100:.2f}%;background:{PHASE_COLORS[p]}" '
                            f'title="{esc(p)} {pct(v)}"></span>')
        legend = " ".join(f'<span class="key"><i style="background:{PHASE_COLORS[p]}"></i>'
                          f'{esc(p)} {pct(shares.get(p))}</span>' for p in PHASES
                          if shares.get(p))
        return f'<div class="sharebar">{"".join(segs)}</div><div class="legend">{legend}</div>'

    def _step_charts(self, s, run) -> str:
        if run is None:
            return ""
        return ('<section id="steps"><h2>Steps</h2>'
                '<p class="muted" id="steps-note"></p>'
                '<div class="chart tall"><canvas id="chart-steps"></canvas></div>'
                '<div class="row"><div class="chart"><canvas id="chart-hist"></canvas></div>'
                '<div class="chart"><canvas id="chart-eval"></canvas></div></div></section>')

    def _phase_table(self, s) -> str:
        phases = s.get("phases") or {}
        gpu = s.get("gpu_phases")
        headers = ["phase", "mean ms", "p50 ms", "p95 ms", "share"]
        if gpu:
            headers += ["GPU mean ms", "GPU share"]
        rows = []
        for p in PHASES:
            st = phases.get(p) or {}
            row = [Markup(f'<i class="sw" style="background:{PHASE_COLORS[p]}"></i>{esc(p)}'),
                   ms(st.get("mean_s")), ms(st.get("p50_s")), ms(st.get("p95_s")),
                   pct(st.get("share"))]
            if gpu:
                g = gpu.get(p) or {}
                row += [ms(g.get("mean_s")), pct(g.get("share"))]
            rows.append(row)
        st = s.get("step_time") or {}
        rows.append([Markup("<b>step</b>"), ms(st.get("mean_s")), ms(st.get("p50_s")),
                     ms(st.get("p95_s")), "100%"] + (["", ""] if gpu else []))
        for p in LOADER_PHASES:
            lp = phases.get(p) or {}
            if lp.get("total_s"):
                where = lp.get("where", "main")
                label = f"{p} ({'per batch, in workers' if where == 'workers' else 'within data'})"
                rows.append([label, ms(lp.get("mean_s")), ms(lp.get("p50_s")),
                             ms(lp.get("p95_s")), pct(lp.get("share"))
                             + (" of worker time" if where == "workers" else "")]
                            + (["", ""] if gpu else []))
        over = s.get("phases_over", "train")
        return (f'<section id="phases"><h2>Time per {esc(over)} step</h2>'
                + table(headers, rows, "num") + "</section>")

    def _training(self, s) -> str:
        loss = s.get("loss")
        metrics = s.get("metrics") or []
        curves = s.get("curves") or {}
        if not loss and not metrics and not curves.get("val_loss"):
            return ""
        out = ['<section id="training"><h2>Training</h2>']
        if loss:
            out.append(f"<p>train loss: first {num(loss.get('first'))}, last "
                       f"{num(loss.get('last'))}, min {num(loss.get('min'))} over "
                       f"{esc(loss.get('count'))} steps</p>")
        out.append('<div class="row"><div class="chart"><canvas id="chart-loss"></canvas></div>'
                   '<div class="chart"><canvas id="chart-metrics"></canvas></div></div>')
        if metrics:
            rows = [[m.get("pass"), m.get("after_train_steps"), m.get("task"), m.get("classes"),
                     num(m.get("accuracy"), "{:.4f}"), num(m.get("precision_macro"), "{:.4f}"),
                     num(m.get("recall_macro"), "{:.4f}"), num(m.get("f1_macro"), "{:.4f}"),
                     m.get("support")] for m in metrics[-20:]]
            out.append(table(["pass", "after train steps", "task", "classes", "accuracy",
                              "precision (macro)", "recall (macro)", "F1 (macro)", "support"],
                             rows, "num"))
        out.append("</section>")
        return "".join(out)

    def _loaders(self, s) -> str:
        loaders = s.get("loader") or []
        if not loaders:
            return ""
        rows = []
        for d in loaders:
            cap, dem = d.get("capacity_bps"), d.get("demand_bps")
            rows.append([d.get("id"), d.get("site"), d.get("dataset"), d.get("num_workers"),
                         f"{(d.get('steps') or {}).get('train', 0)}+"
                         f"{(d.get('steps') or {}).get('eval', 0)}",
                         ms(d.get("data_wait_s")), ms(d.get("fetch_s")), ms(d.get("transform_s")),
                         ms(d.get("collate_s")), ms(d.get("batch_s")), num(cap, "{:.1f}"),
                         num(dem, "{:.1f}"), d.get("workers_needed")])
        tf = []
        for d in loaders:
            for t in d.get("transform_by_name") or []:
                tf.append([d.get("id"), t.get("name"), ms(t.get("total_s")),
                           pct(t.get("share_of_loading"))])
        return ('<section id="loaders"><h2>Data loading</h2>'
                '<p class="muted">wait: main-process time in <code>next()</code> per batch; '
                'fetch / transform / collate: per batch where the batch is made (main process '
                'or worker); capacity: batches per second the loader can make; demand: batches '
                'per second the training loop asks for.</p>'
                + table(["loader", "built at", "dataset", "workers", "steps", "wait ms",
                         "fetch ms", "transform ms", "collate ms", "batch ms", "makes b/s",
                         "needs b/s", "workers needed"], rows, "num")
                + '<div class="chart short"><canvas id="chart-loaders"></canvas></div>'
                + (table(["loader", "transform", "total ms", "share of loading"], tf, "num")
                   if tf else "")
                + "</section>")

    def _machine(self, s, run) -> str:
        host, gpu, mem = s.get("host"), s.get("gpu"), s.get("gpu_memory") or {}
        if not host and not gpu and mem.get("peak_bytes") is None:
            return ""
        rows = []
        if host:
            cpu = host.get("cpu_percent") or {}
            proc = host.get("process_cpu_percent") or {}
            if cpu:
                rows.append(["system CPU", f"{cpu.get('mean', 0):.0f}% mean, p95 "
                             f"{cpu.get('p95', 0):.0f}% of {host.get('cpus') or '?'} CPUs"])
            if proc:
                rows.append(["this process", f"{proc.get('mean', 0):.0f}% of a core"])
            if host.get("process_rss_peak_bytes"):
                rows.append(["RSS peak", f"{host['process_rss_peak_bytes'] / 1e9:.2f} GB"])
            if host.get("workers_max"):
                rows.append(["loader workers", f"up to {host['workers_max']} at once, "
                             f"{(host.get('workers_cpu_percent') or {}).get('mean', 0):.0f}% "
                             "of a core in all (mean)"])
        for i, d in sorted(((gpu or {}).get("devices") or {}).items()):
            util = d.get("util_percent") or {}
            line = f"util {util.get('mean', 0):.0f}% mean" if util else ""
            if d.get("util_train_mean") is not None:
                line += f", {d['util_train_mean']:.0f}% in train steps"
            idle = d.get("idle") or {}
            if idle.get("share") is not None:
                line += f", idle {idle['share'] * 100:.0f}% of train-step time"
            if d.get("mem_used_peak_bytes") is not None and d.get("mem_total_bytes"):
                line += (f", memory peak {d['mem_used_peak_bytes'] / 1e9:.1f} of "
                         f"{d['mem_total_bytes'] / 1e9:.1f} GB")
            rows.append([f"GPU{i} {d.get('name', '')}".strip(), line])
        if mem.get("peak_bytes") is not None:
            rows.append(["GPU tensors", f"peak {mem['peak_bytes'] / 1e9:.2f} GB (allocator)"])
        chart = ('<div class="chart"><canvas id="chart-samples"></canvas></div>'
                 if run is not None else "")
        return ('<section id="machine"><h2>Machine</h2>' + table(["", ""], rows) + chart
                + "</section>")

    def _trace(self, s) -> str:
        tr = s.get("trace")
        if not tr:
            return ""
        out = ['<section id="trace"><h2>torch.profiler windows (--trace)</h2>',
               '<p class="muted">Open them with <code>tensorboard --logdir RUN/tensorboard'
               '</code>, tab PyTorch Profiler. The steps the profiler touched are left out of '
               'the statistics above: ' + esc(", ".join(
                   str(i) for i in (tr.get("excluded_steps") or [])[:30]) or "none") + ".</p>"]
        if tr.get("error"):
            out.append(f"<p>{esc(tr['error'])}</p>")
        for w in tr.get("windows") or []:
            steps = w.get("steps") or []
            where = f"steps {steps[0]}\u2013{steps[-1]}" if steps else "no step recorded"
            why = str(w.get("reason"))
            if w.get("predicted_train_step") is not None:
                why += (f" (train step {w['predicted_train_step']}, slow every "
                        f"{w.get('period')} train steps)")
            out.append(f"<h3>{esc(why)}: {esc(where)}</h3>"
                       + (f"<p class=\"muted\">{esc(w.get('file'))}</p>" if w.get("file") else ""))
            ops = w.get("top_ops") or []
            dev = any(o.get("self_device_ms") for o in ops)
            if ops:
                rows = [[o.get("name"), o.get("calls"), num(o.get("self_cpu_ms"), "{:.3f}")]
                        + ([num(o.get("self_device_ms"), "{:.3f}")] if dev else [])
                        for o in ops]
                out.append(table(["operator", "calls", "self CPU ms"]
                                 + (["self device ms"] if dev else []), rows, "num"))
        out.append("</section>")
        return "".join(out)

    def _environment(self, s, run) -> str:
        env = dict(s.get("environment") or {})
        rows = [[k, v] for k, v in env.items()]
        for m in s.get("models") or []:
            rows.append(["model", f"{m.get('name')} ({m.get('class')}): "
                                  f"{m.get('parameters', 0):,} parameters, "
                                  f"{m.get('trainable', 0):,} trainable"])
        for o in s.get("optimizers") or []:
            groups = "; ".join(", ".join(f"{k}={v}" for k, v in g.items())
                               for g in o.get("groups") or [])
            rows.append(["optimizer", f"{o.get('class')}: {groups}"])
        for d in s.get("loader") or []:
            rows.append([f"loader {d.get('id')}",
                         f"{d.get('dataset')}, batch {d.get('batch_size')}, "
                         f"workers {d.get('num_workers')}, pin_memory {d.get('pin_memory')}, "
                         f"persistent {d.get('persistent_workers')}"])
        notices = "".join(f"<li>{esc(n)}</li>" for n in s.get("notices") or [])
        return ('<section id="environment"><h2>Environment</h2>' + table(["", ""], rows)
                + (f'<h3>Notices</h3><ul class="notices">{notices}</ul>' if notices else "")
                + "</section>")

    # -- chart data --------------------------------------------------------------
    def _data(self, s, run) -> dict:
        data = {"kind": "run", "phases": list(PHASES), "colors": PHASE_COLORS,
                "budget_s": s.get("budget_s", 1.0)}
        curves = s.get("curves") or {}
        data["val_loss"] = curves.get("val_loss") or []
        data["metrics"] = [{k: m.get(k) for k in ("after_train_steps", "accuracy",
                                                   "precision_macro", "recall_macro", "f1_macro")}
                           for m in s.get("metrics") or []]
        data["loaders"] = [{"id": d.get("id"), "wait": d.get("data_wait_s"),
                            "batch": d.get("batch_s"), "capacity": d.get("capacity_bps"),
                            "demand": d.get("demand_bps")} for d in s.get("loader") or []]
        if run is None:
            data["train_loss"] = line_series(curves.get("train_loss") or [])
            return data
        steps = run.steps
        train = steps[steps["kind"] == "train"]
        data["train"] = step_buckets(train, "train_index", s.get("budget_s", 1.0))
        evals = steps[steps["kind"] == "eval"]
        data["eval"] = step_buckets(evals, "index", s.get("budget_s", 1.0)) if len(evals) else None
        data["hist"] = histogram(train["wall_s"].tolist() if len(train) else
                                 steps["wall_s"].tolist())
        pts = [[int(i), float(v)] for i, v in zip(train["train_index"], train["loss"])
               if v == v and i == i] if len(train) else []
        data["train_loss"] = line_series(pts)
        data["samples"] = sample_series(run)
        return data


def step_buckets(df, xcol: str, budget_s: float, max_bars: int = MAX_BARS) -> dict:
    """Per-step phase times, in at most ``max_bars`` buckets of consecutive steps."""
    import numpy as np
    n = len(df)
    size = max(1, math.ceil(n / max_bars))
    out = {"n": n, "bucket": size, "x0": [], "x1": [], "phases": {p: [] for p in PHASES},
           "wall_mean": [], "wall_max": [], "over": []}
    if not n:
        return out
    x = df[xcol].to_numpy(dtype=float)
    wall = df["wall_s"].to_numpy(dtype=float)
    cols = {p: df[f"{p}_s"].to_numpy(dtype=float) for p in PHASES}
    idx = np.arange(0, n, size)
    counts = np.diff(np.append(idx, n))

    def means(a):
        return (np.add.reduceat(np.nan_to_num(a), idx) / counts).round(7).tolist()
    out["x0"] = x[idx].astype(int).tolist()
    out["x1"] = x[np.append(idx[1:], n) - 1].astype(int).tolist()
    for p in PHASES:
        out["phases"][p] = means(cols[p])
    out["wall_mean"] = means(wall)
    out["wall_max"] = np.maximum.reduceat(np.nan_to_num(wall), idx).round(7).tolist()
    out["over"] = np.add.reduceat((wall > budget_s).astype(int), idx).tolist()
    return out


def histogram(values, bins: int = HIST_BINS) -> dict:
    import numpy as np
    v = np.asarray([x for x in values if x == x], dtype=float)
    if not len(v):
        return {"edges": [], "counts": []}
    hi = float(np.percentile(v, 99.5)) if len(v) > 200 else float(v.max())
    lo = float(v.min())
    if hi <= lo:
        hi = lo + max(lo * 0.01, 1e-6)
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return {"edges": edges.round(7).tolist(), "counts": counts.tolist(),
            "clipped": int((v > hi).sum())}


def line_series(points, max_points: int = MAX_POINTS) -> dict:
    """``[[x, y], ...]`` in at most ``max_points`` buckets: mean, min and max."""
    import numpy as np
    if not points:
        return {"x": [], "mean": [], "min": [], "max": [], "bucket": 1}
    a = np.asarray(points, dtype=float)
    n = len(a)
    size = max(1, math.ceil(n / max_points))
    idx = np.arange(0, n, size)
    counts = np.diff(np.append(idx, n))
    y = a[:, 1]
    return {"x": a[idx, 0].astype(int).tolist(),
            "mean": (np.add.reduceat(y, idx) / counts).round(6).tolist(),
            "min": np.minimum.reduceat(y, idx).round(6).tolist(),
            "max": np.maximum.reduceat(y, idx).round(6).tolist(), "bucket": size}


_SAMPLE_SERIES = (("host", "cpu_percent", "system CPU %"),
                  ("host", "process_cpu_percent", "this process CPU %"),
                  ("gpu0", "util_percent", "GPU0 util %"))


def sample_series(run, max_points: int = MAX_POINTS) -> dict:
    """Host and GPU samples over time (samples.csv), each downsampled by bucket means."""
    import numpy as np
    try:
        df = run.samples
    except Exception:
        return {}
    out = {}
    if not len(df):
        return out
    for source, metric, label in _SAMPLE_SERIES:
        sel = df[(df["source"] == source) & (df["metric"] == metric)]
        if not len(sel):
            continue
        t = sel["t_s"].to_numpy(dtype=float)
        v = sel["value"].to_numpy(dtype=float)
        size = max(1, math.ceil(len(t) / max_points))
        idx = np.arange(0, len(t), size)
        counts = np.diff(np.append(idx, len(t)))
        out[label] = {"t": (np.add.reduceat(t, idx) / counts).round(3).tolist(),
                      "v": (np.add.reduceat(v, idx) / counts).round(2).tolist()}
    return out


# -- the check ladder ------------------------------------------------------------
def ladder_rows(check: dict) -> list:
    from .checklist import short
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
            '<section id="curves"><h2>Overfit curves</h2>'
            '<div class="chart tall"><canvas id="chart-overfit"></canvas></div></section>'
            '<section id="advice"><h2>Advice</h2>' + "".join(advice) + "</section>"
            '<section id="settings"><h2>Settings</h2>'
            + table(["", ""], [[k, v] for k, v in settings.items()]
                    + ([["training loader", json.dumps(loader, default=str)]] if loader else []))
            + "</section></main>")
    curves = {}
    for r in check.get("rungs") or []:
        curve = (r.get("evidence") or {}).get("curve")
        if r.get("name", "").startswith("overfit-") and curve:
            curves[r["name"]] = line_series(curve)
    return page(f"nnprof check: {check.get('script') or ''}", body,
                {"kind": "check", "curves": curves})


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
