"""What a run writes, and the readers of its JSON files.

Layout of a run directory (a contract; ``schema_version`` in ``meta.json`` and
``summary.json``):

* ``meta.json``     written at start: script, argv, budget, environment.
* ``steps.csv``     one row per step, appended and flushed every few rows.
* ``loaders.jsonl`` one line per DataLoader (metadata) and per ``iter()`` call.
* ``loader/<pid>.csv`` one row per batch made by that process (main or worker);
  ``loader/<pid>.json`` that process's time per transform class, per loader id.
* ``samples.csv``   host and GPU samples, long format ``t_s,source,metric,value``
  (:mod:`nnprof.monitors.samples`).
* ``pyspy/``        with ``--pyspy``: ``profile.txt`` (py-spy's collapsed stacks),
  ``flamegraph.svg``, ``pyspy.json`` (rate, pid), ``pyspy.log``.
* ``summary.json``  written at the end (status, exit code, findings).

Files are appended through :class:`nnprof.rundir.appendfile.AppendFile`.
"""
from __future__ import annotations

import json
import math
import os

from .phases import LOADER_PHASES, PHASES
from .appendfile import AppendFile

SCHEMA_VERSION = 1
STEP_COLUMNS = (
    ["index", "kind", "train_index", "start_s", "wall_s"]
    + [f"{p}_s" for p in PHASES]
    + [f"{p}_s" for p in LOADER_PHASES]
    + ["loader", "loss", "over_budget", "n_forward", "n_backward", "n_optimizer"]
    + [f"gpu_{p}_s" for p in PHASES]
    + ["gpu_mem_peak_bytes", "pass_start", "comm_wait_s", "rss_bytes",
       "gpu_mem_allocated_bytes", "gpu_mem_reserved_bytes"]
)


class RunDirError(Exception):
    """A run directory that cannot be read or written; the message is one line."""


class RunWriter:
    """Streams a run to its directory (the caller batches the step rows)."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.steps = AppendFile(os.path.join(path, "steps.csv"), ",".join(STEP_COLUMNS) + "\n")
        self.loaders = AppendFile(os.path.join(path, "loaders.jsonl"))

    def write_json(self, name: str, obj) -> None:
        write_json(os.path.join(self.path, name), obj)

    def write_rows(self, lines: list) -> None:
        """Append formatted steps.csv lines and write them out now."""
        if lines:
            self.steps.buf.extend(lines)
            self.steps.flush()

    def loader_event(self, event: dict) -> None:
        self.loaders.append(json.dumps(event, default=str) + "\n")
        self.loaders.flush()

    def flush(self) -> None:
        self.steps.flush()
        self.loaders.flush()

    def close(self) -> None:
        self.steps.close()
        self.loaders.close()

    def abandon(self) -> None:
        self.steps.abandon()
        self.loaders.abandon()


def write_json(path: str, obj) -> None:
    """Atomic write, so that a reader never sees half a file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:  # a full disk must not leave a half-written .tmp behind
            os.unlink(tmp)
        except OSError:
            pass
        raise


def json_safe(obj):
    """JSON-safe: NaN and infinities become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            return json_safe(obj.item())
        except (ValueError, TypeError):
            return str(obj)
    return obj


def _read_json(path: str):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc.__class__.__name__})") from None


def _read_jsonl(path: str) -> list:
    """The JSON objects of a JSON-lines file; torn or foreign lines are skipped."""
    out = []
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
    return out
