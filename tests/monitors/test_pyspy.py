"""The py-spy monitor: fails soft without py-spy or ptrace; end to end it names the
hot function of the loader workers."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest
import torch

import nnprof
from nnprof.monitors import pyspy as pyspy_mod
from nnprof.monitors.pyspy import NO_PTRACE, NOT_FOUND, PySpyMonitor, find_pyspy

from conftest import ROOT, SCRIPTS, read_summary, run_cli


def fake_pyspy(tmp_path, body: str) -> str:
    """An executable standing in for py-spy (a Python script)."""
    path = tmp_path / "fake-py-spy"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def tiny_training():
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_command_line(tmp_path):
    mon = PySpyMonitor(str(tmp_path), 0, {"pyspy_rate": 250})
    cmd = mon.command("/bin/py-spy")
    assert cmd[:4] == ["/bin/py-spy", "record", "--pid", str(os.getpid())]
    for flag in ("--subprocesses", "--threads", "--function", "--full-filenames",
                 "--nonblocking"):
        assert flag in cmd
    assert cmd[cmd.index("--rate") + 1] == "250"
    assert cmd[cmd.index("--format") + 1] == "raw"
    assert cmd[cmd.index("--output") + 1] == str(tmp_path / "pyspy" / "profile.txt")


def test_finder_prefers_the_interpreters_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    assert find_pyspy() is None
    exe = tmp_path / "py-spy"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert find_pyspy() == str(exe)  # found on PATH
    here = tmp_path / "venv"
    here.mkdir()
    (here / "py-spy").write_text("#!/bin/sh\n")
    (here / "py-spy").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(here / "python"))
    assert find_pyspy() == str(here / "py-spy")


def test_not_found_gives_one_notice_and_the_run_completes(tmp_path, monkeypatch):
    monkeypatch.setattr(pyspy_mod, "find_pyspy", lambda: None)
    with nnprof.profile(out=str(tmp_path / "run"), monitors=["pyspy"]) as run:
        tiny_training()
    s = run.summary()
    assert s["status"] == "completed" and s["steps"]["train"] == 3
    assert [n for n in s["notices"] if "py-spy" in n] == [NOT_FOUND]
    assert s["hotspots"] is None
    assert not (tmp_path / "run" / "pyspy").exists()


def test_not_found_through_the_cli(tmp_path):
    code = ("import sys, nnprof.monitors.pyspy as m; m.find_pyspy = lambda: None; "
            "from nnprof.cli import main; sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-c", code, "profile", "--pyspy", "--no-monitors",
                        "--out", str(out), "--no-progress", str(SCRIPTS / "sleepy.py"),
                        "--steps", "3"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = read_summary(out)
    assert s["status"] == "completed" and s["steps"]["train"] == 3
    assert s["notices"].count(NOT_FOUND) == 1
    assert r.stderr.count("py-spy not found") == 1  # the terminal report's note


def test_permission_denied_gives_the_fix(tmp_path, monkeypatch):
    exe = fake_pyspy(tmp_path, """
        import sys
        print("Error: Permission Denied: Try running again with elevated permissions")
        sys.exit(1)
    """)
    monkeypatch.setattr(pyspy_mod, "find_pyspy", lambda: exe)
    with nnprof.profile(out=str(tmp_path / "run"), monitors=["pyspy"]) as run:
        tiny_training()
    s = run.summary()
    assert s["status"] == "completed" and s["steps"]["train"] == 3
    assert [n for n in s["notices"] if "py-spy" in n] == [NO_PTRACE]
    assert "ptrace_scope=0" in NO_PTRACE and "SYS_PTRACE" in NO_PTRACE


def test_stop_sends_sigint_and_reads_the_stacks(tmp_path, monkeypatch):
    stacks = (f'process {os.getpid()}:"python x.py";thread ({os.getpid()}): MainThread;'
              f'<module> (/u/x.py:1);work (/u/x.py:5) 30\n')
    exe = fake_pyspy(tmp_path, f"""
        import signal, sys, time
        out = sys.argv[sys.argv.index("--output") + 1]
        def done(*_):
            with open(out, "w") as fh:
                fh.write({stacks!r})
            sys.exit(0)
        signal.signal(signal.SIGINT, done)
        print("py-spy> Sampling process 100 times a second.", flush=True)
        while True:
            time.sleep(0.02)
    """)
    monkeypatch.setattr(pyspy_mod, "find_pyspy", lambda: exe)
    with nnprof.profile(out=str(tmp_path / "run"), monitors=["pyspy"]) as run:
        tiny_training()
    s = run.summary()
    assert not [n for n in s["notices"] if "py-spy" in n]
    folder = tmp_path / "run" / "pyspy"
    assert (folder / "profile.txt").read_text() == stacks
    assert (folder / "flamegraph.svg").read_text().startswith("<svg")
    assert s["hotspots"]["samples"]["main"] == 30
    assert s["hotspots"]["main"]["top"][0]["function"] == "work"


def test_a_py_spy_that_ignores_sigint_is_killed(tmp_path, monkeypatch):
    exe = fake_pyspy(tmp_path, """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("py-spy> Sampling process 100 times a second.", flush=True)
        while True:
            time.sleep(0.02)
    """)
    monkeypatch.setattr(pyspy_mod, "find_pyspy", lambda: exe)
    monkeypatch.setattr(pyspy_mod, "STOP_WAIT_S", 0.5)
    mon = PySpyMonitor(str(tmp_path), 0, {})
    mon.start()
    proc = mon.proc
    assert proc is not None and proc.poll() is None
    mon.stop()
    assert proc.poll() is not None
    assert "was killed" in mon.notice


# -- end to end with the real py-spy --------------------------------------------------
@pytest.mark.slow
def test_hot_worker_function_is_named(tmp_path):
    if find_pyspy() is None:
        pytest.skip("py-spy is not installed (pip install py-spy)")
    out = tmp_path / "run"
    r = run_cli(["profile", "--pyspy", "--out", out, "--no-progress",
                 SCRIPTS / "hot_worker.py", "--workers", "2", "--items", "64", "--ms", "20"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = read_summary(out)
    if NO_PTRACE in s["notices"]:
        pytest.skip("py-spy cannot attach here (ptrace not permitted)")
    assert not [n for n in s["notices"] if "py-spy" in n], s["notices"]
    h = s["hotspots"]
    w = h["workers"]
    assert w["processes"] == 2 and w["samples"] >= 20, w
    line = next(i for i, text in enumerate((SCRIPTS / "hot_worker.py").read_text()
                                           .splitlines(), 1) if "def decode_sample" in text)
    top = w["top"][0]
    assert (top["function"], top["line"]) == ("decode_sample", line), w["top"]
    assert os.path.samefile(top["file"], SCRIPTS / "hot_worker.py")
    assert top["share"] > 0.5
    assert any(f["verdict"] == "hot-worker-function" for f in h["findings"])
    # the input-bound verdict names the function in its advice
    if s["bottleneck"]["verdict"] == "input-bound":
        assert any("decode_sample in hot_worker.py" in a for a in s["bottleneck"]["advice"])
    assert (out / "pyspy" / "flamegraph.svg").exists()
    assert "hot function in loader workers: decode_sample" in r.stderr
