"""Optimizer steps held until the cycle of optimizers shows (see ``steps``' docstring).

Several optimizers over disjoint parameters may step in one training iteration (a
GAN's D and G), or one after another for good (a model trained layer by layer, a new
optimizer per layer). Their steps' records are held: when the **first** optimizer of
the held ones steps again, they were one cycle (one step); when the **last** steps
again, each was a step of its own.
"""
from __future__ import annotations

from typing import Callable, Optional

from .record import StepRecord


class Cycle:
    """The held records; ``hold`` and ``flush`` hand finished steps to ``sink``.

    While parts are held they count as one train step: ``hold`` returns the change to
    the clock's train-step count (so that ``--max-steps`` stops where it would).
    """

    def __init__(self) -> None:
        self.parts: list = []
        self.discount = 0  # train steps not counted while held as one

    def __bool__(self) -> bool:
        return bool(self.parts)

    @property
    def last(self) -> StepRecord:
        return self.parts[-1]

    def flush(self, sink: Callable[[StepRecord], None]) -> None:
        """The held parts were one step (a cycle, or the run or the pass ended)."""
        if self.parts:
            parts, self.parts = self.parts, []
            self.discount = 0
            first = parts[0]
            for rec in parts[1:]:
                first.absorb(rec)
            sink(first)

    def hold(self, rec: StepRecord, sink: Callable[[StepRecord], None],
             partners: Optional[Callable[[int, int], bool]]) -> int:
        """``rec``: an optimizer step's record. ``partners(a, b)``: may optimizers a and
        b step in one iteration (None: always). Returns the change in train steps."""
        parts = self.parts
        if not parts:
            parts.append(rec)
            return 0
        if len(parts) == 1 and rec.optimizers and parts[0].optimizers == rec.optimizers:
            # the common case, one optimizer stepping again: the held step was a step
            first, parts[0] = parts[0], rec
            self.discount = 0
            sink(first)
            return 0
        ids = set(rec.optimizers)
        if ids & set(parts[0].optimizers):  # the first comes round again: a cycle
            self.flush(sink)
            self.parts.append(rec)
            return 0
        if any(ids & set(p.optimizers) for p in parts):
            # a later one steps again: the parts before the last were steps of their own
            change, self.discount = self.discount, 0
            for part in parts[:-1]:
                sink(part)
            self.parts = parts[-1:]
            return change + self.hold(rec, sink, partners)
        if partners is not None and not all(
                partners(a, b) for p in parts for a in p.optimizers for b in rec.optimizers):
            # an optimizer that replaced one of them (a new one over the same
            # parameters, per stage or per epoch): a new step
            self.flush(sink)
            self.parts.append(rec)
            return 0
        parts.append(rec)
        if rec.kind == "train" and any(p.kind == "train" for p in parts[:-1]):
            self.discount += 1
            return -1
        return 0
