"""Bad distributed options and merges: one line, exit 2, no traceback."""
from __future__ import annotations

import pytest

from conftest import SCRIPTS, run_cli

SCRIPT = SCRIPTS / "ddp_train.py"


@pytest.mark.parametrize("args,says", [
    (["--nproc-per-node", "0"], "--nproc-per-node: must be a positive integer"),
    (["--nproc-per-node", "two"], "--nproc-per-node: not an integer"),
    (["--nnodes", "3:2"], "MIN above MAX"),
    (["--master-port", "70000"], "port number"),
    (["--node-rank", "-1"], "--node-rank: must be 0 or more"),
    (["--nnodes", "2"], "--nnodes above 1 needs where the nodes meet"),
])
def test_bad_torchrun_options_are_one_line(tmp_path, args, says):
    r = run_cli(["profile", *args, "--out", tmp_path / "run", SCRIPT])
    assert r.returncode == 2 and says in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_launch_options_inside_a_rank_are_refused(tmp_path):
    r = run_cli(["profile", "--nproc-per-node", "2", "--out", tmp_path / "run", SCRIPT],
                env={"RANK": "0", "WORLD_SIZE": "2"})
    assert r.returncode == 2 and "already a rank" in r.stderr
    assert r.stderr.count("\n") == 1


def test_merge_of_what_is_not_a_distributed_run(tmp_path):
    (tmp_path / "plain").mkdir()
    r = run_cli(["merge", tmp_path / "plain"])
    assert r.returncode == 2 and "no rank-<R> run directories" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = run_cli(["merge"])
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_an_existing_distributed_run_is_never_overwritten(tmp_path):
    (tmp_path / "run" / "rank-0").mkdir(parents=True)
    (tmp_path / "run" / "rank-0" / "meta.json").write_text("{}")
    r = run_cli(["profile", "--nproc-per-node", "2", "--out", tmp_path / "run", SCRIPT])
    assert r.returncode == 2 and "already holds a run" in r.stderr
    r = run_cli(["profile", "--out", tmp_path / "run", SCRIPT])
    assert r.returncode == 2 and "already holds a run" in r.stderr
