"""The terminal report (rich)."""
from __future__ import annotations

import io

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..analyses.memory import breakdown_text, fits_text
from ..rundir.phases import LOADER_PHASES, PHASES
from .base import Renderer

_VERDICT_STYLE = {"info": "green", "warn": "yellow", "fail": "red"}


def _ms(v) -> str:
    return "-" if v is None else f"{v * 1e3:,.2f}"


def _gb(v) -> str:
    if v is None:
        return "-"
    return f"{v / 1e9:.2f} GB" if abs(v) >= 1e8 else f"{v / 1e6:.1f} MB"


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


class TerminalRenderer(Renderer):
    name = "terminal"

    def __init__(self, color: bool = False, width: int = 100, **_options) -> None:
        self.color = color
        self.width = width

    def render_compare(self, comparison: dict) -> str:
        from .comparison import terminal
        return terminal(comparison, color=self.color, width=self.width)

    def render(self, s: dict, run=None) -> str:
        buf = io.StringIO()
        con = Console(file=buf, force_terminal=self.color, no_color=not self.color,
                      width=self.width, highlight=False, emoji=False)
        steps = s.get("steps") or {}
        script = escape(str(s.get("script") or "?"))
        con.rule(f"[bold]nnprof[/] {script}")
        code = s.get("exit_code")
        con.print(f"status [bold]{escape(str(s.get('status')))}[/]"
                  + (f" (exit {code})" if code not in (None, 0) else "")
                  + f" | {steps.get('train', 0)} train + {steps.get('eval', 0)} eval steps"
                  + (f" | {s['wall_s']:.2f} s" if s.get("wall_s") else "")
                  + f" | budget {s.get('budget_s', 1.0):g} s per step")
        self._distributed(con, s)
        self._phases(con, s)
        self._budget(con, s)
        self._bottleneck(con, s)
        if s.get("startup"):
            self._finding(con, "loader start-up", s["startup"])
        self._loaders(con, s)
        self._hotspots(con, s)
        self._machine(con, s)
        self._training(con, s)
        self._scaling(con, s)
        self._trace(con, s)
        ov = s.get("overhead") or {}
        if ov.get("per_step_s") is not None:
            share = ov.get("share")
            con.print(f"[dim]nnprof's own cost: about {ov['per_step_s'] * 1e6:.0f} µs per step"
                      + (f" ({share * 100:.1f}% of the mean step)" if share is not None else "")
                      + ", estimated from its calibrated hook costs[/]")
        for n in s.get("notices") or []:
            con.print(f"[dim]note:[/] {escape(str(n))}")
        return buf.getvalue()

    def _phases(self, con, s) -> None:
        phases = s.get("phases") or {}
        gpu = s.get("gpu_phases")
        over = s.get("phases_over", "train")
        t = Table(title=f"time per {over} step (ms)", title_justify="left", expand=False)
        for col in ("phase", "mean", "p50", "p95", "share"):
            t.add_column(col, justify="left" if col == "phase" else "right")
        if gpu:
            t.add_column("gpu mean", justify="right")
            t.add_column("gpu share", justify="right")
        for p in PHASES:
            st = phases.get(p) or {}
            row = [p, _ms(st.get("mean_s")), _ms(st.get("p50_s")), _ms(st.get("p95_s")),
                   _pct(st.get("share"))]
            if gpu:
                g = gpu.get(p) or {}
                row += [_ms(g.get("mean_s")), _pct(g.get("share"))]
            t.add_row(*row)
        st = s.get("step_time") or {}
        row = ["[bold]step[/]", _ms(st.get("mean_s")), _ms(st.get("p50_s")),
               _ms(st.get("p95_s")), "100%"]
        t.add_row(*(row + (["", ""] if gpu else [])))
        for p in LOADER_PHASES:
            lp = phases.get(p) or {}
            if lp.get("total_s"):
                where = lp.get("where", "main")
                label = f"  {p} ({'per batch, workers' if where == 'workers' else 'in data'})"
                share = _pct(lp.get("share")) if where != "workers" else \
                    f"{_pct(lp.get('share'))} of w."
                t.add_row(f"[dim]{label}[/]", _ms(lp.get("mean_s")), _ms(lp.get("p50_s")),
                          _ms(lp.get("p95_s")), share, *(["", ""] if gpu else []))
        cw = phases.get("comm_wait")
        if cw:
            t.add_row("[dim]  comm_wait (in backward)[/]", _ms(cw.get("mean_s")),
                      _ms(cw.get("p50_s")), _ms(cw.get("p95_s")), _pct(cw.get("share")),
                      *(["", ""] if gpu else []))
        con.print(t)
        basis = s.get("basis") or {}
        if basis.get("of") and basis.get("text"):
            con.print(f"[dim]over {escape(str(basis['text']))}[/]")

    def _distributed(self, con, s) -> None:
        d = s.get("distributed")
        if d:
            total = (d.get("steps") or {}).get("train")
            con.print(f"[bold]distributed:[/] {d.get('world_size')} ranks on {d.get('nodes')} "
                      f"node(s), {d.get('aligned_steps')} train steps aligned"
                      + (f", {total} in the job" if total is not None else "")
                      + f"; the tables below are rank {d.get('basis_rank')}'s")
            con.print(self._run_table("per rank: ms per train step (steady steps); comm: "
                                      "waiting for the other ranks, in bwd", "rank",
                                      d.get("ranks") or {}))
            st = d.get("straggler")
            if st:
                self._finding(con, "straggler", dict(st, severity={"critical": "fail"}.get(
                    st.get("severity"), st.get("severity"))))
            else:
                con.print("[bold]straggler:[/] [green]none[/] (no rank is consistently the "
                          "slowest by more than the steps vary and 5% of the step)")
        p = s.get("processes") or {}
        if p.get("runs"):
            con.print(f"[bold]processes:[/] {len(p['runs'])} trained on their own (no process "
                      f"group), steps summed; the tables below are {escape(str(p.get('basis')))}'s")
            con.print(self._run_table("per process: ms per train step (steady steps)",
                                      "process", p["runs"]))
        quiet = len(p.get("not_trained") or [])
        if quiet:
            con.print(f"[bold]processes:[/] {quiet} other Python process(es) of the job "
                      "trained nothing (processes.jsonl)")

    def _run_table(self, title: str, label: str, views: dict):
        t = Table(title=title, title_justify="left")
        for col in (label, "status", "train", "p50", "data", "fwd", "bwd", "comm",
                    "opt", "wkrs", "bottleneck"):
            t.add_column(col, justify="left" if col in (label, "status", "bottleneck")
                         else "right", no_wrap=True)

        def order(kv):
            digits = "".join(ch for ch in str(kv[0]) if ch.isdigit())
            return int(digits) if digits else 0

        for r, v in sorted(views.items(), key=order):
            ph = v.get("phases") or {}
            status = str(v.get("status"))
            if v.get("exit_code") not in (None, 0):
                status += f" ({v['exit_code']})"
            t.add_row(escape(str(r)), escape(status),
                      str((v.get("steps") or {}).get("train", 0)),
                      _ms((v.get("step_time") or {}).get("p50_s")),
                      *[_ms((ph.get(q) or {}).get("mean_s")) if ph.get(q) else "-"
                        for q in ("data", "forward", "backward", "comm_wait", "optimizer")],
                      str(v.get("workers_max") or sum(int(x.get("num_workers") or 0)
                                                      for x in v.get("loaders") or [])),
                      escape(str(v.get("bottleneck") or "-")))
        return t

    def _finding(self, con, title: str, f: dict) -> None:
        style = _VERDICT_STYLE.get(f.get("severity", "info"), "white")
        con.print(f"[bold]{title}:[/] [{style} bold]{escape(str(f.get('verdict')))}[/]")
        for a in f.get("advice") or []:
            con.print(f"  - {escape(str(a))}")

    def _budget(self, con, s) -> None:
        b = s.get("budget") or {}
        ev = b.get("evidence") or {}
        self._finding(con, "budget", b)
        if ev.get("count"):
            listed = ev.get("over_budget_steps") or []
            shown = ", ".join(f"#{d.get('train_index', d.get('index'))} "
                              f"{d['wall_s']:.2f}s ({d['phase']})" for d in listed[:8])
            more = f" and {ev['count'] - 8} more" if ev["count"] > 8 else ""
            con.print(f"  over budget: {ev['count']} of {ev.get('train_steps') or '?'} train "
                      f"steps ({_pct(ev.get('share'))}): {escape(shown)}{more}")
        ep = s.get("epoch") or {}
        if ep.get("projected_s") is not None:
            con.print(f"  projected epoch: {ep['projected_s']:.1f} s "
                      f"({ep['steps_per_epoch']} steps of loader {ep['loader']})")

    def _bottleneck(self, con, s) -> None:
        bn = s.get("bottleneck") or {}
        ev = bn.get("evidence") or {}
        self._finding(con, "bottleneck", bn)
        if ev:
            con.print(f"  [dim]evidence ({ev.get('source', 'host')} time): input "
                      f"{_pct(ev.get('input_share'))}, compute {_pct(ev.get('compute_share'))}, "
                      f"optimizer {_pct(ev.get('optimizer_share'))}, other "
                      f"{_pct(ev.get('other_share'))}[/]")

    def _training(self, con, s) -> None:
        loss = s.get("loss")
        if loss:
            con.print(f"[bold]train loss:[/] first {loss['first']:.4g}, last {loss['last']:.4g}, "
                      f"min {loss['min']:.4g} over {loss['count']} steps")
        val = (s.get("curves") or {}).get("val_loss") or []
        metrics = {m.get("after_train_steps"): m for m in s.get("metrics") or []}
        for after, vloss in val[-5:]:
            m = metrics.get(after) or {}
            extra = ""
            if m.get("accuracy") is not None:
                extra = (f", accuracy {m['accuracy']:.3f}, precision {m['precision_macro']:.3f}, "
                         f"recall {m['recall_macro']:.3f}, F1 {m['f1_macro']:.3f} (macro)")
            con.print(f"  validation after {after} train steps: loss {vloss:.4g}{extra}")
        for key, title in (("loss_at_init", "loss at init"), ("wiring", "wiring")):
            f = s.get(key)
            if f and f.get("verdict") not in (None, "skip"):
                f = dict(f, severity={"pass": "info", "warn": "warn", "fail": "fail"}.get(
                    f.get("verdict"), f.get("severity", "info")))
                self._finding(con, title, f)

    def _machine(self, con, s) -> None:
        """What the host and GPU were doing (samples.csv), and the hardware findings."""
        host, gpu = s.get("host"), s.get("gpu")
        if host:
            cpu = host.get("cpu_percent") or {}
            proc = host.get("process_cpu_percent") or {}
            parts = []
            if cpu:
                busy = host.get("cores_busy")
                parts.append(f"CPU {cpu['mean']:.0f}% mean, p95 {cpu['p95']:.0f}% of "
                             f"{host.get('cpus') or host.get('cores')} CPUs"
                             + (f" ({busy:.1f} busy)" if busy is not None else ""))
            if proc:
                rss = host.get("process_rss_peak_bytes")
                parts.append(f"this process {proc['mean']:.0f}% of a core"
                             + (f", RSS peak {rss / 1e9:.2f} GB" if rss else ""))
            if host.get("workers_max"):
                train = host.get("train") or {}
                per = {k: v for k, v in (train.get("worker_cpu_percent") or
                                         host.get("worker_cpu_percent") or {}).items()
                       if v is not None}
                each = ", ".join(f"{v:.0f}%" for v in sorted(per.values(), reverse=True)[:8])
                more = ", ..." if len(per) > 8 else ""
                n = len(per)
                parts.append((f"workers {each}{more} of a core" if each else "workers")
                             + f" ({n} process{'es' if n != 1 else ''}, "
                             f"up to {host['workers_max']} at once)")
            con.print("[bold]machine:[/] " + " | ".join(parts))
        for i, d in sorted(((gpu or {}).get("devices") or {}).items()):
            util = d.get("util_percent") or {}
            line = f"  GPU{i}: util {util.get('mean', 0):.0f}% mean" if util else f"  GPU{i}:"
            if d.get("util_train_mean") is not None and d.get("util_basis") == "train steps":
                line += f" ({d['util_train_mean']:.0f}% in train steps)"
            idle = d.get("idle") or {}
            if idle.get("share") is not None:
                line += (f", idle {idle['share'] * 100:.0f}% of train-step time (p95 step "
                         f"{idle['step_p95'] * 100:.0f}%; NVML averages over 1/6 s to 1 s)")
            if d.get("mem_used_peak_bytes") is not None and d.get("mem_total_bytes"):
                line += (f", memory peak {d['mem_used_peak_bytes'] / 1e9:.1f} of "
                         f"{d['mem_total_bytes'] / 1e9:.1f} GB")
            if d.get("process_mem_peak_bytes"):
                line += f" ({d['process_mem_peak_bytes'] / 1e9:.1f} GB this process)"
            if d.get("power_w"):
                line += f", {d['power_w']['mean']:.0f} W"
            con.print(escape(line))
        mem = s.get("gpu_memory") or {}
        if mem.get("peak_bytes") is not None:
            line = (f"  GPU tensors: peak {mem['peak_bytes'] / 1e9:.2f} GB, mean step peak "
                    f"{mem['mean_step_peak_bytes'] / 1e9:.2f} GB")
            if mem.get("total_bytes"):
                line += f" of {mem['total_bytes'] / 1e9:.1f} GB"
            con.print(escape(line + " (allocator peak, torch.cuda.max_memory_allocated)"))
        self._memory(con, s.get("memory") or {})
        for f in s.get("hardware") or []:
            self._finding(con, "machine", f)

    def _memory(self, con, m: dict) -> None:
        host, b, fits = m.get("host") or {}, m.get("breakdown") or {}, m.get("fits") or {}
        parts = []
        if host:
            parts.append(f"host RSS {_gb(host.get('rss_start_bytes'))} at start, "
                         f"{_gb(host.get('rss_end_bytes'))} at end, peak "
                         f"{_gb(host.get('rss_peak_bytes'))}")
        if parts:
            con.print("[bold]memory:[/] " + escape("; ".join(parts)))
        if b:
            con.print("  " + escape(breakdown_text(b)))
        if fits:
            con.print("  " + escape(fits_text(fits)))
        tr = m.get("trace") or {}
        for site in (tr.get("top_sites") or [])[:5]:
            con.print(escape(f"  allocated {_gb(site.get('bytes'))} in "
                             f"{site.get('allocations')} allocations at {site.get('site')}"
                             f" (--memory-trace, {tr.get('file')})"))

    def _scaling(self, con, s) -> None:
        sc = s.get("scaling") or {}
        if not sc.get("projections"):
            return
        from .scaling import advice_lines, table
        con.print("[bold]scaling[/] (projected; nnprof project RUN for other targets):")
        for line in table(sc):
            con.print(escape(line))
        if any(not p.get("complete", True) for p in sc["projections"]):
            con.print("  [dim]* communication not included: the link is unknown "
                      "(nnprof project RUN --link NAME|GBPS|measure)[/]")
        first = next((a for a in advice_lines(sc) if not a.startswith("compute ")), None)
        if first:
            con.print("  " + escape(first))

    def _hotspots(self, con, s) -> None:
        h = s.get("hotspots")
        if not h:
            return
        n = (h.get("samples") or {}).get("total", 0)
        con.print(f"[bold]hotspots[/] (py-spy, {n} samples; shares of sampled running time):")

        def top(items, k=3):
            return ", ".join(f"{escape(str(t['function']))} in {escape(str(t['where']))} "
                             f"{_pct(t.get('share'))}" for t in (items or [])[:k])
        w = h.get("workers") or {}
        if w.get("samples"):
            con.print(f"  loader workers ({w.get('processes', '?')} processes, "
                      f"{w['samples']} samples): {top(w.get('top'))}")
        main = h.get("main") or {}
        for phase, ph in (main.get("phases") or {}).items():
            label = "other, incl. outside steps" if phase == "other" else phase
            con.print(f"  main {label} ({_pct(ph.get('share'))} of main thread): "
                      f"{top(ph.get('top'), 2)}")
        for f in h.get("findings") or []:
            for a in f.get("advice") or []:
                con.print(f"  - {escape(str(a))}")

    def _loaders(self, con, s) -> None:
        loaders = s.get("loader") or []
        if not loaders:
            return
        t = Table(title="data loaders", title_justify="left")
        for col in ("loader", "built at", "dataset", "workers", "steps", "wait ms",
                    "batch ms", "makes b/s", "needs b/s"):
            left = col in ("loader", "built at", "dataset")
            t.add_column(col, justify="left" if left else "right",
                         overflow="fold" if left else "ellipsis")
        for d in loaders:
            cap, dem = d.get("capacity_bps"), d.get("demand_bps")
            t.add_row(d["id"], escape(str(d.get("site", ""))), escape(str(d.get("dataset"))),
                      str(d.get("num_workers")),
                      f"{d['steps']['train']}+{d['steps']['eval']}",
                      _ms(d.get("data_wait_s")), _ms(d.get("batch_s")),
                      "-" if cap is None else f"{cap:.1f}", "-" if dem is None else f"{dem:.1f}")
        con.print(t)

    def _trace(self, con, s) -> None:
        """--trace: the torch.profiler windows and their top operators."""
        tr = s.get("trace")
        if not tr:
            return
        windows = tr.get("windows") or []
        excluded = tr.get("excluded_steps") or []
        con.print(f"[bold]trace:[/] {len(windows)} torch.profiler window"
                  f"{'' if len(windows) == 1 else 's'} in tensorboard/trace/ (tensorboard "
                  f"--logdir RUN/tensorboard, tab PyTorch Profiler); {len(excluded)} steps "
                  f"left out of the statistics")
        for w in windows:
            steps = w.get("steps") or []
            where = f"steps {steps[0]}-{steps[-1]}" if steps else "no step recorded"
            why = escape(str(w.get("reason")))
            if w.get("predicted_train_step") is not None:
                why += (f" (train step {w['predicted_train_step']}, slow every "
                        f"{w.get('period')} train steps)")
            ops = w.get("top_ops") or []
            dev = any(o.get("self_device_ms") for o in ops)
            key = "self_device_ms" if dev else "self_cpu_ms"
            top = ", ".join(f"{escape(str(o['name']))} {o.get(key, 0):.2f} ms "
                            f"({o.get('calls', 0)} calls)" for o in ops[:3])
            con.print(f"  {why}, {where}: {top or 'no operators'}"
                      f" [dim](self {'device' if dev else 'CPU'} time)[/]")
