"""The HTML report: one self-contained file (``report.html`` in every run directory).

The page is built from :mod:`nnprof.renderers.htmlkit` (escaping, inlined assets)
with its chart data from :mod:`nnprof.renderers.chartdata` (bounded for long runs);
the ``nnprof check`` and ``nnprof compare`` pages are in
:mod:`nnprof.renderers.htmlpages`.
"""
from __future__ import annotations

from ..analyses.memory import breakdown_text, fits_text
from ..rundir.phases import LOADER_PHASES, PHASES
from .base import Renderer
from .scaling import chart as scaling_chart, html_section as scaling_section
from .chartdata import histogram, line_series, memory_series, sample_series, step_buckets
from .htmlkit import PHASE_COLORS, Markup, esc, ms, num, page, pct, table, verdict_card
from .htmlpages import ladder_card, render_compare


# -- the run report ------------------------------------------------------------
class HtmlRenderer(Renderer):
    name = "html"
    default_name = "report.html"

    def render_compare(self, comparison: dict) -> str:
        return render_compare(comparison)

    def render(self, summary: dict, run=None) -> str:
        s = summary
        title = f"nnprof: {s.get('script') or 'run'}"
        parts = [self._header(s), '<main>', self._verdicts(s), self._distributed(s),
                 self._step_charts(s, run),
                 self._phase_table(s), self._training(s), self._loaders(s),
                 scaling_section(s), self._machine(s, run), self._trace(s),
                 self._environment(s, run), "</main>"]
        return page(title, "\n".join(p for p in parts if p), self._data(s, run))

    # -- static parts (escaped here) --------------------------------------------
    def _header(self, s) -> str:
        steps = s.get("steps") or {}
        status = s.get("status")
        cls = {"completed": "ok", "stopped": "ok", "incomplete": "warn",
               "interrupted": "warn", "pruned": "warn"}.get(status, "bad")
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
            every = (f" (all {esc(ev['train_steps'])} train steps, warm-up included)"
                     if ev.get("train_steps") else "")
            extra += (f"<p>step p50 {ms(ev.get('p50_s'))} ms, p95 {ms(ev.get('p95_s'))} ms, "
                      f"max {ms(ev.get('max_s'))} ms{every}</p>")
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
        if s.get("startup"):
            cards.append(verdict_card("loader start-up", s["startup"]))
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
        for k in ("no_grad", "zero_grad", "not_in_optimizer", "unchanged", "below_resolution",
                  "unjudged", "frozen", "unfrozen_later"):
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
        cw = phases.get("comm_wait")
        if cw:
            rows.append(["comm_wait (within backward: waiting for other ranks)",
                         ms(cw.get("mean_s")), ms(cw.get("p50_s")), ms(cw.get("p95_s")),
                         pct(cw.get("share"))] + (["", ""] if gpu else []))
        over = s.get("phases_over", "train")
        basis = s.get("basis") or {}
        note = (f'<p class="muted" id="basis">Over {esc(basis["text"])}.</p>'
                if basis.get("of") and basis.get("text") else "")
        return (f'<section id="phases"><h2>Time per {esc(over)} step</h2>'
                + table(headers, rows, "num") + note + "</section>")

    def _distributed(self, s) -> str:
        d = s.get("distributed")
        if not d:
            return ""
        rows = []
        for r, v in sorted((d.get("ranks") or {}).items(), key=lambda kv: int(kv[0])):
            ph = v.get("phases") or {}
            steps = v.get("steps") or {}
            status = str(v.get("status")) + (f" (exit {v['exit_code']})"
                                             if v.get("exit_code") not in (None, 0) else "")
            workers = v.get("workers_max") or sum(int(x.get("num_workers") or 0)
                                                  for x in v.get("loaders") or [])
            rows.append([r, status, steps.get("train", 0), steps.get("eval", 0),
                         ms((v.get("step_time") or {}).get("p50_s"))]
                        + [ms((ph.get(p) or {}).get("mean_s")) if ph.get(p) else "-"
                           for p in ("data", "prep", "forward", "loss", "backward", "comm_wait",
                                     "optimizer", "other")]
                        + [workers, v.get("bottleneck") or "-", v.get("host") or "-"])
        st = d.get("straggler")
        card = verdict_card("straggler", dict(st, severity={"critical": "fail"}.get(
            st.get("severity"), st.get("severity"))), "") if st else (
            '<div class="card ok"><h3>straggler: <span class="verdict">none</span></h3>'
            "<p>No rank keeps the others waiting 5% of the step or more.</p></div>")
        return ('<section id="distributed"><h2>Ranks</h2>'
                f'<p>{esc(d.get("world_size"))} ranks on {esc(d.get("nodes"))} node(s); '
                f'{esc(d.get("aligned_steps"))} train steps ran on every rank and are aligned '
                f'by index. The other sections show rank {esc(d.get("basis_rank"))}'
                + (" (the straggler: the job's steps last as long as its)" if st else "")
                + '.</p><div class="cards">' + card + "</div>"
                + table(["rank", "status", "train steps", "eval steps", "step p50 ms",
                         "data ms", "prep ms", "forward ms", "loss ms", "backward ms",
                         "comm_wait ms", "optimizer ms", "other ms", "loader workers",
                         "bottleneck", "host"], rows, "num")
                + '<div class="chart"><canvas id="chart-skew"></canvas></div></section>')

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
            n = d.get("batches_measured") or 0
            for t in d.get("transform_by_name") or []:
                total = t.get("total_s")
                tf.append([d.get("id"), t.get("name"), ms(total),
                           ms(total / n) if n and total is not None else "-",
                           pct(t.get("share_of_loading"))])
        passes = []
        for d in loaders:
            down = d.get("shutdown_per_pass_s") or []
            for i, up in enumerate(d.get("startup_per_pass_s") or []):
                if d.get("num_workers"):
                    passes.append([d.get("id"), i + 1, ms(up),
                                   ms(down[i]) if i < len(down) and down[i] is not None else "-"])
        return ('<section id="loaders"><h2>Data loading</h2>'
                '<p class="muted">wait: main-process time in <code>next()</code> per batch; '
                'fetch / transform / collate: per batch where the batch is made (main process '
                'or worker); capacity: batches per second the loader can make; demand: batches '
                'per second the training loop asks for.</p>'
                + table(["loader", "built at", "dataset", "workers", "steps", "wait ms",
                         "fetch ms", "transform ms", "collate ms", "batch ms", "makes b/s",
                         "needs b/s", "workers needed"], rows, "num")
                + '<div class="chart short"><canvas id="chart-loaders"></canvas></div>'
                + (table(["loader", "transform", "total ms", "ms per batch",
                          "share of loading"], tf, "num")
                   if tf else "")
                + (table(["loader", "pass", "worker start-up ms", "worker shutdown ms"],
                         passes, "num") if passes else "")
                + "</section>")

    def _machine(self, s, run) -> str:
        host, gpu, mem = s.get("host"), s.get("gpu"), s.get("gpu_memory") or {}
        if not host and not gpu and mem.get("peak_bytes") is None and not s.get("memory"):
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
        rows += self._memory_rows(s.get("memory") or {})
        chart = ('<div class="row"><div class="chart"><canvas id="chart-samples"></canvas></div>'
                 '<div class="chart"><canvas id="chart-memory"></canvas></div></div>'
                 if run is not None else "")
        return ('<section id="machine"><h2>Machine</h2>' + table(["", ""], rows) + chart
                + "</section>")

    @staticmethod
    def _memory_rows(m: dict) -> list:
        def gb(v):
            return "-" if v is None else (f"{v / 1e9:.2f} GB" if v >= 1e8 else f"{v / 1e6:.1f} MB")
        rows = []
        host, b, fits = m.get("host") or {}, m.get("breakdown") or {}, m.get("fits") or {}
        if host:
            rows.append(["host memory (RSS)", f"{gb(host.get('rss_start_bytes'))} at start, "
                         f"{gb(host.get('rss_end_bytes'))} at end, peak "
                         f"{gb(host.get('rss_peak_bytes'))}"
                         + (f"; loader workers up to {gb(host['workers_rss_peak_bytes'])}"
                            if host.get("workers_rss_peak_bytes") else "")])
        if b:
            rows.append(["what it is made of", breakdown_text(b)])
            for key, title in (("activations_basis", "activations: basis"),
                               ("temporaries_basis", "backward temporaries: basis")):
                if b.get(key):
                    rows.append([title, b[key]])
        if fits:
            rows.append(["what fits (projection)", fits_text(fits)])
        tr = m.get("trace") or {}
        for site in (tr.get("top_sites") or [])[:10]:
            rows.append([f"allocation site (--memory-trace, {tr.get('file')})",
                         f"{gb(site.get('bytes'))} in {site.get('allocations')} allocations at "
                         f"{site.get('site')}"])
        return rows

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
        if s.get("distributed"):
            data["skew"] = s["distributed"].get("skew")
        data["scaling"] = scaling_chart(s.get("scaling"))
        if run is not None:
            data["memory"] = memory_series(run.steps, (s.get("memory") or {}))
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

