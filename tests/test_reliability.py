"""Reliability: what a profiled run survives, end to end through the real CLI.

Signals to the whole process group with loader workers, kill -9 with workers,
loader workers that raise or die, the script's own hooks that raise, processes
the script forks or spawns, a script that changes directory or calls os._exit,
unwritable and full output directories, damaged run directories given to
``nnprof report`` and ``nnprof compare``, and the profiler's memory over a long
run. test_e2e_cli.py holds the single-process signal, kill -9 and bad-input
cases; these extend them. Scripts: tests/scripts/rel_*.py.

Where plain python is the reference, the script runs under python and under
nnprof at the same time (two processes), and what the user sees must match.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, read_summary, run_cli

slow = pytest.mark.slow
OWN = str(ROOT / "nnprof") + os.sep
STEPS = SCRIPTS / "rel_steps.py"
WORKERS = SCRIPTS / "rel_workers.py"
HOOKS = SCRIPTS / "rel_hooks.py"
FORKS = SCRIPTS / "rel_forks.py"
QUIET = ["--quiet", "--no-progress"]


# -- helpers ----------------------------------------------------------------------
def nnprof_exe() -> list:
    exe = Path(sys.executable).parent / "nnprof"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]


def child_env(**extra) -> dict:
    env = dict(os.environ, PYTHONHASHSEED="0", **extra)
    env.pop("PYTHONWARNINGS", None)
    return env


class Done:
    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr


def spawn(args, cwd, **kw) -> subprocess.Popen:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([str(a) for a in args], cwd=cwd, text=True, env=child_env(), **kw)


def spawn_to_files(args, folder: Path, **kw) -> subprocess.Popen:
    """A long run: its output goes to folder/stdout.txt and stderr.txt, not to pipes
    (that nobody reads while it runs, and that its loader workers hold open)."""
    with open(folder / "stdout.txt", "w") as fo, open(folder / "stderr.txt", "w") as fe:
        return spawn(args, ROOT, stdout=fo, stderr=fe, **kw)


def wait_files(proc: subprocess.Popen, folder: Path, timeout=60) -> Done:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args} did not end in {timeout} s")
    return Done(proc.args, proc.returncode, (folder / "stdout.txt").read_text(),
                (folder / "stderr.txt").read_text())


def finish(proc: subprocess.Popen, timeout=180) -> Done:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {timeout} s\n{err[-2000:]}")
    return Done(proc.args, proc.returncode, out, err)


def nnprof(args, cwd=ROOT, timeout=180, **kw) -> Done:
    return finish(spawn(nnprof_exe() + list(args), cwd, **kw), timeout)


def plain_and_profiled(script_args, out, cwd=ROOT, options=QUIET):
    """Run ``python SCRIPT ARGS`` and ``nnprof profile ... SCRIPT ARGS`` side by side."""
    a = spawn([sys.executable, *script_args], cwd)
    b = spawn(nnprof_exe() + ["profile", "--out", out, *options, *script_args], cwd)
    return finish(a), finish(b)


def data_rows(run_dir) -> int:
    """Complete data lines in steps.csv (a torn last line does not count)."""
    path = Path(run_dir) / "steps.csv"
    return max(path.read_bytes().count(b"\n") - 1, 0) if path.exists() else 0


def side_count(path) -> int:
    lines = Path(path).read_text().split() if Path(path).exists() else []
    return int(lines[-1]) if lines else 0


def tree_digest(folder) -> dict:
    """Every entry under ``folder``: a file's sha256 and mtime, or a folder's mark."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink() or not p.is_file():
            out[key] = "dir" if p.is_dir() else "other"
        else:
            out[key] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def script_view(stderr: str):
    """What a traceback says about the script: its own frames (file, line, function),
    in order, and the exception lines. Frames inside torch and the standard library
    are left out: which branch of the DataLoader re-raises a worker's error is a
    race, under python as under nnprof."""
    frames = [f for f in re.findall(r'File "([^"]+)", line (\d+), in (\S+)', stderr)
              if f[0].startswith(str(SCRIPTS))]
    errors = [re.sub(r"pid(\(s\))? \d+", "pid N", ln) for ln in stderr.splitlines()
              if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", ln)]
    return frames, errors


def without_run_line(stderr: str) -> str:
    """stderr without nnprof's closing lines ("nnprof: run written to ...", where
    the reports are)."""
    return "".join(ln for ln in stderr.splitlines(keepends=True)
                   if not ln.startswith("nnprof: "))


def assert_no_own_frames(stderr: str) -> None:
    """No frame of the nnprof package (wherever it is installed) and no exception of
    ours in what the script's user sees."""
    own = [ln for ln in stderr.splitlines()
           if re.search(r'File "[^"]*[/\\]nnprof[/\\][^"]*"', ln) or OWN in ln
           or "nnprof.runner" in ln]
    assert not own, "nnprof's own frames in the script's output:\n" + "\n".join(own)


def assert_one_line_error(r: Done) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnprof: error:"), r.stderr


def wait_for_rows(proc, out, n, timeout=90) -> None:
    deadline = time.monotonic() + timeout
    while data_rows(out) < n:
        if proc.poll() is not None:
            pytest.fail(f"the profiled process ended early ({proc.returncode})")
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {n} steps reached steps.csv in {timeout} s")
        time.sleep(0.05)


def descendants(pid: int) -> list:
    import psutil
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(procs, timeout=20.0) -> None:
    import psutil
    deadline = time.monotonic() + timeout
    alive = procs
    def running(p):
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    while time.monotonic() < deadline:
        alive = [p for p in procs if running(p)]
        if not alive:
            return
        time.sleep(0.1)
    for p in alive:  # ours to clean up, by pid
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    pytest.fail(f"processes left running: {[p.pid for p in alive]}")


@pytest.fixture
def group_cleanup():
    """Process groups started by a test are gone when it ends, whatever happened."""
    groups = []
    yield groups
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# -- 1. signals to the process group, with loader workers ----------------------------
@slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_signal_to_the_process_group_with_loader_workers(tmp_path, sig, code, group_cleanup):
    """Ctrl-C in a terminal signals the whole foreground group, the loader workers
    too. The run is finalised: status interrupted, the script's exit code, every step
    the script finished in steps.csv, and nothing of torch's complaint about dying
    workers nor a frame of ours on stderr; no worker is left behind."""
    out, side = tmp_path / "run", tmp_path / "side.txt"
    proc = spawn_to_files(nnprof_exe() + ["profile", "--out", out, *QUIET, WORKERS,
                                          "--epochs", "1000", "--sleep", "0.002", "--side",
                                          side], tmp_path, start_new_session=True)
    group_cleanup.append(proc.pid)
    wait_for_rows(proc, out, 20)
    kids = descendants(proc.pid)
    assert len(kids) >= 2, "the loader workers should be running"
    os.killpg(proc.pid, sig)
    r = wait_files(proc, tmp_path)
    assert r.returncode == code, r.stderr[-3000:]
    assert_no_own_frames(r.stderr)
    assert "killed by signal" not in r.stderr, r.stderr[-3000:]
    assert "nnprof: run written to" in r.stderr
    for name in ("meta.json", "steps.csv", "summary.json", "probe.json"):
        assert (out / name).exists(), name
    s = read_summary(out)
    assert (s["status"], s["exit_code"]) == ("interrupted", code)
    done = side_count(side)
    assert done >= 20
    assert abs(s["steps"]["train"] - done) <= 1, (s["steps"], done)
    assert data_rows(out) == s["steps"]["total"]
    assert_all_gone(kids)


@slow
def test_sigkill_with_loader_workers_keeps_the_flushed_steps(tmp_path, group_cleanup):
    """kill -9 of the profiled process: steps.csv holds every step up to the last
    flush (16 rows or 0.25 s), compared with the count the script itself wrote
    after each step; the workers exit on their own; the partial run renders as
    incomplete and rendering it changes nothing in the run directory."""
    out, side = tmp_path / "run", tmp_path / "side.txt"
    proc = spawn_to_files(nnprof_exe() + ["profile", "--out", out, *QUIET, WORKERS,
                                          "--epochs", "1000", "--sleep", "0.002", "--side",
                                          side], tmp_path, start_new_session=True)
    group_cleanup.append(proc.pid)
    wait_for_rows(proc, out, 40)
    kids = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    assert wait_files(proc, tmp_path).returncode == -signal.SIGKILL
    done, rows = side_count(side), data_rows(out)
    assert rows <= done, (rows, done)
    assert rows >= done - 18, f"lost {done - rows} steps (written {rows}, done {done})"
    assert not (out / "summary.json").exists()
    assert_all_gone(kids)

    before = tree_digest(out)
    r = nnprof(["report", out])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "incomplete" in r.stdout
    r = nnprof(["report", out, "--format", "json"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["status"], s["exit_code"]) == ("incomplete", None)
    assert s["steps"]["total"] == rows
    assert tree_digest(out) == before, "report must not write into the run"


@slow
def test_sigkill_on_slow_steps_loses_under_a_second(tmp_path, group_cleanup):
    """Rows reach the file every 0.25 s at the latest: with 80 ms steps, a kill -9
    loses the step in flight and at most 0.25 s of finished ones (4 steps), not 16."""
    out, side = tmp_path / "run", tmp_path / "side.txt"
    proc = spawn_to_files(nnprof_exe() + ["profile", "--out", out, *QUIET, STEPS,
                                          "--steps", "0", "--sleep", "0.08", "--side", side],
                          tmp_path, start_new_session=True)
    group_cleanup.append(proc.pid)
    wait_for_rows(proc, out, 12)
    time.sleep(0.37)  # between two flushes
    proc.send_signal(signal.SIGKILL)
    assert wait_files(proc, tmp_path).returncode == -signal.SIGKILL
    done, rows = side_count(side), data_rows(out)
    assert rows <= done, (rows, done)
    assert done - rows <= 5, f"lost {done - rows} steps of 80 ms (written {rows}, done {done})"


@slow
def test_os_exit_mid_run_keeps_what_was_flushed(tmp_path):
    """os._exit(9) after step 57 skips every finaliser: exit 9, stdout as under python,
    steps.csv keeps what was flushed, and the report renders the partial run."""
    out, side = tmp_path / "run", tmp_path / "side.txt"
    args = [STEPS, "--steps", "200", "--exit-at", "57", "--exit-code", "9"]
    a = spawn([sys.executable, *args, "--side", tmp_path / "plain.txt"], ROOT)
    b = spawn(nnprof_exe() + ["profile", "--out", out, *QUIET, *args, "--side", side], ROOT)
    plain, prof = finish(a), finish(b)
    assert plain.returncode == 9 and prof.returncode == 9, prof.stderr
    assert prof.stdout == plain.stdout
    assert "Traceback" not in prof.stderr
    assert side_count(side) == 57
    rows = data_rows(out)
    assert 57 - 17 <= rows <= 57, rows
    assert (out / "meta.json").exists() and not (out / "summary.json").exists()
    before = tree_digest(out)
    rep = nnprof(["report", out, "--format", "json"])
    assert rep.returncode == 0, rep.stderr
    s = json.loads(rep.stdout)
    assert (s["status"], s["steps"]["total"]) == ("incomplete", rows)
    rep = nnprof(["report", out])
    assert rep.returncode == 0 and "incomplete" in rep.stdout, rep.stderr
    assert tree_digest(out) == before


# -- 2. loader workers that fail ---------------------------------------------------
@slow
@pytest.mark.parametrize("fail", ["raise", "exit", "kill"])
def test_failing_loader_worker(tmp_path, fail):
    """A worker raising in __getitem__, calling os._exit(7), or killed: the script's
    own error, exit 1 as under python, the run written (crashed), no frame of ours.
    A raise is deterministic, so its whole stderr must match python's."""
    out = tmp_path / "run"
    plain, prof = plain_and_profiled([WORKERS, "--fail", fail], out)
    assert plain.returncode == 1, plain.stderr
    assert prof.returncode == 1, prof.stderr
    assert_no_own_frames(prof.stderr)
    if fail == "raise":
        assert prof.stdout == plain.stdout
        assert script_view(prof.stderr) == script_view(plain.stderr)
        assert "ValueError: bad sample 40" in prof.stderr
    else:
        # torch reports the death as a RuntimeError, or the connection to the dead
        # worker's fd sharer breaks first: reset (ConnectionResetError) or closed at the
        # handshake (EOFError). Which one is a race, with or without nnprof.
        frames, errors = script_view(prof.stderr)
        assert frames and frames[0][0] == str(WORKERS), prof.stderr[-2000:]
        assert any(re.search(r"DataLoader worker \(pid.*\) (exited unexpectedly|is killed"
                             r" by signal)|ConnectionResetError|EOFError", e)
                   for e in errors), errors
    s = read_summary(out)
    assert (s["status"], s["exit_code"]) == ("crashed", 1)
    printed = prof.stdout.count(" done\n")
    assert s["steps"]["train"] == printed
    assert data_rows(out) == s["steps"]["total"]


# -- 3. the script's own hooks raise --------------------------------------------------
@slow
@pytest.mark.parametrize("where,cut_step", [
    (["forward"], 0), (["optimizer"], 1), (["backward"], 1), (["collate"], 0),
    (["collate", "--workers", "2"], 0)],
    ids=["forward-hook", "optimizer-hook", "tensor-hook", "collate_fn", "collate_fn-in-worker"])
def test_the_scripts_own_hook_raises(tmp_path, where, cut_step):
    """The traceback is python's, frame for frame: nnprof's wrappers around
    Module.__call__, backward, the loader's __next__ and the fetcher are not in it
    (neither in the main process nor in the worker's traceback the DataLoader
    re-raises). The step cut short is a train step when its backward had begun."""
    out = tmp_path / "run"
    plain, prof = plain_and_profiled([HOOKS, "--where", *where], out)
    assert plain.returncode == 1 and "HookError" in plain.stderr, plain.stderr
    assert prof.returncode == 1
    assert prof.stdout == plain.stdout
    assert_no_own_frames(prof.stderr)
    frames, errors = script_view(prof.stderr)
    assert (frames, errors) == script_view(plain.stderr)
    assert any(f[2] == "maybe_raise" for f in frames), prof.stderr[-2000:]
    s = read_summary(out)
    assert (s["status"], s["exit_code"]) == ("crashed", 1)
    assert s["steps"]["train"] == plain.stdout.count(" done\n") + cut_step
    assert data_rows(out) == s["steps"]["total"]


# -- 4. processes the script starts ---------------------------------------------------
@slow
@pytest.mark.parametrize("how", ["fork-crash", "fork-exit", "mp-fork", "mp-spawn"])
def test_processes_the_script_starts(tmp_path, how):
    """A child that crashes (its own traceback, exit 1), one that calls os._exit, a
    fork Process and a fork Pool (terminated with SIGTERM at its end), a spawn
    Process: output as under python, one summary. A bare os.fork() is not followed (the
    parent's 10 steps only); a multiprocessing child that trains is (its own run: the
    Process's 4 steps, the Pool's 2 + 3 + 4 over its two workers, finished when the
    Pool terminates them), and the parent's 10 steps are a run beside theirs."""
    out = tmp_path / "run"
    plain, prof = plain_and_profiled([FORKS, "--how", how], out)
    assert plain.returncode == 0, plain.stderr
    assert prof.returncode == 0, prof.stderr
    assert prof.stdout == plain.stdout
    assert_no_own_frames(prof.stderr)
    assert without_run_line(prof.stderr) == plain.stderr
    assert prof.stderr.count("nnprof: run written to") == 1
    if how == "fork-crash":
        assert "child exit 1" in prof.stdout and "child fails on purpose" in prof.stderr
    s = read_summary(out)
    if how.startswith("fork-"):
        assert (s["status"], s["steps"]["train"]) == ("completed", 10)
        assert data_rows(out) == 10
        return
    children = {"mp-fork": 4 + 2 + 3 + 4, "mp-spawn": 4}[how]
    assert (s["status"], s["exit_code"]) == ("completed", 0)
    assert data_rows(out) == s["steps"]["total"]
    # every optimizer step of every process (a Pool worker's tasks each build a new
    # model and optimizer, whose first steps the step rule may join: count the updates)
    with open(out / "steps.csv") as fh:
        updates = sum(int(r["n_optimizer"]) for r in csv.DictReader(fh))
    assert updates == 10 + children
    main = [x for x in s["processes"]["trained"] if x["kind"] == "main"]
    assert main[0]["steps"]["train"] == 10
    child = [x for x in s["processes"]["trained"] if x["kind"] in ("fork", "spawn")
             and x["steps"]["train"] == 4]
    assert child, s["processes"]["trained"]


# -- 5. a script that changes directory ------------------------------------------------
@slow
def test_script_that_changes_directory(tmp_path):
    """The default run directory and a relative --out are resolved against the
    directory nnprof was started in; the script's own relative paths follow its chdir."""
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    args = [STEPS, "--steps", "8", "--chdir", elsewhere, "--chdir-at", "3"]
    r = nnprof(["profile", *QUIET, *args], cwd=start)
    assert r.returncode == 0, r.stderr
    runs = list((start / "reports").glob("rel_steps-*"))
    assert len(runs) == 1, list(start.rglob("*"))
    assert read_summary(runs[0])["steps"]["train"] == 8
    assert (elsewhere / "cwd.txt").read_text() == str(elsewhere)
    assert not (elsewhere / "reports").exists()

    r = nnprof(["profile", "--out", "rel_out", *QUIET, *args], cwd=start)
    assert r.returncode == 0, r.stderr
    assert read_summary(start / "rel_out")["steps"]["train"] == 8
    assert not (elsewhere / "rel_out").exists()


@slow
def test_printed_run_path_is_relative_to_where_nnprof_started(tmp_path):
    start = tmp_path / "a"
    start.mkdir()
    r = nnprof(["profile", *QUIET, STEPS, "--steps", "4", "--chdir", tmp_path], cwd=start)
    assert r.returncode == 0, r.stderr
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("nnprof: run written to ")]
    assert len(said) == 1, r.stderr
    shown = said[0].split("nnprof: run written to ", 1)[1]
    assert (start / shown / "summary.json").is_file(), shown


# -- 6. output directories that cannot be written ----------------------------------------
def _mount_tmpfs(path: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, timeout=30)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def small_fs(tmp_path):
    """``make(options)`` mounts a tmpfs (needs root and CAP_SYS_ADMIN; skips without)."""
    mounted = []

    def make(options: str, name="fs") -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, options):
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        mounted.append(path)
        return path
    yield make
    for path in mounted:
        _umount(path)


