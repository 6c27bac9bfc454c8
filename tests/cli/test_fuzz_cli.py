"""Command-line fuzzing (hypothesis) of ``profile``, ``check``, ``report``, ``compare``.

Property: never a traceback of ours; the exit code is in the documented set (0, 2
for bad input, 3 for a --fail-on condition or a failed rung); an exit 2 comes with
exactly one line, ``nnprof: error: ...``, on stderr.

Nothing here can start a training run or write outside a temporary folder:
* in-process, ``nnprof.cli.main(argv)`` runs with the script runner replaced by a
  stub (``profile``: the whole profiler starts and stops around a script that
  "ran" instantly; ``check``: ``run_check`` is stubbed), with the working directory
  a fresh temporary folder;
* through a subprocess (a small sample), only argument lists whose script cannot
  pass validation are sent, as decided by the CLI's own splitter;
* generated tokens hold no ``/``, ``..``, ``~`` or NUL, so every path is relative
  to the temporary folder, and ``-m`` only ever names ``zz_fuzz_*`` modules (a
  dotted module name imports its parent package while being looked up).

Inputs that once ended in a traceback are pinned by the tests at the end.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from nnprof import cli
from nnprof.cli import check as check_cmd, profile as profile_cmd
from nnprof.cli.args import UsageError, split_profile_args

HERE = Path(__file__).resolve().parent
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.filter_too_much])
EXIT_CODES = {0, 2, 3}


# -- the vocabulary ---------------------------------------------------------------------
def _options(parser):
    """(flags, options that take a value) of an argparse parser."""
    flags, valued = [], []
    for action in parser._actions:
        for opt in action.option_strings:
            (valued if action.nargs != 0 else flags).append(opt)
    return flags, valued


PROFILE_FLAGS, PROFILE_VALUED = _options(profile_cmd._profile_parser())
CHECK_FLAGS, CHECK_VALUED = _options(check_cmd._check_parser())

SAFE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/\\~")
SAFE_TEXT = st.text(SAFE_CHARS, max_size=8).filter(
    lambda t: ".." not in t and not (t.startswith("-m") and not t.startswith("--")))
NUMBERS = st.sampled_from(["0", "-1", "1", "2", "0.5", "1e-3", "1e9", "1e300", "1e-300",
                           "nan", "inf", "-inf", "", " ", "1_000", "0x10", "\u0661", "3.",
                           ".5", "+7", "1e", "12345678901234567890"])
WORDS = st.sampled_from(["budget", "input-bound", "crashed,wiring", ",", "input-bound,,",
                         "1,5,20", "5,1", "0,1", "1,,2", "terminal", "json", "html", "xml",
                         "tensorboard", "-", "out", "run", "ok.py", "x y", "é", "--"])
VALUES = st.one_of(NUMBERS, WORDS, SAFE_TEXT,
                   st.integers(-10**25, 10**25).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr))
ODD_OPTIONS = st.sampled_from(["--", "-", "-h", "--help", "--bud", "--max", "--o",
                               "--out=", "--out=x_out", "--budget=2", "--budget=", "-q",
                               "--zz-unknown", "---", "--quiet=1"])
SCRIPTS_PART = st.sampled_from([["ok.py"], ["missing.py"], ["bad.py"], ["adir"],
                                ["-m", "zz_fuzz_nomod"], ["-mzz_fuzz_nomod"], ["-m"], ["--"],
                                ["--", "ok.py"], []])


def _command_argv(command, flags, valued):
    option = st.one_of(
        st.sampled_from(flags).map(lambda f: [f]),
        st.tuples(st.sampled_from(valued), VALUES).map(list),
        st.sampled_from(valued).map(lambda f: [f]),
        ODD_OPTIONS.map(lambda f: [f]),
        VALUES.map(lambda v: [v]))
    return st.tuples(st.lists(option, max_size=5), SCRIPTS_PART,
                     st.lists(VALUES, max_size=3)).map(
        lambda t: [command] + [tok for opt in t[0] for tok in opt] + t[1] + t[2])


def _sane_value(option):
    """Values a user would plausibly type for ``option`` (so that most examples pass
    parsing and reach the profiler)."""
    from nnprof.summary import FAIL_CONDITIONS
    seconds = st.one_of(st.sampled_from(["0.5", "1", "2", "1e-3", "60"]),
                        st.floats(1e-4, 1e5).map(repr))
    known = {
        "--budget": seconds, "--max-time": seconds,
        "--sample-hz": st.one_of(st.sampled_from(["1", "10", "100", "1000"]),
                                 st.floats(1e-3, 1e4).map(repr)),
        "--fail-on": st.lists(st.sampled_from(FAIL_CONDITIONS), min_size=1,
                              max_size=3).map(",".join),
        "--out": st.sampled_from(["out1", "out2", "nested/out", "good", "afile", "adir",
                                  "empty", "ok.py"]),
        "--examples": st.lists(st.integers(1, 50), min_size=1, max_size=4).map(
            lambda xs: ",".join(map(str, xs))),
        "--ratio": st.floats(1e-3, 0.999).map(repr),
    }
    return known.get(option, st.integers(1, 10**6).map(str))


def _sane_argv(command, flags, valued):
    option = st.one_of(st.sampled_from(flags).filter(lambda f: f not in ("-h", "--help"))
                       .map(lambda f: [f]),
                       st.sampled_from(valued).flatmap(
                           lambda o: _sane_value(o).map(lambda v: [o, v])))
    return st.tuples(st.lists(option, max_size=5),
                     st.sampled_from([["ok.py"], ["ok.py", "--lr", "0.1"], ["--", "ok.py"]])
                     ).map(lambda t: [command] + [tok for o in t[0] for tok in o] + t[1])


PROFILE_ARGV = st.one_of(_command_argv("profile", PROFILE_FLAGS, PROFILE_VALUED),
                         _sane_argv("profile", PROFILE_FLAGS, PROFILE_VALUED))
CHECK_ARGV = st.one_of(_command_argv("check", CHECK_FLAGS, CHECK_VALUED),
                       _sane_argv("check", CHECK_FLAGS, CHECK_VALUED))
RUN_DIRS = st.one_of(st.just("good"), st.sampled_from(
    ["good", "damaged", "empty", "missing", "afile", "", ".", "good/steps.csv", "adir"]))
REPORT_OPTS = st.lists(st.one_of(
    st.tuples(st.just("--format"), st.one_of(
        st.sampled_from(["terminal", "json", "html"]), st.sampled_from(["json", "html"]),
        WORDS, SAFE_TEXT)).map(list),
    st.tuples(st.sampled_from(["-o", "--output"]),
              st.sampled_from(["-", "r.html", "r.json", "adir", "afile/x", "", " "])).map(list),
    ODD_OPTIONS.map(lambda f: [f])), max_size=3).map(
    lambda opts: [tok for opt in opts for tok in opt])
REPORT_ARGV = st.one_of(
    st.tuples(st.just(["report"]), RUN_DIRS.map(lambda d: [d]), REPORT_OPTS),
    st.tuples(st.just(["compare"]), st.tuples(RUN_DIRS, RUN_DIRS).map(list), REPORT_OPTS),
    st.tuples(st.sampled_from([["report"], ["compare"]]), st.just([]), REPORT_OPTS),
).map(lambda t: t[0] + t[1] + t[2])


def safe_to_launch(argv, cwd, script_runs=True) -> bool:
    """True if no training could start: a module is never a real one, and (when the
    script would really run) the script cannot pass validation."""
    if argv[:1] not in (["profile"], ["check"]):
        return True
    value_options = profile_cmd._VALUE_OPTIONS if argv[0] == "profile" else check_cmd._CHECK_VALUE_OPTIONS
    try:
        _, script, module, _ = split_profile_args(argv[1:], value_options)
    except UsageError:
        return True
    if module is not None:
        return module.startswith("zz_fuzz")
    if script is None or not script_runs:
        return True
    return script in ("missing.py", "bad.py", "adir") or not os.path.exists(
        os.path.join(cwd, script)) or os.path.isdir(os.path.join(cwd, script))


# -- the workspace ------------------------------------------------------------------------
def _tiny_training(out: Path) -> None:
    """A real run directory, written in-process by the Python API (no subprocess)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    import nnprof
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ds = TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))
    with nnprof.profile(out=str(out), progress=False, monitors=[]):
        for _ in range(2):
            for x, y in DataLoader(ds, batch_size=8):
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                for x, y in DataLoader(ds, batch_size=16):
                    F.cross_entropy(model(x), y)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A folder to copy per example: good/ (a finished run), damaged/ (a run whose
    summary.json is cut), empty/, afile, adir/, ok.py, bad.py."""
    base = tmp_path_factory.mktemp("rel_fuzz")
    _tiny_training(base / "good")
    shutil.copytree(base / "good", base / "damaged")
    data = (base / "damaged" / "summary.json").read_bytes()
    (base / "damaged" / "summary.json").write_bytes(data[:len(data) // 2])
    (base / "empty").mkdir()
    (base / "adir").mkdir()
    (base / "afile").write_text("not a run\n")
    (base / "ok.py").write_text("print('the fuzzed CLI must never run me')\n")
    (base / "bad.py").write_text("def f(:\n")
    return base


@contextlib.contextmanager
def workspace(template):
    """A fresh copy of the template as the working directory."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="rel_fuzz_") as tmp:
        ws = Path(tmp) / "ws"
        shutil.copytree(template, ws, symlinks=True)
        os.chdir(ws)
        try:
            yield ws
        finally:
            os.chdir(old)


