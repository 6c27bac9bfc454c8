"""Run directories read back for the commands that run nothing (report, compare,
project): a single run, or a distributed one merged again from its ranks, with a
one-line error for anything that cannot be read."""
from __future__ import annotations

import os

from .args import UsageError


def _load(path: str):
    """(Run, summary) of a run directory, or a one-line UsageError."""
    from ..run import Run, RunDirError
    try:
        run = Run.load(path)
        return run, run.summary()
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # a damaged directory must not end in a traceback of ours
        raise UsageError(f"{path}: cannot be read as a run ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _load_distributed(path: str):
    """(basis rank's Run, merged summary) of a distributed run, merged again from its
    ranks' directories (a rank killed mid-run included)."""
    from ..distributed.merge import MergeError, merge
    try:
        summary, run, _, _ = merge(path)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:
        raise UsageError(f"{path}: cannot merge its ranks ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return run, summary


def load_any(path: str):
    """(Run, summary) of a run directory, single or distributed."""
    from ..distributed import is_distributed_run
    if not os.path.isdir(path):
        raise UsageError(f"not a run directory: {path}")
    if is_distributed_run(path):
        return _load_distributed(path)
    return _load(path)
