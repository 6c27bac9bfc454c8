"""``--memory-trace``: a few train steps of CUDA allocations with their stack traces.

After ``WARMUP`` train steps, PyTorch's allocator history is recorded
(``torch.cuda.memory._record_memory_history``) for ``STEPS`` train steps; then the
snapshot is saved as ``memory_snapshot.pickle`` in the run directory (the format
PyTorch's memory viewer, https://pytorch.org/memory_viz, opens: drag the file onto the
page; it works offline once loaded) and the top allocation sites of those steps
(bytes allocated per source line of the script, torch's own frames skipped) go to
``memory_trace.json``. Without CUDA, or with a torch that cannot record the history, it
skips with a notice. Recording costs time on every allocation: the steps it covers are
slower, and the statistics leave nothing out for it, so use it on a run meant for it.
"""
from __future__ import annotations

import json
import os
import pickle
from typing import Optional

WARMUP = 5
STEPS = 3
MAX_ENTRIES = 200_000
TOP = 10
SNAPSHOT = "memory_snapshot.pickle"
RESULT = "memory_trace.json"


def _site(frames: list) -> Optional[str]:
    """The first frame outside torch and nnprof: where the script allocated."""
    for f in frames or []:
        name = str(f.get("filename") or "")
        norm = name.replace("\\", "/")
        if not name or "/torch/" in norm or "/nnprof/" in norm or norm.startswith("<"):
            continue
        return f"{name}:{f.get('line')} in {f.get('name')}"
    return None


def top_sites(snapshot: dict, top: int = TOP) -> list:
    """Bytes allocated per script site during the recording (the device traces'
    ``alloc`` events), largest first."""
    sites: dict = {}
    for trace in snapshot.get("device_traces") or []:
        for ev in trace or []:
            if ev.get("action") != "alloc":
                continue
            site = _site(ev.get("frames")) or "(no frame outside torch)"
            entry = sites.setdefault(site, {"site": site, "bytes": 0, "allocations": 0})
            entry["bytes"] += int(ev.get("size") or 0)
            entry["allocations"] += 1
    return sorted(sites.values(), key=lambda e: -e["bytes"])[:top]


class MemoryTrace:
    """Driven from the step records: starts after WARMUP train steps, stops STEPS later."""

    def __init__(self, run_dir: str, notices: list, warmup: int = WARMUP,
                 steps: int = STEPS) -> None:
        self.run_dir = run_dir
        self.notices = notices
        self.warmup = warmup
        self.steps = steps
        self.state = "waiting"
        self.started_at = 0

    def _skip(self, why: str) -> None:
        self.state = "done"
        self.notices.append(f"--memory-trace: {why}: no snapshot")

    def on_train_step(self, n_train: int) -> None:
        if self.state == "waiting" and n_train >= self.warmup:
            import torch
            if not torch.cuda.is_available() or not torch.cuda.is_initialized():
                return self._skip("the script did not use CUDA")
            record = getattr(torch.cuda.memory, "_record_memory_history", None)
            if record is None:
                return self._skip(f"torch {torch.__version__} cannot record allocations")
            try:
                record(max_entries=MAX_ENTRIES)
            except Exception as exc:
                return self._skip(f"recording failed ({exc.__class__.__name__}: {exc})")
            self.state, self.started_at = "recording", n_train
        elif self.state == "recording" and n_train >= self.started_at + self.steps:
            self._save(n_train)

    def finish(self, n_train: int) -> None:
        if self.state == "recording":
            self._save(n_train)
        elif self.state == "waiting":
            self._skip(f"the run ended before train step {self.warmup}")

    def _save(self, n_train: int) -> None:
        import torch
        self.state = "done"
        try:
            snap = torch.cuda.memory._snapshot()
        except Exception as exc:
            self.notices.append(f"--memory-trace: snapshot failed ({exc.__class__.__name__})")
            snap = None
        finally:
            try:
                torch.cuda.memory._record_memory_history(enabled=None)
            except Exception:
                pass
        if snap is None:
            return
        try:
            with open(os.path.join(self.run_dir, SNAPSHOT), "wb") as fh:
                pickle.dump(snap, fh)
            result = {"file": SNAPSHOT, "train_steps": [self.started_at, n_train],
                      "top_sites": top_sites(snap)}
            tmp = os.path.join(self.run_dir, RESULT + ".tmp")
            with open(tmp, "w") as fh:
                json.dump(result, fh)
            os.replace(tmp, os.path.join(self.run_dir, RESULT))
        except OSError as exc:
            self.notices.append(f"--memory-trace: cannot write the snapshot: "
                                f"{exc.strerror or exc}")


def load(run_dir: str) -> Optional[dict]:
    try:
        with open(os.path.join(run_dir, RESULT)) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
