"""The phase clock: wall time charged to the phase innermost at each moment.

:class:`PhaseClock` holds the open step (a :class:`~.record.StepRecord`) and the
stack of phases entered inside it; every ``push`` and ``pop`` charges the time since
the last event to the phase that was innermost, so that a step's phases add up to
its wall time (the step's ``base`` phase, ``other`` or ``data``, takes what no phase
covers). When and how steps open and close is :class:`~.steps.StepClock`'s; a phase
that starts with no step open asks it to open a free step (``_open_free``).
"""
from __future__ import annotations

from typing import Callable, Optional

from .record import BACKWARD, OTHER, StepRecord


class PhaseClock:
    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.open: Optional[StepRecord] = None
        self.stack: list = []
        self.last = clock()

    def _open_free(self, now: int) -> None:
        raise NotImplementedError

    def _charge(self, now: int) -> None:
        o = self.open
        if o is not None:
            phase = self.stack[-1] if self.stack else o.base
            o.phases[phase] += now - self.last
            if o.gpu is not None:
                o.gpu.mark(phase)
        self.last = now

    # push/pop run several times per step: _charge is inlined there
    def push(self, phase: int) -> StepRecord:
        """Enter ``phase``; returns the open step."""
        now = self.clock()
        o = self.open
        if o is None:
            self._open_free(now)
            o = self.open
        stack = self.stack
        cur = stack[-1] if stack else o.base
        o.phases[cur] += now - self.last
        if o.gpu is not None:
            o.gpu.mark(cur)
        self.last = now
        stack.append(phase)
        return o

    def pop(self) -> None:
        now = self.clock()
        o = self.open
        stack = self.stack
        if o is not None:
            cur = stack[-1] if stack else o.base
            o.phases[cur] += now - self.last
            if o.gpu is not None:
                o.gpu.mark(cur)
            if cur == BACKWARD and len(stack) == 1:
                o.other_mark = o.phases[OTHER]
        self.last = now
        if stack:
            stack.pop()

    def add_comm_wait(self, ns: int) -> None:
        """Time a backward spent waiting for collectives, a slice of ``backward``."""
        o = self.open
        if o is not None:
            o.comm_wait = ns + (o.comm_wait or 0)

    def add_loader_time(self, which: int, ns: int) -> None:
        """Main-process fetch/transform/collate time, a slice of ``data``."""
        if self.open is not None:
            self.open.loader_phases[which] += ns

    def add_batch_times(self, fetch: int, transform: int, collate: int) -> None:
        """A main-process batch's fetch, transform and collate ns, in one call."""
        o = self.open
        if o is not None:
            lp = o.loader_phases
            lp[0] += fetch
            lp[1] += transform
            lp[2] += collate
