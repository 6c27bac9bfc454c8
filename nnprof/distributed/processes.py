"""The processes of a followed job (:mod:`.follow`): the record of them
(``RUN/processes.jsonl``, a line each), the environment that says where the job's
run is, a process's rank, and the naming of a finished process's run
(``rank-<R>``/``proc-<k>``), shared by the followed processes and the one nnprof
started."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from typing import Optional

ENV = "NNPROF_FOLLOW"
RECORD = "processes.jsonl"
STAGING = re.compile(r"^\.proc-(\d+)$")


def config(environ=None) -> Optional[dict]:
    environ = os.environ if environ is None else environ
    try:
        cfg = json.loads(environ.get(ENV) or "null")
    except ValueError:
        return None
    return cfg if isinstance(cfg, dict) and cfg.get("top") else None


def _command() -> list:
    return list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def record(top: str, line: dict) -> None:
    """One line of ``RUN/processes.jsonl`` (one ``O_APPEND`` write: whole lines)."""
    data = (json.dumps(line, default=str) + "\n").encode()
    try:
        fd = os.open(os.path.join(top, RECORD), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError:
        pass


def read_record(top: str) -> list:
    out = []
    try:
        with open(os.path.join(top, RECORD)) as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def rank_now() -> Optional[dict]:
    """This process's rank: its initialised process group, else torchrun's environment."""
    from . import rank_env
    env = os.environ
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
            local = int(env.get("LOCAL_RANK", rank))
            local_world = int(env.get("LOCAL_WORLD_SIZE", world))
            node = int(env.get("GROUP_RANK", env.get("NODE_RANK", 0)) or 0)
            return {"rank": rank, "world_size": world, "local_rank": local,
                    "local_world_size": local_world, "node_rank": node,
                    "run_id": env.get("TORCHELASTIC_RUN_ID")}
    except (ImportError, ValueError, RuntimeError):
        pass
    info = rank_env()
    return info.as_dict() if info is not None else None


def _note_first_train(profiler) -> None:
    """At the first train step: the rank, and that this process trains, into meta.json
    (so that a process killed later is still named and merged)."""
    rank = rank_now()
    profiler.follow_rank = rank
    path = os.path.join(profiler.path, "meta.json")
    try:
        with open(path) as fh:
            meta = json.load(fh)
        meta["rank"] = rank if rank is not None else meta.get("rank")
        meta.setdefault("follow", {})["trained"] = True
        profiler.writer.write_json("meta.json", meta)
    except (OSError, ValueError):
        pass


def _claim(top: str, rank: Optional[dict]) -> str:
    """A free ``rank-<R>`` (or ``proc-<k>``) folder, created empty (a rename then takes
    its place): the first mkdir wins, so two processes never take one name."""
    if rank is not None and rank.get("world_size", 1) > 1:
        name = f"rank-{rank['rank']}"
        try:
            os.mkdir(os.path.join(top, name))
            return name
        except FileExistsError:
            pass
    k = 0
    while True:
        name = f"proc-{k}"
        try:
            os.mkdir(os.path.join(top, name))
            return name
        except FileExistsError:
            k += 1


def _trained_rows(folder: str) -> int:
    try:
        with open(os.path.join(folder, "steps.csv")) as fh:
            return sum(1 for line in fh if ",train," in line)
    except OSError:
        return 0


def place(profiler, top: str, staging: str, kind: str, started: float) -> Optional[str]:
    """Name a finished process's run (``rank-<R>``/``proc-<k>``) and record it; drop it
    when it never trained. Returns its folder, or None."""
    command = [sys.executable, profiler.script, *(profiler.argv or [])] \
        if kind == "main" else _command()
    line = {"pid": os.getpid(), "parent_pid": os.getppid(), "kind": kind,
            "command": command, "started_unix": started, "ended_unix": time.time(),
            "steps": {"train": profiler.n_train, "eval": profiler.n_eval}}
    if profiler.n_train == 0:
        record(top, dict(line, trained=False, run=None))
        shutil.rmtree(staging, ignore_errors=True)
        return None
    rank = getattr(profiler, "follow_rank", None)
    name = _claim(top, rank)
    target = os.path.join(top, name)
    os.rename(staging, target)
    record(top, dict(line, trained=True, run=name, rank=rank))
    return target


def _read_meta(folder: str) -> dict:
    try:
        with open(os.path.join(folder, "meta.json")) as fh:
            meta = json.load(fh)
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _meta_says_trained(folder: str) -> bool:
    return bool((_read_meta(folder).get("follow") or {}).get("trained"))


def unfollowed_notice(pid, command, why, hint) -> str:
    shown = " ".join(command[1:])[:80]
    return (f"process {pid} ({shown}) was not followed ({why}); if it trains, profile it "
            f"with: {hint}")
