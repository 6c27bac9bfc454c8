"""TensorBoard event files for a run: ``tensorboard --logdir RUN/tensorboard``.

``write(path, summary, run)`` makes the folder ``path`` (a run directory's
``tensorboard/``) with one TensorBoard run per sub-folder:

* ``train/``      x = the train step index (``train_index`` of ``steps.csv``):
  ``step/wall_s``; ``phase/<name>_s`` for the seven main-process phases;
  ``loader/<name>_s`` (fetch, transform, collate in the main process) when any
  is non-zero; ``memory/host_rss_bytes`` (and on CUDA ``memory/gpu_allocated_bytes``,
  ``memory/gpu_reserved_bytes``); ``gpu_phase/<name>_s`` and ``gpu/mem_peak_bytes`` on steps that
  have a device timeline; ``train/loss``.
* ``eval/``       x = the eval step's ordinal (0, 1, ... over all eval steps):
  ``eval_step/wall_s``, ``eval_phase/<name>_s``, ``eval_gpu_phase/<name>_s``,
  ``eval/loss``.
* ``validation/`` x = the train steps run before the evaluation pass:
  ``val/loss`` and, for classification losses, ``val/accuracy``,
  ``val/precision_macro``, ``val/recall_macro``, ``val/f1_macro``.
* ``trace/``      torch.profiler windows (``--trace``, written during the run by
  :mod:`nnprof.capture.trace`); left untouched here.

Long runs: a series of more than :data:`MAX_POINTS` steps is written as bucket
means of ``ceil(n / MAX_POINTS)`` consecutive steps (x = the bucket's first
step; a missing value is left out of its bucket's mean), with the bucket's
largest wall time as ``step/wall_max_s`` (``eval_step/wall_max_s``), so that
a rare slow step still shows. ``steps.csv`` keeps every step.

The files are encoded here, without TensorFlow, tensorboard or torch: an
``Event`` protobuf per step (wall_time=1 double, step=2 int64, file_version=3
string, summary=5; ``Summary.value``=1; ``Value``: tag=1, simple_value=2
float) holding all of that step's values, in TFRecord framing (u64 length,
masked CRC-32C of the length, data, masked CRC-32C of the data). The CRCs of
all records are computed together with numpy, a byte column at a time, which
is what makes 100k steps take well under a second (torch's SummaryWriter
computes them in pure Python, one event per value: ~24 s for 100k steps of
nine values). Each sub-folder holds one file, replaced atomically when the
report is written again.
"""
from __future__ import annotations

import datetime
import math
import os
import struct
import time
from typing import Optional

import numpy as np

from ..rundir.phases import LOADER_PHASES, PHASES
from .base import Renderer

#: a series longer than this is averaged in buckets (steps.csv keeps every step)
MAX_POINTS = 100_000
FILE_VERSION = b"brain.Event:2"
_pack_d = struct.Struct("<d").pack
_pack_f = struct.Struct("<f").pack
_pack_q = struct.Struct("<Q").pack


# -- CRC-32C (Castagnoli), as TFRecord framing wants it ------------------------
def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_TABLE = _crc_table()
_TABLE_LIST = _TABLE.tolist()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (one buffer, table-driven; for small inputs and tests)."""
    crc, table = 0xFFFFFFFF, _TABLE_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    """TFRecord's masking of a CRC (works on ints and uint32 arrays)."""
    if isinstance(crc, np.ndarray):
        crc = crc.astype(np.uint64)
        return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).astype(np.uint32)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _crc32c_columns(cols: np.ndarray, active: np.ndarray) -> np.ndarray:
    """CRC-32C of the columns of a byte matrix; column i is ``cols[:k, i]`` where
    ``active[j]`` (non-increasing) says how many columns are longer than j."""
    crc = np.full(cols.shape[1], 0xFFFFFFFF, dtype=np.uint32)
    table = _TABLE
    for j in range(cols.shape[0]):
        a = int(active[j])
        c = crc[:a]
        crc[:a] = table[(c ^ cols[j, :a]) & 0xFF] ^ (c >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c_many(payloads: list) -> np.ndarray:
    """CRC-32C of each of ``payloads`` (bytes), computed together.

    The payloads, zero-padded to the longest and sorted longest first, are the
    columns of a byte matrix; row j is folded into the CRCs of the payloads
    still that long (a prefix of the columns) by one vectorised table lookup.
    """
    n = len(payloads)
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    width = int(lengths.max())
    order = np.argsort(-lengths, kind="stable")
    padded = b"".join([p.ljust(width, b"\0") for p in payloads])
    rows = np.frombuffer(padded, dtype=np.uint8).reshape(n, width)[order]
    active = np.searchsorted(-lengths[order], -np.arange(width), side="left")
    out = np.empty(n, dtype=np.uint32)
    out[order] = _crc32c_columns(np.ascontiguousarray(rows.T), active)
    return out


def frame_records(payloads: list) -> bytes:
    """TFRecord framing of many payloads: length, masked CRC, data, masked CRC each."""
    n = len(payloads)
    if not n:
        return b""
    lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=n)
    heads = lengths.astype("<u8").view(np.uint8).reshape(n, 8)
    head_crc = masked(_crc32c_columns(np.ascontiguousarray(heads.T), np.full(8, n)))
    data_crc = masked(crc32c_many(payloads))
    pre = np.hstack([heads, head_crc.astype("<u4").view(np.uint8).reshape(n, 4)]).tobytes()
    post = data_crc.astype("<u4").tobytes()
    parts = []
    extend = parts.extend
    for i, p in enumerate(payloads):
        extend((pre[12 * i:12 * i + 12], p, post[4 * i:4 * i + 4]))
    return b"".join(parts)


