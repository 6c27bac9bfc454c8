"""Where nnprof's per-step cost goes: its parts taken away one at a time, in one process.

Each round times the workload bare, then under ``nnprof.profile(monitors=[])`` with one
part switched off for the timed blocks (the patch put back to torch's original, the
optimizer step hooks emptied, finished steps handed to a no-op instead of the run, their
``steps.csv`` rows dropped unformatted or formatted and not written, the loss observer
silenced), then bare again; the part's cost is what its absence saves against ``all``
(nothing switched off). Blocks and rounds as in ``overhead.py`` (its quietest-block
estimator):

    python benchmarks/overhead_parts.py                      # the small MLP, 15 rounds
    python benchmarks/overhead_parts.py --only mlp_tiny      # narrowest intervals
    python benchmarks/overhead_parts.py --only bert --rounds 9

A part switched off changes what nnprof records, so these runs measure cost only.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead as ob  # noqa: E402  (the workloads and the estimator)

import nnprof  # noqa: E402
from nnprof.instrument import active, patching  # noqa: E402


@contextlib.contextmanager
def _restored(pred):
    """nnprof's patches for which ``pred(owner, name)`` holds put back to the originals."""
    undo = []
    for owner, name, original, mine in patching.installed():
        if pred(owner, name):
            setattr(owner, name, original)
            undo.append((owner, name, mine))
    try:
        yield
    finally:
        for owner, name, mine in undo:
            setattr(owner, name, mine)


@contextlib.contextmanager
def _no_step_hooks():
    from torch.optim import optimizer as om
    saved = (dict(om._global_optimizer_pre_hooks), dict(om._global_optimizer_post_hooks))
    om._global_optimizer_pre_hooks.clear()
    om._global_optimizer_post_hooks.clear()
    try:
        yield
    finally:
        om._global_optimizer_pre_hooks.update(saved[0])
        om._global_optimizer_post_hooks.update(saved[1])


@contextlib.contextmanager
def _no_recording():
    clock = active.current().clock
    sink, clock.sink = clock.sink, lambda rec: None
    try:
        yield
    finally:
        clock.sink = sink


def _session():
    """The running session (the instrumentation's ``emit`` is its bound ``_emit``)."""
    return active.current().emit.__self__


def _rows_dropped():
    """Finished steps handled and kept as usual, their rows never formatted nor written."""
    session = _session()

    def write_rows(now):
        session._rows = []
        session._flushed_at = now
    return mock.patch.object(session, "_write_rows", write_rows)


def _rows_unwritten():
    """The rows formatted, then not written to ``steps.csv``."""
    return mock.patch.object(_session().writer, "write_rows", lambda lines: None)


def _no_observer():
    from nnprof.instrument.losses import LossObserver
    return mock.patch.object(LossObserver, "__call__", lambda self, *args, **kwargs: None)


PARTS = {
    "all": contextlib.nullcontext,
    "module call": lambda: _restored(lambda o, n: o is torch.nn.Module and n == "__call__"),
    "backward": lambda: _restored(lambda o, n: n in ("backward", "grad")),
    "functional losses": lambda: _restored(lambda o, n: o is torch.nn.functional),
    "zero_grad": lambda: _restored(lambda o, n: n == "zero_grad"),
    "optimizer step hooks": _no_step_hooks,
    "recording the step": _no_recording,
    "  its row (formatted, written)": _rows_dropped,
    "  its row's write": _rows_unwritten,
    "loss observer": _no_observer,
    "loader": lambda: _restored(lambda o, n: "DataLoader" in getattr(o, "__name__", "")
                                or "Fetcher" in getattr(o, "__name__", "")),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="mlp_small", help="workload (overhead.py's names)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ob.BLOCKS = max(1, args.blocks)
    fn = ob.WORKLOADS[args.only]()
    k = ob.block_steps(fn)
    tmp = tempfile.mkdtemp()

    def under(part):
        with nnprof.profile(out=tempfile.mkdtemp(dir=tmp), progress=False, monitors=[]):
            with PARTS[part]():
                return ob.timed(fn, k)
    ratios: dict = {p: [] for p in PARTS}
    bare = [ob.timed(fn, k).wall]
    for r in range(args.rounds):
        for part in list(PARTS)[r % len(PARTS):] + list(PARTS)[:r % len(PARTS)]:
            x = under(part).wall
            bare.append(ob.timed(fn, k).wall)
            ratios[part].append(x / ((bare[-2] + bare[-1]) / 2))
    b = statistics.median(bare)
    full = (statistics.median(ratios["all"]) - 1) * b * 1e6
    print(f"{args.only}: bare {b * 1e3:.3f} ms a step, {args.rounds} rounds of "
          f"{ob.BLOCKS} blocks of {k} steps; nnprof without its samplers")
    print(f"{'switched off':30} {'ratio':>7}  {'95% interval':<15} {'+us/step':>8} {'saves':>7}")
    for part, xs in ratios.items():
        med = statistics.median(xs)
        ci = ob.median_ci(xs)
        us = (med - 1) * b * 1e6
        interval = f"{ci[0]:.3f}-{ci[1]:.3f}x" if ci else ""
        saves = "" if part == "all" else f"{full - us:7.1f}"
        label = "nothing" if part == "all" else part
        print(f"{label:30} {med:6.3f}x  {interval:<15} {us:8.1f} {saves:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
