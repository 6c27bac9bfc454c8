"""A distributed run's layout and the rank this process is: ``RUN/rank-<R>/`` (one run
per rank) and ``RUN/proc-<k>/`` (a process that trained without a rank) under the
job's run directory, the directory every rank of a launch agrees on, and the rank
read from the environment torchrun (or another launcher) sets.

Part of the run's own model: the session records the rank in ``meta.json``; the
launcher, the following of a job's processes and the merge
(:mod:`nnprof.distributed`) build on it.
"""
from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from typing import Optional

RANK_DIR = re.compile(r"^rank-(\d+)$")
PROC_DIR = re.compile(r"^proc-(\d+)$")  # a process that trained without a rank (Hogwild)
# set by nnprof's own launcher in the ranks' environment: the parent merges, not rank 0
PARENT_MERGES = "NNPROF_PARENT_MERGES"


@dataclass(frozen=True)
class RankInfo:
    """One process of a torchrun launch, from the environment torchrun sets."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    node_rank: int
    run_id: Optional[str] = None

    def as_dict(self) -> dict:
        return {"rank": self.rank, "world_size": self.world_size,
                "local_rank": self.local_rank, "local_world_size": self.local_world_size,
                "node_rank": self.node_rank, "run_id": self.run_id}


def _int(environ, name: str) -> Optional[int]:
    try:
        return int(environ[name])
    except (KeyError, ValueError):
        return None


def rank_env(environ=None) -> Optional[RankInfo]:
    """The rank this process is, when torchrun (or another launcher setting ``RANK``
    and ``WORLD_SIZE``) started it; None otherwise."""
    environ = os.environ if environ is None else environ
    rank, world = _int(environ, "RANK"), _int(environ, "WORLD_SIZE")
    if rank is None or world is None or world < 1 or not 0 <= rank < world:
        return None
    local = _int(environ, "LOCAL_RANK")
    local_world = _int(environ, "LOCAL_WORLD_SIZE")
    node = _int(environ, "GROUP_RANK")
    if node is None:
        node = _int(environ, "NODE_RANK")
    run_id = environ.get("TORCHELASTIC_RUN_ID")
    return RankInfo(rank=rank, world_size=world, local_rank=rank if local is None else local,
                    local_world_size=world if local_world is None else local_world,
                    node_rank=node or 0, run_id=run_id if run_id not in (None, "", "none")
                    else None)


def rank_path(out: str, rank: int) -> str:
    return os.path.join(out, f"rank-{rank}")


def default_launch_out(name: str, info: RankInfo, root: str = "reports", environ=None) -> str:
    """One run directory that every rank of a launch agrees on without talking: named by
    torchrun's run id, else by the rendezvous port and the day."""
    environ = os.environ if environ is None else environ
    if info.run_id:
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", info.run_id)[:40]
    else:
        port = re.sub(r"[^0-9]", "", environ.get("MASTER_PORT", "")) or "0"
        tag = f"{datetime.date.today():%Y%m%d}-port{port}"
    return os.path.join(root, f"{name}-{tag}")


def rank_dirs(path: str, pattern=RANK_DIR) -> dict:
    """{rank: folder} of the ``rank-<R>`` run directories under ``path``."""
    out = {}
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in names:
        m = pattern.match(name)
        full = os.path.join(path, name)
        if m and os.path.isdir(full) and os.path.exists(os.path.join(full, "meta.json")):
            out[int(m.group(1))] = full
    return dict(sorted(out.items()))


def proc_dirs(path: str) -> dict:
    """{k: folder} of the ``proc-<k>`` run directories under ``path``."""
    return rank_dirs(path, PROC_DIR)


def is_distributed_run(path: str) -> bool:
    """Several processes' runs, merged at ``path`` (ranks, or processes without one)."""
    return bool(rank_dirs(path)) or bool(proc_dirs(path))