@slow
@pytest.mark.parametrize("where", ["mountpoint", "below"])
def test_read_only_output_directory(small_fs, where):
    """chmod does not stop root; a read-only mount does. One line, exit 2, and the
    script never ran."""
    fs = small_fs("ro,size=64k")
    out = fs if where == "mountpoint" else fs / "run"
    r = nnprof(["profile", "--out", out, STEPS, "--steps", "3"])
    assert_one_line_error(r)
    assert r.stdout == ""
    assert "read-only" in r.stderr.lower()


@pytest.mark.parametrize("out", ["/proc/nnprof-rel-test/run", "/proc/self/status/run",
                                 "/dev/null/run", "/sys/nnprof-rel-test"],
                         ids=["proc", "proc-file", "dev-null", "sys"])
def test_output_path_that_cannot_exist(out, tmp_path, monkeypatch):
    """Paths that even root cannot create (in-process: validation stops before any
    script runs; the real CLI for one of them)."""
    monkeypatch.chdir(tmp_path)
    r = _in_process(["profile", "--out", out, STEPS, "--steps", "3"])
    assert_one_line_error(r)
    assert r.stdout == "" and list(tmp_path.iterdir()) == []


@slow
def test_output_path_that_cannot_exist_real_cli():
    r = nnprof(["profile", "--out", "/proc/nnprof-rel-test/run", STEPS, "--steps", "3"])
    assert_one_line_error(r)
    assert r.stdout == ""


