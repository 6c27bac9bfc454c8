"""A run as the public API hands it out: :class:`Run` is the run directory
(:class:`nnprof.rundir.RunDir`) with its findings, and :func:`load_run` opens one.

The findings come from ``summary.json`` when the run finished, else they are built
now by :mod:`nnprof.summary`; that is why this class sits above the analyses while
the directory reader it extends sits below them.
"""
from __future__ import annotations

from .rundir import SCHEMA_VERSION, STEP_COLUMNS, RunDirError, RunWriter, write_json
from .rundir.reader import RunDir
from .summary import build_summary

__all__ = ["Run", "load_run", "RunDirError", "SCHEMA_VERSION", "STEP_COLUMNS", "RunWriter",
           "write_json"]


class Run(RunDir):
    """A run directory read back, with its findings."""

    def summary(self) -> dict:
        """The findings: from ``summary.json`` when the run finished, else computed now."""
        stored = self.summary_file
        if stored is not None:
            return stored
        return build_summary(self, status="incomplete", exit_code=None)


def load_run(path: str) -> Run:
    """Open a run directory written by ``nnprof profile`` or ``nnprof.profile()``."""
    return Run.load(path)