def call(argv):
    """``cli.main(argv)`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved_hook = threading.excepthook

    def thread_died(args):  # a thread of ours that dies would print a traceback
        err.write(f"Traceback (thread {args.thread.name if args.thread else '?'}): "
                  f"{args.exc_type.__name__}: {args.exc_value}\n")
    threading.excepthook = thread_died
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(argv))
            except SystemExit as exc:  # argparse's own --help in report/compare
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        threading.excepthook = saved_hook
    return code, out.getvalue(), err.getvalue()


def check_outcome(argv, code, stdout, stderr):
    assert "Traceback" not in stdout + stderr, (argv, stderr)
    assert code in EXIT_CODES, (argv, code, stderr)
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnprof: error: "), (argv, stderr)
        assert len(lines[0]) < 500, (argv, lines[0])


class Reached(Exception):
    """The stubbed part of the CLI was reached: the arguments were accepted."""


@pytest.fixture
def stub_check(monkeypatch):
    import nnprof.check

    def run_check(target, settings, out):
        raise Reached("check")
    monkeypatch.setattr(nnprof.check, "run_check", run_check)


@pytest.fixture
def stub_runner(monkeypatch):
    """The script 'runs' instantly: the profiler itself starts and stops for real. A
    distributed launch (torchrun options) is accepted when it is reached: it would start
    real processes."""
    import nnprof.cli.ranks
    from nnprof import runner
    monkeypatch.setattr(runner, "run", lambda target: runner.Outcome("completed", 0))

    def launch_profile(opts, ours, target):
        raise Reached("launch")
    monkeypatch.setattr(nnprof.cli.ranks, "launch_profile", launch_profile)


def _run_in_workspace(template, argv):
    with workspace(template) as ws:
        assume(safe_to_launch(argv, str(ws), script_runs=False))  # -m imports while finding
        try:
            code, out, err = call(argv)
        except Reached:
            event("accepted (check would run)")
            return
        event(f"exit {code}" + (" (ran the profiler)" if "run written to" in err else ""))
        check_outcome(argv, code, out, err)
        # nothing was written outside the workspace: it is the cwd, and no token
        # can leave it


# -- in-process fuzzing -------------------------------------------------------------------
@pytest.mark.slow
@settings(FUZZ, max_examples=60)
@given(argv=PROFILE_ARGV)
@example(argv=["profile", "--budget", "nan", "ok.py"])
@example(argv=["profile", "--fail-on", ",", "ok.py"])
@example(argv=["profile", "--out", "afile", "ok.py"])
@example(argv=["profile", "--max-steps", "12345678901234567890", "--sample-hz", "1e9",
               "ok.py"])
def test_fuzz_profile_in_process(template, stub_runner, argv):
    assume("--pyspy" not in argv)  # would attach py-spy to this very process
    _run_in_workspace(template, argv)


@settings(FUZZ, max_examples=80)
@given(argv=CHECK_ARGV)
@example(argv=["check", "--examples", "0,1", "ok.py"])
@example(argv=["check", "--ratio", "1", "ok.py"])
def test_fuzz_check_in_process(template, stub_check, argv):
    _run_in_workspace(template, argv)


@settings(FUZZ, max_examples=80)
@given(argv=REPORT_ARGV)
@example(argv=["report", "damaged", "--format", "html", "-o", "-"])
@example(argv=["compare", "good", "damaged"])
@example(argv=["report", "good", "-o", "afile/x"])
def test_fuzz_report_and_compare_in_process(template, argv):
    if argv[0] == "compare" and "compare" not in cli.COMMANDS:
        pytest.skip("nnprof compare not built yet")
    _run_in_workspace(template, argv)


# -- damaged run directories, at random --------------------------------------------------
DAMAGE_FILES = ["meta.json", "steps.csv", "summary.json", "probe.json", "loaders.jsonl",
                "metrics.jsonl", "samples.csv"]


@st.composite
def damage(draw):
    name = draw(st.sampled_from(DAMAGE_FILES))
    how = draw(st.sampled_from(["truncate", "bytes", "flip", "delete", "append", "dir"]))
    return name, how, draw(st.integers(0, 10**6)), draw(st.binary(min_size=1, max_size=64))


def _apply(run: Path, name, how, n, blob) -> None:
    path = run / name
    if path.is_dir():
        return
    data = path.read_bytes() if path.is_file() else b""
    if how == "truncate":
        path.write_bytes(data[:n % (len(data) + 1)])
    elif how == "bytes":
        path.write_bytes(blob)
    elif how == "flip" and data:
        i = n % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ blob[0] or 1]) + data[i + 1:])
    elif how == "delete" and path.exists():
        path.unlink()
    elif how == "append":
        path.write_bytes(data + blob)
    elif how == "dir" and path.is_file():
        path.unlink()
        path.mkdir()


@settings(FUZZ, max_examples=60)
@given(damages=st.lists(damage(), min_size=1, max_size=3),
       fmt=st.sampled_from(["terminal", "json", "html"]),
       keep_summary=st.booleans())
def test_fuzz_damaged_run_directory(template, damages, fmt, keep_summary):
    """A run directory damaged at random (cut, overwritten, bytes flipped, a file
    deleted or made a folder): the report renders (exit 0) or says why not in one
    line (exit 2), and no file of the run changes."""
    from test_reliability import tree_digest
    with workspace(template) as ws:
        run = ws / "good"
        if not keep_summary:
            (run / "summary.json").unlink()
        for d in damages:
            _apply(run, *d)
        before = tree_digest(run)
        argvs = [["report", "good", "--format", fmt, "-o", "-"]]
        if "compare" in cli.COMMANDS:
            argvs.append(["compare", "good", "damaged" if keep_summary else "good"])
        for argv in argvs:
            code, out, err = call(argv)
            check_outcome(argv, code, out, err)
            assert code in (0, 2), (argv, code, err)
            if code == 0:
                assert out, argv
        assert tree_digest(run) == before


# -- the real CLI, a small sample --------------------------------------------------------
def _nnprof():
    exe = Path(sys.executable).parent / "nnprof"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nnprof"]


@pytest.mark.slow
@settings(FUZZ, max_examples=8)
@given(argv=st.one_of(PROFILE_ARGV, CHECK_ARGV, REPORT_ARGV))
@example(argv=["profile", "--budget", "x", "ok.py"])
def test_fuzz_real_cli_sample(template, argv):
    with workspace(template) as ws:
        assume(safe_to_launch(argv, str(ws)))
        env = dict(os.environ, PYTHONHASHSEED="0")
        r = subprocess.run(_nnprof() + argv, cwd=ws, capture_output=True, text=True,
                           timeout=120, env=env)
        check_outcome(argv, r.returncode, r.stdout, r.stderr)
        assert "the fuzzed CLI must never run me" not in r.stdout


# -- inputs that once ended in a traceback ----------------------------------------------
@pytest.mark.parametrize("argv", [["profile", "--budget", "1e300", "ok.py"],
                                  ["profile", "--max-time", "1e300", "ok.py"]],
                         ids=["budget", "max-time"])
def test_huge_seconds_are_a_usage_error(template, stub_runner, argv):
    with workspace(template):
        code, out, err = call(argv)
        check_outcome(argv, code, out, err)


def test_tiny_sample_rate_is_a_usage_error_or_harmless(template, stub_runner):
    argv = ["profile", "--sample-hz", "1e-300", "--quiet", "ok.py"]
    with workspace(template):
        code, out, err = call(argv)
        check_outcome(argv, code, out, err)