# -- protobuf encoding -------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _value_prefix(tag: str) -> bytes:
    """Everything of a ``Summary.value`` entry but its 4-byte float."""
    t = tag.encode()
    value = b"\x0a" + _varint(len(t)) + t + b"\x15"
    return b"\x0a" + _varint(len(value) + 4) + value


def version_event(wall_time: float) -> bytes:
    return b"\x09" + _pack_d(wall_time) + b"\x1a" + _varint(len(FILE_VERSION)) + FILE_VERSION


def scalar_events(tags: list, x, wall_times, values) -> list:
    """One ``Event`` per row: step ``x[i]``, ``wall_times[i]``, and a ``Summary``
    with one simple value per tag whose value in ``values[i]`` is not NaN."""
    prefixes = [_value_prefix(t) for t in tags]
    out = []
    append = out.append
    for step, wt, row in zip(x.tolist(), wall_times.tolist(), values.tolist()):
        parts = [pre + _pack_f(v) for pre, v in zip(prefixes, row) if v == v]
        if not parts:
            continue
        summ = b"".join(parts)
        append(b"\x09" + _pack_d(wt) + b"\x10" + _varint(int(step)) + b"\x2a"
               + _varint(len(summ)) + summ)
    return out


# -- series ------------------------------------------------------------------
def bucket(x: np.ndarray, wall_times: np.ndarray, values: np.ndarray, wall_col: int,
           max_points: int = MAX_POINTS):
    """(x, wall_times, values, wall max or None): bucket means above ``max_points`` rows.

    Buckets are ``ceil(n / max_points)`` consecutive rows; x and wall time are
    the bucket's first; a value is the mean of the bucket's non-NaN values
    (NaN when it has none); the wall-max column is the largest ``values[:, wall_col]``.
    """
    n = len(x)
    if n <= max_points:
        return x, wall_times, values, None
    k = math.ceil(n / max_points)
    starts = np.arange(0, n, k)
    present = ~np.isnan(values)
    sums = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
    counts = np.add.reduceat(present.astype(np.int64), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    wall = values[:, wall_col]
    wmax = np.fmax.reduceat(np.where(np.isnan(wall), -np.inf, wall), starts)
    wmax = np.where(np.isinf(wmax), np.nan, wmax)
    return x[starts], wall_times[starts], means, wmax


def _col(df, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return df[name].to_numpy(dtype=np.float64, na_value=np.nan)


def step_series(df, x: np.ndarray, base: float, prefix: str,
                max_points: int = MAX_POINTS):
    """(tags, x, wall_times, values) for the steps in ``df``; ``prefix`` '' or 'eval_'."""
    names = ["step/wall_s" if not prefix else "eval_step/wall_s"]
    cols = [_col(df, "wall_s")]
    for p in PHASES:
        names.append(f"{prefix}phase/{p}_s")
        cols.append(_col(df, f"{p}_s"))
    if not prefix:
        for p in LOADER_PHASES:
            c = _col(df, f"{p}_s")
            if np.nansum(c) > 0:
                names.append(f"loader/{p}_s")
                cols.append(c)
    for p in PHASES:
        c = _col(df, f"gpu_{p}_s")
        if not np.isnan(c).all():
            names.append(f"{prefix}gpu_phase/{p}_s")
            cols.append(c)
    if not prefix:
        for col, name in (("gpu_mem_peak_bytes", "gpu/mem_peak_bytes"),
                          ("gpu_mem_allocated_bytes", "memory/gpu_allocated_bytes"),
                          ("gpu_mem_reserved_bytes", "memory/gpu_reserved_bytes"),
                          ("rss_bytes", "memory/host_rss_bytes")):
            c = _col(df, col)
            if not np.isnan(c).all():
                names.append(name)
                cols.append(c)
    loss = _col(df, "loss")
    if not np.isnan(loss).all():
        names.append("eval/loss" if prefix else "train/loss")
        cols.append(loss)
    values = np.column_stack(cols) if len(df) else np.zeros((0, len(cols)))
    wall_times = base + np.nan_to_num(_col(df, "start_s"), nan=0.0)
    x, wall_times, values, wmax = bucket(x, wall_times, values, 0, max_points)
    if wmax is not None:
        names.append("eval_step/wall_max_s" if prefix else "step/wall_max_s")
        values = np.column_stack([values, wmax])
    return names, x, wall_times, values


def _start_epoch(run, summary: dict) -> float:
    started = (getattr(run, "meta", None) or {}).get("started_at") or summary.get("started_at")
    try:
        return datetime.datetime.fromisoformat(str(started)).timestamp()
    except (TypeError, ValueError):
        return time.time()


def _validation(summary: dict, train_start: dict, base: float):
    """(tags, x, wall_times, values) of the evaluation passes (summary curves and metrics)."""
    keys = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")
    order: list = []  # (after_train_steps, {key: value}), one per pass
    for after, loss in (summary.get("curves") or {}).get("val_loss") or []:
        if after is None:
            continue
        order.append((int(after), {"loss": loss}))
    by_after: dict = {}  # a pass's metrics join the first loss at the same x without them
    for i, (after, _row) in enumerate(order):
        by_after.setdefault(after, []).append(i)
    for m in summary.get("metrics") or []:
        after = m.get("after_train_steps")
        if after is None:
            continue
        slots = [i for i in by_after.get(int(after), []) if "accuracy" not in order[i][1]]
        row = {k: m.get(k) for k in keys[1:]}
        if slots:
            order[slots[0]][1].update(row)
        else:
            order.append((int(after), row))
    order.sort(key=lambda t: t[0])
    tags = [f"val/{k}" for k in keys]
    if not order:
        return tags, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, len(keys)))
    x = np.array([a for a, _ in order], dtype=np.int64)
    vals = np.array([[np.nan if r.get(k) is None else float(r[k]) for k in keys]
                     for _, r in order], dtype=np.float64)
    wt = np.array([train_start.get(a, base) for a, _ in order], dtype=np.float64)
    return tags, x, wt, vals


