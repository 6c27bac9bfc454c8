"""End to end: a script under ``torch.compile`` profiled through the real CLI prints
exactly what it prints under plain python, Dynamo's own counts of graph breaks, graphs
and compiled frames included (the script prints them), and its steps are measured."""
import re

import pytest

import nnprof
from conftest import SCRIPTS, run_cli, run_python

SCRIPT = SCRIPTS / "compiled_train.py"
ENV = {"OMP_NUM_THREADS": "1"}


def _without_own_lines(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if not line.startswith("nnprof: "))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["module", "method", "function"])
def test_compiled_script_is_untouched_and_measured(tmp_path, how):
    pytest.importorskip("torch._dynamo")
    if how == "method" and not hasattr(__import__("torch").nn.Module, "compile"):
        pytest.skip("nn.Module.compile() needs torch >= 2.2")
    args = [SCRIPT, "--how", how, "--epochs", "2"]
    plain = run_python(args, env=ENV)
    assert plain.returncode == 0, plain.stderr
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", *args], env=ENV)
    assert r.returncode == 0, r.stderr
    assert "graph breaks 0" in plain.stdout
    assert r.stdout == plain.stdout
    assert _without_own_lines(r.stderr) == plain.stderr
    steps = nnprof.load_run(str(out)).steps
    train = steps[steps["kind"] == "train"]
    assert len(train) == 8  # 2 epochs of 4 batches
    assert (train["n_backward"] == 1).all()
    if how != "function":  # a compiled function's model call is inside the graph
        assert (train["n_forward"] == 1).all()
        assert train["forward_s"].iloc[1:].gt(0).all()
    if how == "module":  # the loss computed outside the compiled region
        assert train["loss_s"].gt(0).all()
    assert train["loss"].notna().all()


def test_dynamo_logs_name_the_users_forward_as_without_nnprof(tmp_path):
    """``TORCH_LOGS=recompiles``: the function Dynamo recompiles, and the guard that
    failed, read as under plain python (the user's ``forward`` and its argument ``x``),
    never nnprof's patched ``Module.__call__``; Dynamo's frame count is the same."""
    env = dict(ENV, TORCH_LOGS="recompiles")
    script = SCRIPTS / "recompiles.py"
    plain = run_python([script], env=env)
    r = run_cli(["profile", "--out", tmp_path / "run", "--no-progress", "--quiet", script],
                env=env)
    assert plain.returncode == r.returncode == 0, r.stderr

    def said(stderr):
        return [re.sub(r"^.*\[__recompiles\]\s*", "", ln) for ln in stderr.splitlines()
                if "Recompiling function" in ln or "mismatch" in ln]
    assert said(plain.stderr) and said(r.stderr) == said(plain.stderr)
    assert "Recompiling function forward in" in said(plain.stderr)[0]
    assert "module_call" not in r.stderr
    assert r.stdout == plain.stdout  # Dynamo's frame and graph counts
