"""A DataLoader's events in the step state machine: a pass starts, the loop asks for a
batch and gets it, the loader is exhausted. Part of :class:`~.steps.StepClock` (whose
module docstring states the step boundaries); kept apart to keep each file readable.
"""
from __future__ import annotations

from typing import Optional

from .phaseclock import PhaseClock
from .record import DATA

# the clock's modes: no step open between loops, a loader step, a free step
IDLE, LOADER_STEP, FREE_STEP = 0, 1, 2


class LoaderEvents(PhaseClock):
    """The loader-side methods of :class:`~.steps.StepClock` (it supplies ``_close``,
    ``_emit``, ``_emit_held``, ``_check_stop``, ``_new_open`` and ``_end_free_pass``)."""

    def _end_loop(self) -> None:
        """The loop of the open loader step has ended: the step ends at its last event."""
        self.tail = False
        o = self.open
        if o is not None and o.active:
            self._emit(self._close(self.last))
        else:
            self.open = None
            self._emit_held()
        self.stack.clear()
        self.mode = IDLE

    def loader_iter(self) -> None:
        """A DataLoader's ``iter()``: a new pass; a loader step still open has ended."""
        if self.mode == LOADER_STEP:
            self._end_loop()
        elif self.loader_free is not None:  # its last update's step ends at its last event
            self._end_free_pass(self.last, False)

    def loader_next(self, loader: str, wrapped: bool = False, first: bool = False,
                    startup: bool = False, asked: Optional[int] = None) -> bool:
        """The loop asks ``loader`` for a batch; 'data' runs until :meth:`loader_got`.

        ``wrapped``: asked from inside an installed package (a wrapper loader);
        ``first``: the first request of an iterator; ``startup``: its workers
        were started for this pass (the wait for them was recorded apart).
        ``asked``: the clock when the loop asked, for a wait recorded apart as the
        rest of the pass's start-up (a worker still starting): the open step ends
        there and the new one begins now, when the batch has arrived.
        Returns True when the request joined the open step instead of starting one.
        """
        now = self.clock()
        if self.tail:
            self._end_loop()
        if self.loader_free is not None:
            self._end_free_pass(self.last if startup else now if asked is None else asked,
                                self.loader_free == loader)
        o = self.open
        if (self.mode == LOADER_STEP and o is not None and not o.active
                and (o.loader != loader or wrapped)):
            # a paired loader (zip), or a wrapper asking again for one request of the loop
            self._charge(now)
            if o.loader == loader:
                o.n_batches += 1
            self.stack.append(DATA)
            return True
        if o is not None:
            if self.mode == FREE_STEP and not o.active:
                self.open = None
                self._emit_held()
            else:  # the workers' start-up, recorded apart, is not this step's either
                self._emit(self._close(self.last if startup else
                                       now if asked is None else asked))
        else:
            self._emit_held()
        self.mode = IDLE
        self.stack.clear()  # a phase left open by an exception ends here
        self._check_stop(now)
        self.mode = LOADER_STEP
        o = self.open = self._new_open(now, loader)
        o.pass_start = startup
        o.ahead = 1 if first and wrapped else 0
        self.stack.append(DATA)
        return False

    def loader_got(self) -> None:
        self.pop()

    def loader_exhausted(self, ahead: bool = False) -> None:
        """The loader raised StopIteration.

        ``ahead``: a wrapper showed that it fetches a batch ahead, so the loop
        still has one: the step stays open (see the module docstring). Without
        it, the step this request would have opened is void.
        """
        o = self.open
        now = self.clock()
        keep = o is not None and self.mode == LOADER_STEP and (ahead or o.n_batches > 1)
        if keep:
            self._charge(now)  # the loop's wait for its last batch
        if self.stack and self.stack[-1] == DATA:
            self.stack.pop()
        if keep:
            if not ahead:
                o.n_batches -= 1  # this request brought nothing; an earlier one did
            self.tail = True
            return
        if o is not None and not o.active:
            self.open = None
        else:
            self._emit(self._close(now))
        self.mode = IDLE
        self.last = now
