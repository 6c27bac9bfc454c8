"""``samples.csv``: the one long-format file that the sampling monitors share.

Columns ``t_s,source,metric,value``: ``t_s`` on the clock of ``steps.csv``'s
``start_s``, ``source`` the monitor (``host``, ``gpu``), e.g.
``1.2300,host,cpu_percent,55``. The host and GPU monitors sample in their own
threads, so they share one writer per run directory, opened by whichever
starts first and closed by the last to stop; lines are appended under a lock
and written at most every ``FLUSH_S`` (one ``os.write`` each, so a reader sees
whole lines except perhaps a torn last one after a kill).
"""
from __future__ import annotations

import os
import threading
import time

from ..appendfile import AppendFile

SAMPLES_FILE = "samples.csv"
HEADER = "t_s,source,metric,value\n"
FLUSH_S = 0.5


def _fmt(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    return "%.6g" % round(v, 3)  # no float noise such as 4.5e-10 for an idle CPU


class SampleWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self.file = AppendFile(path, HEADER)
        self.lock = threading.Lock()
        self.users = 0
        self._flushed = time.monotonic()

    @property
    def error(self):
        return self.file.error

    def add(self, t_s: float, source: str, values: dict) -> None:
        """Append one sample: ``values`` maps metric name -> number (None skipped)."""
        head = "%.4f,%s," % (t_s, source)
        lines = [f"{head}{m},{_fmt(v)}\n" for m, v in values.items() if v is not None]
        with self.lock:
            self.file.buf.extend(lines)
            now = time.monotonic()
            if now - self._flushed >= FLUSH_S:
                self.file.flush()
                self._flushed = now

    def flush(self) -> None:
        with self.lock:
            self.file.flush()
            self._flushed = time.monotonic()


_WRITERS: dict = {}
_LOCK = threading.Lock()


def open_samples(run_dir: str) -> SampleWriter:
    """The run directory's shared writer (created on first use)."""
    path = os.path.abspath(os.path.join(run_dir, SAMPLES_FILE))
    with _LOCK:
        w = _WRITERS.get(path)
        if w is None:
            w = _WRITERS[path] = SampleWriter(path)
        w.users += 1
        return w


def close_samples(writer: SampleWriter) -> None:
    """Flush; the last user closes the file."""
    with _LOCK:
        writer.users -= 1
        with writer.lock:
            if writer.users <= 0:
                writer.file.close()
                if _WRITERS.get(writer.path) is writer:
                    del _WRITERS[writer.path]
            else:
                writer.file.flush()


def _after_fork_in_child() -> None:
    # A forked child (a loader worker) has no sampler threads; it must not
    # write the parent's pending lines, nor wait on a lock copied while held.
    global _LOCK
    _LOCK = threading.Lock()
    for w in _WRITERS.values():
        w.lock = threading.Lock()
        w.file.abandon()
    _WRITERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