@slow
def test_full_output_directory_at_start(small_fs):
    fs = small_fs("size=64k")
    with open(fs / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * (1 << 20))
        except OSError:
            pass
    r = nnprof(["profile", "--out", fs / "run", STEPS, "--steps", "3"])
    assert_one_line_error(r)
    assert r.stdout == ""
    assert "No space left" in r.stderr


def _fsize_limit(limit: int):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return pre


@slow
def test_output_file_limit_reached_mid_run(tmp_path):
    """RLIMIT_FSIZE (works unprivileged): steps.csv stops growing at 64 KiB mid-run.
    The script finishes with its own exit code and output, the notice says what was
    lost, the rest of the run is written."""
    out = tmp_path / "run"
    args = [STEPS, "--steps", "3000", "--print-every", "500", "--code", "4"]
    a = spawn([sys.executable, *args], ROOT)
    b = spawn(nnprof_exe() + ["profile", "--out", out, "--no-progress", *args], ROOT,
              preexec_fn=_fsize_limit(65536))
    plain, r = finish(a), finish(b)
    assert r.returncode == 4, r.stderr[-3000:]
    assert r.stdout == plain.stdout
    assert "Traceback" not in r.stderr
    assert re.search(r"note: cannot write steps\.csv: File too large", r.stderr), r.stderr[-2000:]
    s = read_summary(out)
    assert (s["status"], s["exit_code"]) == ("crashed", 4)
    assert any("steps.csv" in n for n in s["notices"])
    rows = data_rows(out)
    assert 100 < rows < 3000
    assert (out / "steps.csv").stat().st_size <= 65536
    assert s["steps"]["total"] == rows


