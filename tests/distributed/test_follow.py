"""Following the job's processes, in-process: the environment and the fork patch are
put in place and taken back; a process's run is named by its rank or as a process."""
from __future__ import annotations

import json
import multiprocessing.process as mp_process
import os

from nnprof.distributed import follow, processes
from nnprof.instrument.patching import installed


class _Profiler:
    def __init__(self, path):
        self.path = str(path)
        self.script, self.argv = "train.py", ["--x"]
        self.n_train, self.n_eval = 0, 0
        self.on_first_train = self.before_summary = None


def test_following_sets_and_restores_the_environment_and_the_fork_patch(tmp_path):
    before = (os.environ.get("PYTHONPATH"), mp_process.BaseProcess.__dict__["_bootstrap"])
    f = follow.Following(_Profiler(tmp_path), {"budget": 1.0}).install()
    try:
        assert os.environ["PYTHONPATH"].split(os.pathsep)[0] == follow.BOOT
        assert os.path.exists(os.path.join(follow.BOOT, "sitecustomize.py"))
        cfg = processes.config()
        assert cfg["top"] == str(tmp_path) and cfg["script"] == "train.py"
        patched = [p for p in installed() if p[1] == "_bootstrap"]
        assert patched and patched[0][3].__wrapped__ is before[1]
    finally:
        f.uninstall()
    assert (os.environ.get("PYTHONPATH"), mp_process.BaseProcess.__dict__["_bootstrap"]) == before
    assert processes.config() is None


def test_a_run_is_named_by_rank_else_as_a_process_and_recorded(tmp_path):
    for pid, rank in ((1, {"rank": 1, "world_size": 2}), (2, None), (3, None)):
        staging = tmp_path / f".proc-{pid}"
        staging.mkdir()
        (staging / "steps.csv").write_text("x\n")
        p = _Profiler(staging)
        p.n_train = 3
        p.follow_rank = rank
        processes.place(p, str(tmp_path), str(staging), "spawn", 0.0)
    idle = tmp_path / ".proc-4"
    idle.mkdir()
    assert processes.place(_Profiler(idle), str(tmp_path), str(idle), "exec", 0.0) is None
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "proc-0", "proc-1", "processes.jsonl", "rank-1"]
    lines = processes.read_record(str(tmp_path))
    assert [x["run"] for x in lines] == ["rank-1", "proc-0", "proc-1", None]
    assert [x["trained"] for x in lines] == [True, True, True, False]
    assert json.dumps(lines)  # plain JSON
