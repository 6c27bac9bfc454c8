"""A profiled run from the command line: the target run under a profiler with SIGTERM
held while the run is set up and written, its report on the terminal and where it
went, its exit code, and the merge of a job's several runs (shared by ``profile``,
the torchrun launcher and ``merge``)."""
from __future__ import annotations

import os
import sys

from .args import EXIT_CONDITION, _shown, _stderr_is_tty, _width, _write_err


def run_profiled(profiler, target):
    """Run the target under ``profiler``; (outcome, summary), or (outcome, None) in a
    child the script forked (its parent owns the run)."""
    from .. import runner
    with _deferred_sigterm() as early:  # a SIGTERM while starting: the run still ends well
        profiler.start()
    pid = os.getpid()
    outcome = runner.Outcome("crashed", 1)
    try:
        outcome = runner.Outcome("interrupted", 143) if early else runner.run(target)
    finally:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        if os.getpid() != pid:  # a child the script forked: the parent owns the run
            return outcome, None
        if outcome.stop_reason:
            profiler.notices.append(f"stopped at {outcome.stop_reason}")
        with _deferred_sigterm() as late:
            summary = profiler.stop(outcome.status, outcome.exit_code, shutdown_workers=True)
    if late and outcome.exit_code == 0:
        outcome.exit_code = 143
    return outcome, summary


class _deferred_sigterm:
    """SIGTERM while the run is being set up or written (a sweep stopping a trial that is
    just starting, torchrun stopping the other ranks when one failed) waits until that is
    done; the run then ends as interrupted (143)."""

    def __enter__(self) -> list:
        import signal
        self.got: list = []
        self.old = None
        try:
            self.old = signal.signal(signal.SIGTERM, lambda signum, frame: self.got.append(signum))
        except (ValueError, OSError):  # not the main thread
            self.old = None
        return self.got

    def __exit__(self, *exc) -> bool:
        import signal
        if self.old is not None:
            try:
                signal.signal(signal.SIGTERM, self.old)
            except (ValueError, OSError):
                pass
        return False


def report_run(summary: dict, path: str, opts, start_cwd: str, run=None) -> None:
    """The terminal report (unless --quiet) and where the run and its reports are."""
    from ..renderers import render
    if not opts.quiet:
        tty = _stderr_is_tty()
        _write_err(render("terminal", summary, run, color=tty, width=_width(tty)))
    print(f"nnprof: run written to {_shown(path, start_cwd)}", file=sys.stderr)
    html = os.path.join(path, "report.html")
    if os.path.exists(html):
        tb = os.path.join(path, "tensorboard")
        print(f"nnprof: report {_shown(html, start_cwd)}" + (
            f"; TensorBoard: tensorboard --logdir {_shown(tb, start_cwd)}"
            if os.path.isdir(tb) else ""), file=sys.stderr)


def exit_code(outcome_code: int, summary: dict, conditions) -> int:
    """The script's own code, else 3 when a --fail-on condition holds."""
    from ..summary import failed_conditions
    hits = failed_conditions(summary, conditions)
    if outcome_code != 0:
        return outcome_code
    if hits:
        print(f"nnprof: failing on {', '.join(hits)} (--fail-on)", file=sys.stderr)
        return EXIT_CONDITION
    return 0


def merge_and_report(top: str, opts, start_cwd: str, rank_code: int = 0, job=None):
    """Merge the ranks' runs at ``top``, print the merged report; the merged summary
    (None when nothing could be merged, said in one line)."""
    from ..distributed.merge import MergeError, write_merged
    try:
        merged, basis_run, _ = write_merged(top, job)
    except MergeError as exc:
        print(f"nnprof: {exc}", file=sys.stderr)
        return None
    except Exception as exc:  # the ranks' own runs are written: never lose them to this
        print(f"nnprof: the ranks' runs are in {_shown(top, start_cwd)}; merging them "
              f"failed ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return None
    report_run(merged, top, opts, start_cwd, basis_run)
    return merged