@slow
def test_output_disk_fills_mid_run(small_fs):
    """A disk that fills mid-run (validation passes write metrics.jsonl then too):
    the script runs to its end with its own exit code and output; notices name what
    was lost; what was written stays readable."""
    fs = small_fs("size=96k")
    out = fs / "run"
    args = [STEPS, "--steps", "4000", "--print-every", "1000", "--val-every", "10",
            "--code", "4"]
    a = spawn([sys.executable, *args], ROOT)
    b = spawn(nnprof_exe() + ["profile", "--out", out, "--no-progress", *args], ROOT)
    plain, r = finish(a), finish(b)
    assert r.returncode == 4, r.stderr[-3000:]
    assert r.stdout == plain.stdout
    assert "Traceback" not in r.stderr
    assert "No space left on device" in r.stderr
    rep = nnprof(["report", out, "--format", "json"])
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["steps"]["total"] == data_rows(out) > 0


# -- 7. damaged run directories ------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real finished run with a DataLoader, an eval pass and metrics.jsonl."""
    base = tmp_path_factory.mktemp("rel_finished")
    out = base / "run"
    r = nnprof(["profile", "--out", out, *QUIET, SCRIPTS / "rel_transparent.py",
                "--workers", "0", "--epochs", "1", "--save-dir", base])
    assert r.returncode == 0, r.stderr
    return out


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _trunc(name, n):
    return lambda run: _write(run / name, (run / name).read_bytes()[:n])


