"""What a sweep shows while it runs, on stderr: on a terminal, a live table (trial,
values, state, best so far, step time, bottleneck, elapsed) under the events; else
one line per event (a trial started, pruned, complete or failed)."""
from __future__ import annotations

import sys
import time

MAX_ROWS = 20


class LineDisplay:
    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr

    def event(self, text: str) -> None:
        try:
            self.stream.write(f"nnprof sweep: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def update(self, sweep) -> None:
        pass

    def close(self) -> None:
        pass


class LiveDisplay(LineDisplay):
    """A rich Live table, redrawn at most twice a second."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live
        self.console = Console(file=self.stream, force_terminal=True)
        self.live = Live(console=self.console, refresh_per_second=2, transient=True)
        self.live.start()
        self.next_at = 0.0

    def event(self, text: str) -> None:
        from rich.markup import escape
        self.console.print(f"nnprof sweep: {escape(text)}", highlight=False)

    def update(self, sweep) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + 0.5
        try:
            self.live.update(table(sweep))
        except Exception:  # a table that cannot be drawn is not worth the sweep
            pass

    def close(self) -> None:
        try:
            self.live.stop()
        except Exception:
            pass


def table(sweep):
    from rich.table import Table
    rec = sweep.record("running")
    best = rec.get("best") or {}
    settings = rec["settings"]
    title = f"{rec['study']}: {settings['metric_used']} ({settings['direction']})"
    if best.get("value") is not None:
        title += f", best {best['value']:.4g} (trial {best.get('number')})"
    t = Table(title=title, title_justify="left")
    names = list(settings["params"])
    for col in ["trial", *names, "state", settings["metric_used"], "step ms", "bottleneck",
                "elapsed s"]:
        t.add_column(col, overflow="ellipsis", no_wrap=True)
    live = {r.trial.number: r for r in sweep.running.values()}
    rows = rec["trials"][-MAX_ROWS:]
    for tr in rows:
        state = tr["state"]
        if state == "pruned":
            state = f"pruned at {settings['unit']} {tr.get('pruned_at')}"
        inter = tr.get("intermediate") or []
        value = tr.get("value") if tr.get("value") is not None else (
            inter[-1][1] if inter else None)
        r = live.get(tr["number"])
        elapsed = r.proc.duration_s if r else tr.get("duration_s")
        step = tr.get("step_time_s")
        t.add_row(str(tr["number"]), *[_v(tr["params"].get(n)) for n in names], state,
                  _v(value), "-" if step is None else f"{step * 1e3:.1f}",
                  str(tr.get("bottleneck") or "-"),
                  "-" if elapsed is None else f"{elapsed:.0f}")
    return t


def _v(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def make_display(enabled) -> LineDisplay:
    if enabled is None:
        try:
            enabled = sys.stderr.isatty()
        except (AttributeError, ValueError):
            enabled = False
    if enabled:
        try:
            return LiveDisplay()
        except Exception:
            pass
    return LineDisplay()