def _write_events(folder: str, payloads: list, wall_time: float) -> Optional[str]:
    """Replace the event file in ``folder`` by these events (none: remove the folder's files)."""
    old = []
    if os.path.isdir(folder):
        old = [f for f in os.listdir(folder) if "tfevents" in f]
    if not payloads:
        for f in old:
            os.unlink(os.path.join(folder, f))
        return None
    os.makedirs(folder, exist_ok=True)
    name = f"events.out.tfevents.{int(wall_time)}.nnprof"
    data = frame_records([version_event(wall_time)] + payloads)
    tmp = os.path.join(folder, f".tmp{os.getpid()}-events")  # no 'tfevents': not read
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, os.path.join(folder, name))
    for f in old:
        if f != name:
            os.unlink(os.path.join(folder, f))
    return os.path.join(folder, name)


class TensorBoardRenderer(Renderer):
    """Scalars per step, per eval step and per validation pass, as TensorBoard event files."""

    name = "tensorboard"
    default_name = "tensorboard"

    def __init__(self, max_points: int = MAX_POINTS, **_options) -> None:
        self.max_points = int(max_points)

    def render(self, summary: dict, run=None) -> str:
        where = os.path.join(run.path, self.default_name) if run is not None \
            else f"RUN_DIR/{self.default_name}"
        return (f"TensorBoard event files are a folder, written at the end of each run: "
                f"tensorboard --logdir {where}\n")

    def write(self, path: str, summary: dict, run=None) -> str:
        os.makedirs(path, exist_ok=True)
        base = _start_epoch(run, summary)
        steps = run.steps if run is not None else None
        train_start: dict = {}
        series = {"train": None, "eval": None}
        if steps is not None and len(steps):
            ordered = steps.sort_values("index") if "index" in steps.columns else steps
            train = ordered[ordered["kind"] == "train"]
            evals = ordered[ordered["kind"] == "eval"]
            tx = np.nan_to_num(_col(train, "train_index"), nan=-1).astype(np.int64)
            if len(tx) and (tx < 0).any():  # a torn row: number the train steps in order
                tx = np.arange(len(train), dtype=np.int64)
            series["train"] = step_series(train, tx, base, "", self.max_points)
            series["eval"] = step_series(evals, np.arange(len(evals), dtype=np.int64), base,
                                         "eval_", self.max_points)
            starts = base + np.nan_to_num(_col(train, "start_s"), nan=0.0)
            train_start = dict(zip(tx.tolist(), starts.tolist()))
            if len(train):
                train_start[int(tx[-1]) + 1] = float(base + np.nan_to_num(
                    _col(train, "start_s")[-1:] + _col(train, "wall_s")[-1:], nan=0.0)[0])
        elif summary.get("curves"):  # no run directory: the loss curve of the summary
            pts = (summary.get("curves") or {}).get("train_loss") or []
            if pts:
                x = np.array([int(p[0]) for p in pts], dtype=np.int64)
                v = np.array([[np.nan if p[1] is None else float(p[1])] for p in pts])
                series["train"] = (["train/loss"], x, np.full(len(x), base), v)
        series["validation"] = _validation(summary, train_start, base)
        for name, s in series.items():
            payloads = scalar_events(*s) if s is not None else []
            _write_events(os.path.join(path, name), payloads, base)
        return path