def _as_dir(name):
    def damage(run):
        (run / name).unlink()
        (run / name).mkdir()
    return damage


def _no_summary(damage):
    def both(run):
        (run / "summary.json").unlink()
        damage(run)
    return both


def _clear(run):
    for p in list(run.iterdir()):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


DAMAGE = {
    "empty-dir": _clear,
    "meta-garbage": lambda run: _write(run / "meta.json", b"\x00\xffnot json"),
    "meta-missing": lambda run: (run / "meta.json").unlink(),
    "meta-a-list": lambda run: _write(run / "meta.json", b"[1, 2, 3]\n"),
    "meta-a-dir": _as_dir("meta.json"),
    "summary-truncated": _trunc("summary.json", 200),
    "summary-empty": _trunc("summary.json", 0),
    "summary-a-list": lambda run: _write(run / "summary.json", b"[]\n"),
    "summary-null": lambda run: _write(run / "summary.json", b"null\n"),
    "summary-empty-object": lambda run: _write(run / "summary.json", b"{}\n"),
    "summary-binary": lambda run: _write(run / "summary.json", os.urandom(300)),
    "summary-a-dir": _as_dir("summary.json"),
    "steps-garbage": _no_summary(lambda run: _write(run / "steps.csv",
                                                    b"hello\nworld, of, csv\n")),
    "steps-binary": _no_summary(lambda run: _write(run / "steps.csv", os.urandom(2000))),
    "steps-header-only-torn": _no_summary(_trunc("steps.csv", 20)),
    "steps-a-dir": _no_summary(_as_dir("steps.csv")),
}


