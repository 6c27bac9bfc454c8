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

from ..rundir.appendfile import AppendFile

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


DEFAULT_HZ = 10.0
MAX_HZ = 100.0  # faster sampling would cost the script CPU and show no more
JOIN_S = 2.0


class SamplingMonitor:
    """The thread, the rate and the shared ``samples.csv`` of a sampling monitor.

    Mixed into a :class:`nnprof.monitors.Monitor`: the subclass prepares its
    source in ``start()`` then calls :meth:`_begin_sampling`, and implements
    ``sample()``; a sample that raises is counted for a notice, never raised.
    """

    label = "monitor"  # how notices name it

    def _init_sampling(self) -> None:
        self._thread = None
        self._stop = threading.Event()
        self._writer = None
        self.errors = 0
        self.last_error = None

    def _begin_sampling(self) -> None:
        try:
            hz = float(self.options.get("sample_hz") or DEFAULT_HZ)
        except (TypeError, ValueError):
            hz = DEFAULT_HZ
        self.period = 1.0 / min(hz, MAX_HZ) if hz > 0 else 1.0 / DEFAULT_HZ
        self.pid = os.getpid()
        self._writer = open_samples(self.run_dir)
        self._thread = threading.Thread(target=self._loop, name=f"nnprof-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        _leave_signals_to_the_main_thread()
        while not self._stop.wait(self.period):
            try:
                self.sample()
            except Exception as exc:  # never into the script; counted for a notice
                self.errors += 1
                self.last_error = f"{exc.__class__.__name__}: {exc}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
            self._thread = None
        if self._writer is not None:
            if self._writer.error and not self.notice:
                self.notice = f"{self.label}: {self._writer.error}"
            close_samples(self._writer)
            self._writer = None
        self._after_stop()
        if self.errors and not self.notice:
            self.notice = f"{self.label}: {self.errors} samples failed (last: {self.last_error})"

    def _after_stop(self) -> None:
        pass


def _leave_signals_to_the_main_thread() -> None:
    """Block the termination signals in a sampler thread, so that the kernel delivers
    them to the script's main thread: a signal taken by another thread only sets a flag,
    and a main thread blocked in a lock or queue wait (a Pool worker waiting for its
    next task) would never run its Python handler."""
    try:
        import signal
        sigs = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                if hasattr(signal, n)}
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):
        pass

