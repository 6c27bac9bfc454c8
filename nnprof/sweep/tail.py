"""Follow one trial's run directory while the trial writes it: its evaluation
passes, their loss and classification metrics, and its train loss.

``steps.csv`` and ``metrics.jsonl`` are appended by the trial (flushed every few
rows); this reads only what was added since the last look and never a torn line.
An evaluation pass (consecutive eval steps) is complete once a train step follows
it, or when the trial has ended. A pass before the first train step (Lightning's
sanity check, an evaluation at initialisation) is pass 0: it is kept, never
reported, since untrained weights say nothing about a trial's promise.
"""
from __future__ import annotations

import json
import os
from collections import deque
from typing import Optional

from ..analyses.metrics import classification_metrics

SMOOTH_STEPS = 20  # the train loss is the mean of the last 20 train losses
METRICS = {"val_loss": "minimize", "val_accuracy": "maximize", "val_f1": "maximize",
           "train_loss": "minimize"}
RESOURCES = ("passes", "steps", "seconds")
DEFAULT_EVERY = {"passes": 1, "steps": 20, "seconds": 10}


class _Lines:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def new(self) -> list:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.rest + data
        *lines, self.rest = data.split(b"\n")
        return [ln.decode("utf-8", "replace") for ln in lines]


def _float(text) -> Optional[float]:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v  # NaN and inf stay: a diverged loss counts against its trial


class TrialTail:
    """What a running trial measured so far, read incrementally from its run directory."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self._steps = _Lines(os.path.join(run_dir, "steps.csv"))
        self._metrics = _Lines(os.path.join(run_dir, "metrics.jsonl"))
        self._cols: Optional[dict] = None
        self.train_steps = 0
        self.eval_steps = 0
        self.position_s = 0.0  # end of the last step, on the run's clock
        self.first_s: Optional[float] = None  # start of the first step
        self.walls: deque = deque(maxlen=200)  # recent train step times
        self._recent: deque = deque(maxlen=SMOOTH_STEPS)
        self.train_points: list = []  # (train steps done, t_s, smoothed loss)
        self.passes: list = []  # {"pass", "after", "t_s", "loss", "metrics"}
        self._open: Optional[dict] = None
        self._confusions: dict = {}  # after_train_steps -> confusion matrix

    # -- reading -------------------------------------------------------------------
    def poll(self, finished: bool = False) -> None:
        for line in self._steps.new():
            self._row(line)
        for line in self._metrics.new():
            try:
                rec = json.loads(line)
                self._confusions[int(rec["after_train_steps"])] = rec["confusion"]
            except (ValueError, KeyError, TypeError):
                continue
        if finished:
            self._close_pass()
        for p in self.passes:
            if p["metrics"] is None and p["after"] in self._confusions:
                try:
                    p["metrics"] = classification_metrics(self._confusions[p["after"]])
                except (ValueError, TypeError):
                    p["metrics"] = {}

    def _row(self, line: str) -> None:
        cells = line.rstrip("\r").split(",")
        if self._cols is None:
            self._cols = {name: i for i, name in enumerate(cells)}
            return
        c = self._cols
        if len(cells) != len(c) or "kind" not in c:
            return
        kind = cells[c["kind"]]
        start, wall = _float(cells[c.get("start_s", -1)]), _float(cells[c.get("wall_s", -1)])
        if start is not None and wall is not None:
            self.position_s = max(self.position_s, start + wall)
            if self.first_s is None:
                self.first_s = start
        loss = _float(cells[c["loss"]]) if "loss" in c and cells[c["loss"]].strip() else None
        if kind == "eval":
            self.eval_steps += 1
            if self._open is None:
                self._open = {"pass": self.trained_passes + 1 if self.train_steps else 0,
                              "after": self.train_steps,
                              "losses": [], "t_s": self.position_s, "metrics": None}
            if loss is not None:
                self._open["losses"].append(loss)
            self._open["t_s"] = self.position_s
            return
        self._close_pass()
        if kind != "train":
            return
        self.train_steps += 1
        if wall is not None:
            self.walls.append(wall)
        if loss is not None:
            self._recent.append(loss)
            self.train_points.append((self.train_steps, self.position_s,
                                      sum(self._recent) / len(self._recent)))

    def _close_pass(self) -> None:
        p, self._open = self._open, None
        if p is None:
            return
        losses = p.pop("losses")
        p["loss"] = sum(losses) / len(losses) if losses else None
        self.passes.append(p)

    @property
    def trained_passes(self) -> int:
        return sum(1 for p in self.passes if p["pass"] > 0)

    # -- what the pruner sees --------------------------------------------------------
    def points(self, metric: str, resource: str) -> list:
        """``[(x, value)]`` measured so far: x in the resource's unit, in order."""
        if metric == "train_loss":
            key = 0 if resource != "seconds" else 1
            return [(pt[key], pt[2]) for pt in self.train_points]
        out = []
        for p in self.passes:
            if p["pass"] == 0:
                continue
            if metric == "val_loss":
                v = p["loss"]
            else:
                m = p["metrics"]
                if m is None:  # its confusion matrix may still be on its way
                    break
                v = m.get("accuracy" if metric == "val_accuracy" else "f1_macro")
            if v is None:
                continue
            x = {"passes": p["pass"], "steps": p["after"], "seconds": p["t_s"]}[resource]
            out.append((x, v))
        return out

    def position(self, metric: str, resource: str) -> float:
        """How far the trial has got, in the resource's unit: short of the first pass
        whose metrics are still on their way, so that no tick reports an older value."""
        if resource == "seconds":
            pos = self.position_s
        elif resource == "steps" or metric == "train_loss":
            pos = self.train_steps
        else:
            pos = self.trained_passes
        if metric in ("val_accuracy", "val_f1"):
            for p in self.passes:
                if p["pass"] > 0 and p["metrics"] is None:
                    x = {"passes": p["pass"], "steps": p["after"], "seconds": p["t_s"]}[resource]
                    return min(pos, x - 1e-6)
        return pos

    @property
    def active_s(self) -> float:
        """Seconds from the first step's start to the last step's end: the part of a
        trial's time that grows with how far it trains (start-up and reports do not)."""
        return self.position_s - self.first_s if self.first_s is not None else 0.0

    def step_time_s(self) -> Optional[float]:
        if not self.walls:
            return None
        s = sorted(self.walls)
        return s[len(s) // 2]

    @property
    def has_validation(self) -> bool:
        return self.trained_passes > 0


def due_reports(points: list, position: float, every: float, last_step: int) -> list:
    """The reports a trial owes the study: ``[(step, value)]`` at each tick
    ``every, 2*every, ...`` past ``last_step`` and up to ``position``, each the
    latest value measured at or before its tick. Ticks give all trials the same
    steps, so the pruner compares them at the same point; steps are integers."""
    if not points:
        return []
    out = []
    k = int(last_step // every) + 1 if last_step >= 0 else 1
    idx, latest = 0, None
    while True:
        tick = k * every
        if tick > position + 1e-9:
            break
        while idx < len(points) and points[idx][0] <= tick + 1e-9:
            latest = points[idx][1]
            idx += 1
        if latest is not None:
            out.append((int(round(tick)), latest))
        k += 1
    return out