def _damaged(finished_run, tmp_path, name) -> Path:
    run = tmp_path / name
    shutil.copytree(finished_run, run)
    DAMAGE[name](run)
    return run


def _in_process(argv) -> Done:
    """``nnprof.cli.main(argv)`` here, with its output captured (fast, for matrices)."""
    import contextlib
    import io

    from nnprof import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return Done(argv, code, out.getvalue(), err.getvalue())


def _has_compare() -> bool:
    from nnprof import cli
    return "compare" in getattr(cli, "COMMANDS", {})


needs_compare = pytest.mark.skipif(not _has_compare(), reason="nnprof compare not built yet")


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_report_on_a_damaged_run_directory(finished_run, tmp_path, name):
    """One line, exit 2, no traceback, and no file in the directory touched (each
    output format; in-process for speed, the real CLI for a few below)."""
    run = _damaged(finished_run, tmp_path, name)
    before = tree_digest(run)
    for fmt in ("terminal", "json", "html"):
        r = _in_process(["report", run, "--format", fmt])
        assert_one_line_error(r)
        assert r.stdout == ""
    assert tree_digest(run) == before


@needs_compare
@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_compare_with_a_damaged_run_directory(finished_run, tmp_path, name):
    run = _damaged(finished_run, tmp_path, name)
    before, good = tree_digest(run), tree_digest(finished_run)
    for argv in (["compare", finished_run, run], ["compare", run, finished_run],
                 ["compare", run, run, "--format", "json"]):
        r = _in_process(argv)
        assert_one_line_error(r)
        assert r.stdout == ""
    assert tree_digest(run) == before
    assert tree_digest(finished_run) == good


