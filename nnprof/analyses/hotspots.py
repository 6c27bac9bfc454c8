"""Hot functions from py-spy's collapsed stacks (``pyspy/profile.txt``).

Input: one line per distinct stack, ``frame;frame;...;frame COUNT``, outermost
frame first, as written by ``py-spy record --format raw --subprocesses
--threads --function``: a ``process PID:"cmdline"`` frame per process level
(the main process first, then a child), a ``thread (TID): name`` frame, then
``function (file:line)`` frames (``line`` is the function's first line).

Rules (shares are of *sampled* time: py-spy leaves idle threads out):

* **process**: a sample whose stack holds torch's ``_worker_loop`` is a
  loader **worker**'s, and only its frames above ``_worker_loop`` count (a
  forked worker still shows its parent's stack below it); a sample with one
  process frame is the **main** process's; anything else is an **other**
  child's. In the main process, the ``MainThread`` (or the thread whose id is
  the pid) is the **main thread**; others (pin memory, monitors) are
  **threads**.
* **phase** (main thread only): the phase of the innermost nnprof wrapper in
  the stack: ``module_call`` -> forward, ``call_loss``/``functional_loss`` ->
  loss, ``autograd_backward``/``autograd_grad`` (and ``tensor_backward`` of
  older runs) -> backward, the optimizer hooks, the ``in_phase_eager`` wrappers (``zero_grad``)
  and torch's ``profile_hook_step`` wrapper (``optimizer.step()``) ->
  optimizer, ``iter_next``/``loader_iter`` -> data; no wrapper -> other.
* **self** time of a function: samples where it is the innermost frame;
  **inclusive**: samples where it is anywhere in the stack (once per sample),
  listed for the user's functions other than ``<module>``. The main thread's
  lists (overall and per phase) are by self time: the Python function that
  was running, torch's included.
* **worker function** (the one named for workers): the innermost frame that
  is the user's (not torch's, nnprof's, the standard library's or an
  installed package's) above ``_worker_loop``; the innermost frame when there
  is none. So a user ``decode`` calling into PIL or torch is named, not them.
* **findings**: with at least ``MIN_SAMPLES`` samples in the group, a worker
  function with ``HOT_SHARE`` (20%) or more of worker time, and a user
  function with ``HOT_SHARE`` or more of main-thread self time.
* ``other`` in the main thread is any time outside the wrappers: the step's
  ``prep`` and ``other`` and also set-up and tear-down outside steps
  (imports, building the model); py-spy's stacks carry no timestamps.
"""
from __future__ import annotations

import os
import re
import sysconfig
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from . import Finding

HOT_SHARE = 0.20
MIN_SAMPLES = 20
TOP_N = 10
TOP_PHASE_N = 5
PHASE_ORDER = ("data", "prep", "forward", "loss", "backward", "optimizer", "other")

# (file suffix, last part of the function's qualified name) -> phase
_WRAPPERS = {
    ("nnprof/instrument/model.py", "module_call"): "forward",
    ("nnprof/instrument/model.py", "call_loss"): "loss",
    ("nnprof/instrument/model.py", "functional_loss"): "loss",
    ("nnprof/instrument/autograd.py", "tensor_backward"): "backward",  # in older runs
    ("nnprof/instrument/autograd.py", "autograd_backward"): "backward",
    ("nnprof/instrument/autograd.py", "autograd_grad"): "backward",
    ("nnprof/instrument/optim.py", "pre"): "optimizer",
    ("nnprof/instrument/optim.py", "post"): "optimizer",
    ("nnprof/instrument/steps.py", "wrapper"): "optimizer",  # zero_grad, in older runs
    ("nnprof/instrument/patching.py", "wrapper"): "optimizer",  # zero_grad
    ("torch/optim/optimizer.py", "wrapper"): "optimizer",
    ("nnprof/instrument/loader.py", "iter_next"): "data",
    ("nnprof/instrument/loader.py", "loader_iter"): "data",
}
_WRAPPER_FILES = tuple({f for f, _ in _WRAPPERS})
_WORKER_LOOP = ("torch/utils/data/_utils/worker.py", "_worker_loop")

