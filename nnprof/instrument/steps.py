"""The step state machine and the phase clock.

Every hook in ``nnprof.instrument`` reports to one :class:`StepClock`. The clock
decides where steps begin and end and charges elapsed wall time to the phase
that is innermost at each moment, so that a step's phases always add up to its
wall time (``other`` takes what no instrumented call covers).

Step boundaries (see ARCHITECTURE.md):

* loader steps: a step runs from the moment the loop asks a DataLoader for a
  batch until it asks again. A second loader asked before the step did any
  model work (``zip(loader_a, loader_b)``) joins the same step. A loader that
  is exhausted ends the step at the moment it was asked; the clock then idles.
* wrapped loaders: when the DataLoader is asked from inside an installed
  package (accelerate's ``DataLoaderShard``, Lightning's data fetcher, HF
  ``Trainer``'s batch collection), the loop's own request is not seen, only
  the wrapper's. Wrappers fetch one batch ahead (to know which batch is the
  last) and may fetch several batches per request (HF's gradient-accumulation
  window). So: requests with no model work between them form one step (the
  loop waited for all of them); the first step of a pass counts one of its
  batches as the one held ahead; a forward after a backward, outside any
  optimizer step, starts a new step while the step holds batches not yet
  used (accumulation micro-steps); when the loader is exhausted after the
  wrapper showed it fetches ahead, the loop still has a batch: its step stays
  open, and ends with its last model work (see below).
* the end of a loop is not seen either (a ``break``, a wrapper's last batch):
  a loader step still open when something else starts (a DataLoader's
  ``iter()``, another loader's batch after the last one, the end of the run)
  ends at its last instrumented event, so that what follows the loop (worker
  shutdown, the next loader's start-up, the script's own epilogue) is charged
  to no step.
* free steps (no DataLoader): a step ends at each ``optimizer.step()``, and
  where the next forward begins after a backward (outside an optimizer step:
  LBFGS closures stay inside their step). Without any optimizer step (weights
  updated by hand, ``p.data.add_(p.grad, alpha=-lr)``), the time from the end
  of the step's last backward to its end is the update: it is charged to
  ``optimizer``. Several optimizers stepping in turn (a GAN's D and G) make one
  step, a new optimizer per layer a new one (``cycle.Cycle``).
* a loader that does not drive the loop: when a forward with gradients follows
  an optimizer step inside one loader step (one batch taken with
  ``next(iter(loader))``, then many updates on it; several updates per batch),
  the optimizer steps define the steps from there on, as free steps; the next
  request of a loader ends the last of them (what followed its update is its
  ``other``). A GAN's D and G stepping on one batch stay one step (the held
  cycle above).
* gradient-free forwards outside a loader step: an evaluation step is a pass
  that computes a loss. A gradient-free forward ends the open gradient-free
  step when that step computed a loss, or, itself gradient-free, calls a
  top-level module that step already called (a loop over batches); different
  modules called in a row (a method chaining submodules, a frozen encoder
  before the trained model) join one step, as does a forward with gradients
  after gradient-free ones without a loss (a target computed first). Once the script has trained, a gradient-free step without a loss (a
  sample drawn after each epoch, a visualisation) is no step at all; before
  (an inference script, a sanity forward) it is an eval step.

Only the thread that installed the clock drives it; other threads pass
through untouched.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from .cycle import Cycle
from .loadsteps import FREE_STEP, IDLE, LOADER_STEP, LoaderEvents
from .record import (BACKWARD, COLLATE, DATA, FETCH, FORWARD, LOADER_PHASES,  # noqa: F401
                     LOSS, OPTIMIZER, OTHER, PHASES, PREP, TRANSFORM, StepRecord)

MICRO_LIMIT = 32  # free train steps held back before an optimizer step shows up


class StopRun(BaseException):
    """Raised inside the script to stop it at ``--max-steps`` / ``--max-time``.

    A BaseException so that the script's own ``except Exception`` lets it pass.
    """


class StepClock(LoaderEvents):
    """Turns hook events into :class:`StepRecord` objects handed to ``sink``.

    ``clock`` returns nanoseconds; ``gpu_factory`` (optional) returns a
    per-step device timeline when CUDA is in use, or None; ``mem_peak``
    (optional) returns the allocator's peak allocated bytes (or None), read
    when a step that has a device timeline closes.
    """

    def __init__(self, sink: Callable[[StepRecord], None],
                 clock: Callable[[], int] = time.perf_counter_ns,
                 gpu_factory: Optional[Callable[[], object]] = None,
                 thread_id: Optional[int] = None,
                 mem_peak: Optional[Callable[[], Optional[int]]] = None,
                 mem_now: Optional[Callable[[], tuple]] = None) -> None:
        super().__init__(clock)
        self.sink = sink
        self.gpu_factory = gpu_factory
        self.mem_peak = mem_peak
        self.mem_now = mem_now
        self.thread_id = threading.get_ident() if thread_id is None else thread_id
        self.mode = IDLE
        self.group = Cycle()  # steps of distinct optimizers, held until the cycle shows
        # partners(a, b): may optimizers a and b (ids) step together in one training
        # step (a GAN's D and G: disjoint parameters)? None: always
        self.partners: Optional[Callable[[int, int], bool]] = None
        self.in_forward = False
        self._fwd_mark = 0
        self.train_steps = 0
        self.max_train_steps: Optional[int] = None
        self.deadline: Optional[int] = None
        self.stop_reason: Optional[str] = None
        self.tail = False            # the open loader step's loader is exhausted
        self.seen_optimizer = False  # an optimizer has stepped (no hand-written update)
        # free train steps split off before any optimizer step: an accumulation window
        # (merged when the optimizer steps) or steps updated by hand (emitted as such)
        self.micro: list = []
        self.by_hand, self.trained = False, False  # updates by hand; a backward has run
        self.loader_free: Optional[str] = None  # its pass's steps: its optimizer steps

    # -- opening and closing ---------------------------------------------
    def _new_open(self, now: int, loader: Optional[str]) -> StepRecord:
        self.last = now
        return StepRecord(now, loader, self.gpu_factory() if self.gpu_factory is not None
                          else None)

    def _open_free(self, now: int) -> None:
        self.mode, self.open = FREE_STEP, self._new_open(now, None)

    def _close(self, now: int) -> Optional[StepRecord]:
        o = self.open
        if o is None:
            return None
        self._charge(now)
        return self._close_charged(o, now)

    def _close_charged(self, o: StepRecord, now: int) -> Optional[StepRecord]:
        """:meth:`_close` of the open step ``o``, its phases already charged to ``now``."""
        self.open = None
        self._closed(o, now)
        if (self.mode == FREE_STEP and self.trained and not o.train_activity
                and not o.n_loss):
            return None  # gradient-free, no loss, no loader: a sample, not an eval step
        return o

    def _closed(self, o: StepRecord, now: int) -> None:
        """``o`` (charged up to ``now``) ends."""
        o.end = now
        if o.n_backward:
            self.train_steps += 1
            o.kind = "train"
        if o.gpu is not None:
            self._close_gpu(o)

    def _close_gpu(self, o: StepRecord) -> None:
        o.gpu.close()
        if self.mem_peak is not None:
            o.gpu_mem_peak = self.mem_peak()
        if self.mem_now is not None:
            o.gpu_mem_alloc, o.gpu_mem_reserved = self.mem_now()

    def _emit_held(self) -> None:
        if self.micro:
            self._flush_micro()
        self.group.flush(self.sink)

    def _hold(self, rec: StepRecord) -> None:
        """An optimizer step's record, held while a cycle may be going on."""
        self.train_steps += self.group.hold(rec, self.sink, self.partners)

    def _emit(self, rec: Optional[StepRecord]) -> None:
        self._emit_held()
        if rec is not None:
            self.sink(rec)

    def _check_stop(self, now: int) -> None:
        if self.stop_reason is not None:
            raise StopRun(self.stop_reason)
        if self.max_train_steps is not None and self.train_steps >= self.max_train_steps:
            raise StopRun(f"max-steps ({self.max_train_steps} train steps)")
        if self.deadline is not None and now >= self.deadline:
            raise StopRun("max-time")

    # -- events from the hooks -------------------------------------------
    @staticmethod
    def _as_update(rec: StepRecord) -> StepRecord:
        """Weights updated by hand: what follows the step's last backward is the update."""
        if not rec.n_optimizer:
            moved = rec.phases[OTHER] - rec.other_mark
            if moved > 0:
                rec.phases[OTHER] -= moved
                rec.phases[OPTIMIZER] += moved
        return rec

    def _flush_micro(self) -> None:
        micro, self.micro = self.micro, []
        for rec in micro:
            self.sink(self._as_update(rec))

    def _split(self, now: int) -> None:
        """A forward after a backward: the open step ends, the next one starts now."""
        rec = self._close(now)
        if self.mode == LOADER_STEP:
            self._emit(rec)
            # the next batch of those the wrapper fetched for one request (accumulation)
            o = self.open = self._new_open(now, rec.loader)
            o.n_batches, o.ahead = rec.n_batches - 1, rec.ahead
        elif not self.by_hand and len(self.micro) < MICRO_LIMIT:
            self.micro.append(rec)  # an accumulation window, or updates by hand?
            return
        else:
            self.by_hand = True
            self._flush_micro()
            self.sink(self._as_update(rec))
        self._check_stop(now)

    def forward_enter(self, grad_enabled: bool, key: int = 0) -> None:
        """A top-level module's forward; ``key`` names the module (its id)."""
        now = self.clock()
        o = self.open
        if o is not None and o.n_backward and not self.stack:
            if ((self.mode == FREE_STEP and not self.seen_optimizer)
                    or (self.mode == LOADER_STEP and o.spare > 0)):
                self._split(now)
                o = self.open
            elif self.mode == LOADER_STEP and o.n_optimizer and grad_enabled:
                self._leave_loader()
                o = self.open
        if self.mode != LOADER_STEP and (o is None or not (o.n_forward or o.n_backward
                                                           or o.n_optimizer)):
            if self.stop_reason is not None or self.max_train_steps is not None \
                    or self.deadline is not None:
                self._check_stop(now)
        if o is None:
            self._open_free(now)
            o = self.open
        elif (self.mode == FREE_STEP and o.n_forward and not o.train_activity
              and (o.n_loss or (not grad_enabled and key in o.eval_keys))):
            # gradient-free forwards so far, that computed a loss or that call the same
            # module again without gradients: they formed an evaluation step (the same
            # module with gradients after it: a target computed without them, joined)
            self._emit(self._close(now))
            self._open_free(now)
            o = self.open
        stack = self.stack
        cur = stack[-1] if stack else o.base  # self._charge(now), inlined: once per step
        o.phases[cur] += now - self.last
        if o.gpu is not None:
            o.gpu.mark(cur)
        self.last = now
        o.base = OTHER
        o.n_forward += 1
        if grad_enabled:
            o.train_activity = True
        elif self.mode == FREE_STEP and not o.train_activity:
            o.eval_keys += (key,)
        stack.append(FORWARD)
        self.in_forward = True
        self._fwd_mark = o.phases[FORWARD]

    def forward_exit(self, as_loss: bool = False) -> None:
        self.in_forward = False
        self.pop()
        o = self.open
        if as_loss and o is not None:
            moved = o.phases[FORWARD] - self._fwd_mark
            o.phases[FORWARD] -= moved
            o.phases[LOSS] += moved
            o.n_forward -= 1
            o.n_loss += 1

    def loss_enter(self) -> None:
        """A loss call: the ``loss`` phase until :meth:`pop`."""
        self.push(LOSS).n_loss += 1

    def _leave_loader(self) -> None:
        """A forward with gradients after an optimizer step in the open loader step:
        from here the optimizer steps define the steps (see the module docstring).
        The loader step ends at its last event and is held as an optimizer step."""
        rec = self._close(self.last)
        if self.micro:
            self._flush_micro()
        self._hold(rec)
        self.mode = FREE_STEP
        self.loader_free = rec.loader
        self.tail = False
        self._open_free(self.last)

    def _end_free_pass(self, now: int, same: bool) -> None:
        """A loader pass whose steps were its optimizer steps ends: its loader is asked
        again (``same``: what followed the last update, up to ``now``, is that step's
        ``other``), or another loader is."""
        self._charge(now)
        o, self.open = self.open, None
        self.loader_free = None
        if o is not None and same and self.group and not o.n_backward:
            self._closed(o, now)
            o.phases[OTHER] += o.phases[PREP]
            o.phases[PREP] = 0
            self.group.last.absorb(o)
        elif o is not None and o.active:
            self.open = o
            self._emit(self._close(now))
            return
        self._emit_held()

    def backward_enter(self, loss_ref=None, counts: bool = True) -> None:
        o = self.push(BACKWARD)
        if counts:
            o.n_backward += 1
            o.train_activity = True
            self.trained = True
        if loss_ref is not None:
            o.loss_ref = loss_ref

    def optimizer_step_exit(self, opt_id: int) -> None:
        now = self.clock()
        self._charge(now)
        if self.stack:
            self.stack.pop()
        self.seen_optimizer, o = True, self.open
        if o is None:
            return
        o.n_optimizer += 1
        if opt_id not in o.optimizers:
            o.optimizers = o.optimizers + (opt_id,)
        o.train_activity = True
        if self.mode != FREE_STEP:
            return
        rec = self._close_charged(o, now)
        if self.micro:  # the window's micro-steps and this one: one step
            first, later = self.micro[0], self.micro[1:] + [rec]
            self.micro = []
            for r in later:
                if r.kind == "train":
                    self.train_steps -= 1
                first.absorb(r)
            rec = first
        self.train_steps += self.group.hold(rec, self.sink, self.partners)  # _hold
        gpu = self.gpu_factory  # self._open_free(now), inlined
        self.open = StepRecord(now, None, gpu() if gpu is not None else None)

    def finish(self) -> None:
        """Close whatever is open; called once when the run ends.

        A step ends at its last event, unless the run ended inside a phase
        (a crash, a kill, a stop): then now.
        """
        o = self.open
        now = self.clock() if self.stack else self.last
        if o is not None and (o.active or self.mode == LOADER_STEP):
            self._emit(self._close(now))
        else:
            self.open = None
            self._emit_held()
        self.stack.clear()
        self.mode = IDLE
        self.tail = False
