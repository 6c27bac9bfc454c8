"""End-to-end: the real CLI in a subprocess, as ``nnprof`` and as ``python -m nnprof``.

The scripts it runs live in tests/scripts/: show_env.py and envpkg/show.py print
what they see of their invocation, exits.py ends as told, seeded.py prints
seeded training results, sleepy.py injects known phase costs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, read_summary, run_cli, run_python

OURS = ["--no-progress"]
BOTH = pytest.mark.parametrize("module", [False, True], ids=["nnprof", "python-m-nnprof"])
slow = pytest.mark.slow


def profile(out, *args, module=False, cwd=None, quiet=True):
    opts = ["profile", "--out", out, *OURS] + (["--quiet"] if quiet else [])
    return run_cli(opts + list(args), module=module, cwd=cwd)


def data_rows(run_dir) -> int:
    """Complete data lines in steps.csv (a torn last line does not count)."""
    path = Path(run_dir) / "steps.csv"
    if not path.exists():
        return 0
    text = path.read_text()
    return max(text.count("\n") - 1, 0)


def snapshot(folder) -> dict:
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_usage_error(r):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("nnprof: error:"), r.stderr


# -- 1. the script sees what it would see under plain python ------------------------

@slow
@BOTH
@pytest.mark.parametrize("where", ["script-folder", "elsewhere"])
def test_script_sees_same_invocation(tmp_path, module, where):
    if where == "script-folder":
        cwd, script = SCRIPTS, "show_env.py"
    else:
        cwd, script = tmp_path, str(SCRIPTS / "show_env.py")
    args = [script, "a", "--flag", "x y"]
    plain = run_python(args, cwd=cwd)
    prof = profile(tmp_path / "run", *args, module=module, cwd=cwd)
    assert plain.returncode == 0 and prof.returncode == 0, prof.stderr
    want, got = json.loads(plain.stdout), json.loads(prof.stdout)
    for key in ("name", "argv", "cwd", "path0", "spec", "main_is_me"):
        assert got[key] == want[key], key
    assert got["name"] == "__main__"
    assert got["argv"] == args
    assert got["cwd"] == str(cwd)
    # python puts the script's folder, made absolute, first on sys.path
    assert got["path0"] == str(SCRIPTS)


def test_script_sees_same_file_and_package(tmp_path):
    plain = run_python(["show_env.py"], cwd=SCRIPTS)
    prof = profile(tmp_path / "run", "show_env.py", cwd=SCRIPTS)
    want, got = json.loads(plain.stdout), json.loads(prof.stdout)
    assert (got["file"], got["package"]) == (want["file"], want["package"])


@slow
@BOTH
def test_module_sees_same_invocation(tmp_path, module):
    args = ["-m", "envpkg.show", "a", "--flag"]
    plain = run_python(args, cwd=SCRIPTS)
    prof = profile(tmp_path / "run", *args, module=module, cwd=SCRIPTS)
    assert plain.returncode == 0, plain.stderr
    assert prof.returncode == 0, prof.stderr
    want, got = json.loads(plain.stdout), json.loads(prof.stdout)
    assert got == want
    assert got["name"] == "__main__" and got["spec"] == "envpkg.show"
    assert got["argv"] == [str(SCRIPTS / "envpkg" / "show.py"), "a", "--flag"]
    assert got["path0"] == str(SCRIPTS)
    assert read_summary(tmp_path / "run")["script"] == "-m envpkg.show"


# -- 2. exit codes and statuses -----------------------------------------------------

@slow
@BOTH
def test_normal_end_is_completed(tmp_path, module):
    r = profile(tmp_path / "run", SCRIPTS / "exits.py", "--steps", "4", module=module)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "finished"
    s = read_summary(tmp_path / "run")
    assert (s["status"], s["exit_code"]) == ("completed", 0)
    assert s["steps"]["train"] == 4


@slow
@BOTH
def test_sys_exit_code_is_passed_on(tmp_path, module):
    r = profile(tmp_path / "run", SCRIPTS / "exits.py", "--mode", "exit", "--code", "3",
                "--steps", "2", module=module)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    s = read_summary(tmp_path / "run")
    assert (s["status"], s["exit_code"]) == ("crashed", 3)
    assert s["steps"]["train"] == 2


@slow
def test_uncaught_exception_is_crashed_with_clean_traceback(tmp_path):
    script = SCRIPTS / "exits.py"
    r = profile(tmp_path / "run", script, "--mode", "crash", "--crash-at", "4", "--steps", "9")
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines()[-1] == "step 4 done"
    err = r.stderr
    assert "Traceback (most recent call last):" in err
    assert "RuntimeError: boom after step 4" in err
    tb = err[err.index("Traceback"):err.index("RuntimeError: boom")]
    frames = [ln.strip() for ln in tb.splitlines() if ln.strip().startswith('File "')]
    assert frames, err
    # the first frame is the script's own module level, as under plain python
    assert "exits.py" in frames[0] and "in <module>" in frames[0], frames
    assert any('exits.py", line 23, in explode' in f for f in frames), frames
    own = str(ROOT / "nnprof") + os.sep
    for f in frames:
        path = f.split('"')[1]
        assert not os.path.abspath(path).startswith(own), f
        assert "runpy" not in f, f
    s = read_summary(tmp_path / "run")
    assert (s["status"], s["exit_code"]) == ("crashed", 1)
    assert s["steps"]["train"] == 4
    assert data_rows(tmp_path / "run") == 4


def _nnprof_exe():
    exe = Path(sys.executable).parent / "nnprof"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]


def _start_forever(tmp_path, out, sleep="0.02"):
    """Start a never-ending profiled loop; return (process, stdout file) once steps stream."""
    stdout = tmp_path / "stdout.txt"
    env = dict(os.environ, PYTHONHASHSEED="0")
    with open(stdout, "w") as fo, open(tmp_path / "stderr.txt", "w") as fe:
        proc = subprocess.Popen(_nnprof_exe() + ["profile", "--out", str(out), *OURS,
                                                 str(SCRIPTS / "exits.py"), "--mode", "forever",
                                                 "--sleep", sleep],
                                cwd=ROOT, stdout=fo, stderr=fe, env=env)
    deadline = time.monotonic() + 60
    while data_rows(out) < 3:
        if proc.poll() is not None:
            pytest.fail(f"profiled process ended early: {proc.returncode}\n"
                        + (tmp_path / "stderr.txt").read_text())
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail("no steps were streamed to steps.csv")
        time.sleep(0.05)
    return proc, stdout


def _printed_steps(stdout: Path) -> int:
    done = [ln for ln in stdout.read_text().splitlines() if ln.endswith(" done")]
    return int(done[-1].split()[1]) if done else 0


@slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_is_interrupted(tmp_path, sig, code):
    out = tmp_path / "run"
    proc, stdout = _start_forever(tmp_path, out)
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{sig!r} did not end the run")
    err = (tmp_path / "stderr.txt").read_text()
    assert rc == code, err
    assert "Traceback" not in err
    s = read_summary(out)
    assert (s["status"], s["exit_code"]) == ("interrupted", code)
    printed = _printed_steps(stdout)
    assert s["steps"]["train"] >= 3
    assert abs(s["steps"]["train"] - printed) <= 1, (s["steps"], printed)
    assert data_rows(out) == s["steps"]["total"]


@slow
def test_sigkill_leaves_a_readable_partial_run(tmp_path):
    out = tmp_path / "run"
    proc, stdout = _start_forever(tmp_path, out)
    deadline = time.monotonic() + 60
    while _printed_steps(stdout) < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    printed = _printed_steps(stdout)
    rows = data_rows(out)
    assert printed >= 25
    # the writer flushes every 16 rows or 0.25 s; one free step may be held back
    assert printed - 17 <= rows <= printed + 1, (rows, printed)
    assert not (out / "summary.json").exists()

    r = run_cli(["report", out])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "incomplete" in r.stdout

    r = run_cli(["report", out, "--format", "json"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["status"] == "incomplete" and s["exit_code"] is None
    assert s["steps"]["total"] == rows
    assert not (out / "summary.json").exists(), "report must not write into the run"


# -- 3. bad input: one line, exit 2, no traceback -------------------------------------

@pytest.mark.parametrize("make_args", [
    pytest.param(lambda t: ["profile", "--out", t / "run", t / "missing.py"], id="missing"),
    pytest.param(lambda t: ["profile", "--out", t / "run", t], id="directory"),
    pytest.param(lambda t: ["profile", "--out", t / "run", _write(t / "bad.py", "def f(:\n")],
                 id="syntax-error"),
    pytest.param(lambda t: ["profile", "--bogus", SCRIPTS / "exits.py"], id="unknown-flag"),
    pytest.param(lambda t: ["profile", "--budget", "-1", SCRIPTS / "exits.py"], id="budget-neg"),
    pytest.param(lambda t: ["profile", "--budget", "abc", SCRIPTS / "exits.py"], id="budget-abc"),
    pytest.param(lambda t: ["profile", "--max-steps", "0", SCRIPTS / "exits.py"],
                 id="max-steps-0"),
    pytest.param(lambda t: ["profile", "--fail-on", "nonsense", SCRIPTS / "exits.py"],
                 id="fail-on-nonsense"),
    pytest.param(lambda t: ["profile", "--out", _write(t / "file", "x") / "run",
                            SCRIPTS / "exits.py"], id="out-under-a-file"),
    pytest.param(lambda t: ["profile", "--out", t / "run", "-m", "no_such_module_zz"],
                 id="missing-module"),
    pytest.param(lambda t: ["profile", "--out", t / "run", "-m", "no_such_pkg_zz.sub"],
                 id="missing-package"),
    pytest.param(lambda t: ["profile"], id="no-script"),
    pytest.param(lambda t: ["frobnicate", "x"], id="unknown-command"),
    pytest.param(lambda t: ["report", t / "missing"], id="report-missing-dir"),
    pytest.param(lambda t: ["report", _write(t / "notadir", "x")], id="report-a-file"),
    pytest.param(lambda t: ["report", t, "--format", "xml"], id="report-bad-format"),
])
def test_bad_input(tmp_path, make_args):
    r = run_cli(make_args(tmp_path), cwd=tmp_path)
    assert_usage_error(r)
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "reports").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_module_whose_package_fails_to_import(tmp_path):
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    _write(pkg / "__init__.py", "raise RuntimeError('init fails')\n")
    _write(pkg / "mod.py", "print('never')\n")
    r = run_cli(["profile", "--out", tmp_path / "run", "-m", "brokenpkg.mod"], cwd=tmp_path)
    assert_usage_error(r)
    assert "RuntimeError: init fails" in r.stderr
    assert not (tmp_path / "run").exists()


def test_bad_input_as_python_m_nnprof(tmp_path):
    assert_usage_error(run_cli(["profile", "--budget", "abc", "x.py"], module=True))


def test_unwritable_out_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write into a read-only folder (root)")
        r = run_cli(["profile", "--out", locked / "run", SCRIPTS / "exits.py"])
        assert_usage_error(r)
        assert r.stdout == ""
    finally:
        locked.chmod(0o700)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    r = run_cli(["profile", "--out", out, "--quiet", *OURS, SCRIPTS / "exits.py", "--steps", "3"])
    assert r.returncode == 0, r.stderr
    return out


@slow
def test_out_at_existing_run_is_refused_untouched(tmp_path, finished_run):
    before = snapshot(finished_run)
    mtimes = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*")}
    r = run_cli(["profile", "--out", finished_run, SCRIPTS / "exits.py", "--steps", "3"])
    assert_usage_error(r)
    assert r.stdout == "", "the script must not run"
    assert snapshot(finished_run) == before
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*")} == mtimes


@slow
def test_report_of_finished_run(tmp_path, finished_run):
    r = run_cli(["report", finished_run])
    assert r.returncode == 0, r.stderr
    assert "completed" in r.stdout and r.stderr == ""
    r = run_cli(["report", finished_run, "--format", "json"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == read_summary(finished_run)


@slow
@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"\xff\xfe\x00garbage"],
                         ids=["torn", "empty", "not-an-object", "binary"])
def test_report_corrupt_meta(tmp_path, finished_run, content):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "meta.json").write_bytes(content)
    assert_usage_error(run_cli(["report", run]))


@slow
@pytest.mark.parametrize("content", [
    b"hello world\nthis is, not a steps file\n",
    b"\x00\x01\x02\xff\xfe\xfd" * 50,
    b'index,kind\n"unterminated\n',
], ids=["text", "binary", "bad-quote"])
def test_report_garbage_steps(tmp_path, finished_run, content):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()
    (run / "steps.csv").write_bytes(content)
    assert_usage_error(run_cli(["report", run]))


# -- 5. transparency ------------------------------------------------------------------

@slow
@pytest.mark.parametrize("args", [[], ["--loader"], ["--loader", "--exit", "4"]],
                         ids=["tensors", "dataloader", "dataloader-exit-4"])
def test_stdout_and_exit_code_are_unchanged(tmp_path, args):
    script = SCRIPTS / "seeded.py"
    plain = run_python([script, *args])
    prof = profile(tmp_path / "run", script, *args, quiet=False)
    assert "checksum" in plain.stdout
    assert prof.stdout == plain.stdout
    assert prof.returncode == plain.returncode
    assert "nnprof" not in prof.stdout
    # the report went to stderr, after whatever the script wrote there
    assert "status " in prof.stderr and "nnprof: run written to" in prof.stderr
    assert read_summary(tmp_path / "run")["steps"]["train"] == 24


# -- 4. python -m nnprof behaves as the console script --------------------------------

@slow
def test_python_m_nnprof_matches_console_script(tmp_path):
    script = SCRIPTS / "seeded.py"
    a = profile(tmp_path / "a", script, "--loader")
    b = profile(tmp_path / "b", script, "--loader", module=True)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout)
    sa, sb = read_summary(tmp_path / "a"), read_summary(tmp_path / "b")
    for key in ("status", "exit_code", "steps", "script", "argv", "budget_s"):
        assert sa[key] == sb[key], key


# -- 6. --fail-on ---------------------------------------------------------------------

SLEEPY = [SCRIPTS / "sleepy.py", "--fetch", "0.03", "--forward", "0.002", "--steps", "6"]


@slow
def test_fail_on_input_bound_exits_3(tmp_path):
    r = profile(tmp_path / "run", "--fail-on", "input-bound", *SLEEPY)
    assert r.returncode == 3, r.stderr
    assert "--fail-on" in r.stderr and "Traceback" not in r.stderr
    s = read_summary(tmp_path / "run")
    assert s["status"] == "completed" and s["exit_code"] == 0
    assert s["bottleneck"]["verdict"] == "input-bound"


@slow
def test_fail_on_other_condition_exits_0(tmp_path):
    r = profile(tmp_path / "run", "--fail-on", "optimizer-bound", *SLEEPY)
    assert r.returncode == 0, r.stderr
    assert read_summary(tmp_path / "run")["bottleneck"]["verdict"] == "input-bound"


@slow
def test_a_forked_child_neither_writes_rows_nor_finalises_the_run(tmp_path):
    """The child trains 5 steps of its own and exits normally: the run keeps only the
    parent's 6 steps, and the parent's summary is the one written."""
    out = tmp_path / "run"
    r = profile(out, SCRIPTS / "forks.py")
    assert r.returncode == 0, r.stderr
    assert "child done" in r.stdout and "parent done" in r.stdout
    s = read_summary(out)
    assert s["status"] == "completed" and s["steps"]["train"] == 6
    assert data_rows(out) == 6
    assert r.stderr.count("run written to") == 1