_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))).replace("\\", "/") + "/"
_STDLIB_DIRS = tuple(sorted({p.replace("\\", "/").rstrip("/") + "/" for p in (
    sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")) if p}))
# the same on another machine (a run read back elsewhere)
_NOT_USER = re.compile(r"(^|/)(site|dist)-packages/|(^|/)lib/python\d+(\.\d+)?/|^<")
# torch and nnprof outside site-packages (a source checkout, an editable
# install elsewhere, py-spy's short file names)
_FRAMEWORK = re.compile(
    r"(^|/)torch/((nn|optim|utils|autograd|multiprocessing|cuda|_\w+)/"
    r"|(_\w+|functional|serialization|random|overrides|__init__)\.py$)"
    r"|(^|/)nnprof/((instrument|monitors|analyses|renderers|rundir|capture|cli|check"
    r"|distributed|sweep)/"
    r"|(session|runner|run|summary|progress|_version|__main__|__init__)\.py$)")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{short_path(self.file)}:{self.line}" if self.line else short_path(self.file)


@dataclass(frozen=True)
class Sample:
    """One collapsed-stack line: ``count`` samples of ``frames`` (outermost first)."""
    count: int
    pids: tuple
    thread_id: Optional[str]
    thread_name: Optional[str]
    frames: tuple


def short_path(path: str) -> str:
    """``torch/nn/modules/linear.py`` for installed packages and the standard
    library, the file name for the user's files."""
    p = path.replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in p:
            return p.split(marker, 1)[1]
    m = re.search(r"lib/python\d+(\.\d+)?/", p)
    if m:
        return p[m.end():]
    if p.startswith(_OWN_DIR):
        return "nnprof/" + p[len(_OWN_DIR):]
    return p.rsplit("/", 1)[-1]


def is_user(frame: Frame) -> bool:
    """Not torch's, nnprof's, the standard library's or an installed package's."""
    f = frame.file.replace("\\", "/")
    if not f or f.startswith(_OWN_DIR) or f.startswith(_STDLIB_DIRS) or _NOT_USER.search(f):
        return False
    return not _FRAMEWORK.search(f)


def _parse_frame(seg: str) -> Frame:
    if seg.endswith(")") and " (" in seg:
        func, loc = seg[:-1].split(" (", 1)
        path, _, line = loc.rpartition(":")
        if path and line.isdigit():
            return Frame(func, path, int(line))
        return Frame(func, loc, 0)
    return Frame(seg, "", 0)


def _segments(stack: str) -> list:
    """Split on ';', keeping a quoted command line that holds ';' in one piece."""
    out: list = []
    for seg in stack.split(";"):
        if out and out[-1].startswith("process ") and out[-1].count('"') == 1:
            out[-1] += ";" + seg
        else:
            out.append(seg)
    return out


_PROCESS = re.compile(r'^process (\d+)(?::|$)')
_THREAD = re.compile(r"^thread \((\w+)\)(?::\s*(.*))?$")


def parse_collapsed(data: Union[str, Iterable[str]]) -> list:
    """Collapsed stacks (text or lines) -> :class:`Sample` list; bad lines are skipped."""
    lines = data.splitlines() if isinstance(data, str) else data
    samples = []
    for raw in lines:
        line = raw.rstrip("\r\n").rstrip()
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit() or int(count) <= 0:
            continue
        pids, tid, tname, frames = [], None, None, []
        for seg in _segments(stack):
            m = _PROCESS.match(seg)
            if m and not frames and tid is None:
                pids.append(int(m.group(1)))
                continue
            m = _THREAD.match(seg)
            if m and not frames and tid is None:
                tid, tname = m.group(1), (m.group(2) or None)
                continue
            frames.append(_parse_frame(seg))
        samples.append(Sample(int(count), tuple(pids), tid, tname, tuple(frames)))
    return samples


def _is_worker_loop(fr: Frame) -> bool:
    return fr.function == _WORKER_LOOP[1] and fr.file.replace("\\", "/").endswith(_WORKER_LOOP[0])


def _phase_of(fr: Frame) -> Optional[str]:
    f = fr.file.replace("\\", "/")
    if not f.endswith(_WRAPPER_FILES):
        return None
    name = fr.function.rsplit(".", 1)[-1]
    for (suffix, fn), phase in _WRAPPERS.items():
        if fn == name and f.endswith(suffix):
            if suffix.startswith("torch/") and "profile_hook_step" not in fr.function:
                return None
            return phase
    return None


def _is_main_thread(s: Sample) -> bool:
    if s.thread_id is None:
        return True
    if s.thread_name:
        return s.thread_name == "MainThread"
    return bool(s.pids) and s.thread_id == str(s.pids[0])


def _attributed(frames: tuple) -> Optional[Frame]:
    for fr in reversed(frames):
        if is_user(fr):
            return fr
    return frames[-1] if frames else None


def classify(s: Sample) -> tuple:
    """(group, phase or None, frames that count): group is main | threads | workers | other."""
    for i in range(len(s.frames) - 1, -1, -1):
        if _is_worker_loop(s.frames[i]):
            return "workers", None, s.frames[i + 1:]
    if len(s.pids) > 1:
        return "other", None, s.frames
    if not _is_main_thread(s):
        return "threads", None, s.frames
    for i in range(len(s.frames) - 1, -1, -1):
        phase = _phase_of(s.frames[i])
        if phase is not None:
            return "main", phase, s.frames[i + 1:]
    return "main", "other", s.frames


def _top(counter: Counter, total: int, n: int, rate_hz: Optional[float]) -> list:
    out = []
    for fr, k in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0].function))[:n]:
        d = {"function": fr.function, "file": fr.file, "line": fr.line, "where": fr.where,
             "samples": k, "share": k / total if total else None}
        if rate_hz:
            d["approx_s"] = k / rate_hz
        out.append(d)
    return out


def _inclusive(counter: Counter, frames: tuple, k: int) -> None:
    for fr in set(frames):
        if fr.function != "<module>" and is_user(fr):
            counter[fr] += k


def hotspots(data: Union[str, Iterable[str]], rate_hz: Optional[float] = None) -> tuple:
    """(dict for ``summary.json["hotspots"]``, list of :class:`Finding`)."""
    samples = parse_collapsed(data)
    total = sum(s.count for s in samples)
    groups: Counter = Counter()
    self_all, incl_all = Counter(), Counter()
    main_self, worker_attr, worker_self, worker_incl = Counter(), Counter(), Counter(), Counter()
    phase_n: Counter = Counter()
    phase_self: dict = {}
    main_phase_of: dict = {}
    worker_pids, other_pids = set(), set()
    for s in samples:
        if not s.frames:
            continue
        group, phase, own = classify(s)
        groups[group] += s.count
        self_all[s.frames[-1]] += s.count
        # a worker's frames below _worker_loop are its parent's, copied by fork
        _inclusive(incl_all, own if group == "workers" else s.frames, s.count)
        if group == "workers":
            attr = _attributed(own) or s.frames[-1]
            if s.pids:
                worker_pids.add(s.pids[-1])
            worker_attr[attr] += s.count
            worker_self[s.frames[-1]] += s.count
            _inclusive(worker_incl, own, s.count)
        elif group == "other" and s.pids:
            other_pids.add(s.pids[-1])
        elif group == "main":
            inner = s.frames[-1]
            phase_n[phase] += s.count
            phase_self.setdefault(phase, Counter())[inner] += s.count
            main_self[inner] += s.count
            main_phase_of.setdefault(inner, Counter())[phase] += s.count

    n_main, n_workers = groups["main"], groups["workers"]
    result = {
        "source": "py-spy",
        "rate_hz": rate_hz,
        "samples": {"total": total, "main": n_main, "threads": groups["threads"],
                    "workers": n_workers, "other": groups["other"]},
        "top_self": _top(self_all, total, TOP_N, rate_hz),
        "top_inclusive": _top(incl_all, total, TOP_N, rate_hz),
        "main": {
            "samples": n_main,
            "top": _top(main_self, n_main, TOP_N, rate_hz),
            "phases": {p: {"samples": phase_n[p], "share": phase_n[p] / n_main,
                           "top": _top(phase_self[p], phase_n[p], TOP_PHASE_N, rate_hz)}
                       for p in PHASE_ORDER if phase_n[p]},
        },
        "workers": {
            "samples": n_workers,
            "processes": len(worker_pids),
            "top": _top(worker_attr, n_workers, TOP_N, rate_hz),
            "top_self": _top(worker_self, n_workers, TOP_N, rate_hz),
            "top_inclusive": _top(worker_incl, n_workers, TOP_N, rate_hz),
        },
        "other_processes": len(other_pids),
    }
    findings = []
    wtop = result["workers"]["top"]
    if n_workers >= MIN_SAMPLES and wtop and wtop[0]["share"] >= HOT_SHARE:
        t = wtop[0]
        findings.append(Finding(
            name="hotspots", verdict="hot-worker-function", severity="info",
            evidence={"group": "workers", **t, "group_samples": n_workers},
            advice=(f"hot function in loader workers: {t['function']} in {t['where']} takes "
                    f"{t['share'] * 100:.0f}% of worker time",)))
    user_main = [(fr, k) for fr, k in main_self.most_common() if is_user(fr)]
    if n_main >= MIN_SAMPLES and user_main and user_main[0][1] / n_main >= HOT_SHARE:
        fr, k = user_main[0]
        phase = main_phase_of[fr].most_common(1)[0][0]
        findings.append(Finding(
            name="hotspots", verdict="hot-main-function", severity="info",
            evidence={"group": "main", "function": fr.function, "file": fr.file,
                      "line": fr.line, "where": fr.where, "samples": k, "share": k / n_main,
                      "phase": phase, "group_samples": n_main},
            advice=(f"hot function in the main process: {fr.function} in {fr.where} takes "
                    f"{k / n_main * 100:.0f}% of main-thread time (mostly in {phase})",)))
    result["findings"] = [f.to_dict() for f in findings]
    return result, findings


def input_advice(h: Optional[dict]) -> Optional[str]:
    """For an input-bound run: the hot function where the batches are made
    (the workers, else the main thread's ``data`` phase), or None."""
    if not h:
        return None
    w = h.get("workers") or {}
    if w.get("samples", 0) >= MIN_SAMPLES and w.get("top"):
        t = w["top"][0]
        return (f"py-spy: {t['function']} in {t['where']} takes {t['share'] * 100:.0f}% of "
                f"loader-worker time: make it cheaper (vectorise it, cache its result, or "
                f"move it offline) before adding workers")
    data = ((h.get("main") or {}).get("phases") or {}).get("data") or {}
    if data.get("samples", 0) >= MIN_SAMPLES and data.get("top"):
        t = data["top"][0]
        return (f"py-spy: {t['function']} in {t['where']} takes {t['share'] * 100:.0f}% of the "
                f"main thread's data-loading time: make it cheaper, or load in workers")
    return None