@slow
@pytest.mark.parametrize("name", ["summary-a-list", "steps-binary"])
def test_report_on_a_damaged_run_directory_real_cli(finished_run, tmp_path, name):
    run = _damaged(finished_run, tmp_path, name)
    before = tree_digest(run)
    assert_one_line_error(nnprof(["report", run]))
    if _has_compare():
        assert_one_line_error(nnprof(["compare", finished_run, run]))
    assert tree_digest(run) == before


@slow
def test_report_and_compare_on_paths_that_are_not_run_directories(finished_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for bad in (afile, dangling, tmp_path / "missing"):
        assert_one_line_error(_in_process(["report", bad]))
        if _has_compare():
            assert_one_line_error(_in_process(["compare", finished_run, bad]))
            assert_one_line_error(_in_process(["compare", bad, finished_run]))
    if _has_compare():
        assert_one_line_error(nnprof(["compare", finished_run, afile]))


# -- 8. long runs: the profiler's memory stays flat -----------------------------------------
def _rss(stdout: str) -> dict:
    return {m[0]: int(m[1]) for m in re.findall(r"^rss (\S+) (\d+)$", stdout, re.M)}


@slow
def test_memory_stays_flat_over_a_long_run(tmp_path):
    """30,000 free steps (~0.2 ms each): the process's resident memory between step
    10,000 and the end grows by less than 4 MiB, under 150 bytes a step (an unbounded
    per-step record would cost ~1 KiB a step). benchmarks/scale.py runs 100k steps."""
    out = tmp_path / "run"
    n = 30_000
    r = nnprof(["profile", "--out", out, *QUIET, STEPS, "--steps", n, "--print-every",
                "10000", "--rss-at", "2000,10000,20000"], timeout=120)
    assert r.returncode == 0, r.stderr
    rss = _rss(r.stdout)
    growth = rss["end"] - rss["10000"]
    assert growth < 4 * 2**20, (f"RSS grew {growth / 2**20:.2f} MiB over {n - 10000} steps",
                                rss)
    assert data_rows(out) == n
    assert read_summary(out)["steps"]["train"] == n


@slow
def test_sigterm_inside_a_finalizer_still_ends_the_run(tmp_path):
    """An exception raised in ``__del__`` is printed and dropped by Python: a SIGTERM
    that lands there (a DataLoader iterator shutting its workers down when collected) is
    taken up once the finalizer is over, so the script ends as under python."""
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet",
                 SCRIPTS / "term_in_del.py"], timeout=60)
    assert r.returncode == 143, r.stderr[-2000:]
    assert "not reached" not in r.stdout
    assert "Exception ignored" not in r.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
