"""The live progress line on stderr (only when stderr is a terminal)."""
from __future__ import annotations

import sys
from typing import Optional


class Progress:
    """Redraws one line at most every ``interval_s``; never in the hot path otherwise."""

    def __init__(self, enabled: Optional[bool] = None, interval_s: float = 0.25,
                 stream=None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            try:
                enabled = self.stream.isatty()
            except (AttributeError, ValueError):
                enabled = False
        self.enabled = bool(enabled)
        self.interval = int(interval_s * 1e9)
        self.next_at = 0
        self.drawn = False

    def update(self, now_ns: int, n_train: int, n_eval: int, last_s: float, budget_s: float,
               n_over: int) -> None:
        if now_ns < self.next_at:
            return
        self.next_at = now_ns + self.interval
        mark = "OVER" if last_s > budget_s else "ok"
        text = (f"nnprof: {n_train} train / {n_eval} eval steps | last {last_s * 1e3:.1f} ms "
                f"of {budget_s:g} s budget ({mark}) | {n_over} over budget")
        try:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):
            self.enabled = False

    def close(self) -> None:
        if self.drawn:
            try:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False
