"""Command line: ``nnprof profile|check|report|compare`` (report and compare live in
:mod:`nnprof.reportcli`, what the commands share in :mod:`nnprof.cliargs`).

Exit codes: the script's own code (0, n from ``sys.exit(n)``, 1 for an
uncaught exception, 130 for Ctrl-C, 143 for SIGTERM); 2 for bad input; 3 when
a ``--fail-on`` condition holds (after everything was written), or when a
rung of ``nnprof check`` failed.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from . import __version__
from .cliargs import (EXIT_BAD_INPUT, EXIT_CONDITION, UsageError, _conditions,  # noqa: F401
                      _nnodes, _non_negative_int, _nproc, _port, _Parser, _positive_float,
                      _positive_int, _rate, _seconds, _shown, _stderr_is_tty, _width,
                      _write_err)
from .reportcli import cmd_compare, cmd_report


def _profile_parser() -> _Parser:
    p = _Parser(prog="nnprof profile", add_help=True,
                description="Run a training script unmodified and profile its steps.",
                usage="nnprof profile [options] (script.py | -m module) [script args...]")
    p.add_argument("--budget", type=_seconds, default=1.0, metavar="S",
                   help="wall time one step may take, in seconds (default 1.0)")
    p.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="stop cleanly after N train steps")
    p.add_argument("--max-time", type=_seconds, metavar="S",
                   help="stop cleanly at the first step boundary after S seconds")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default reports/<script>-<timestamp>/)")
    p.add_argument("--fail-on", type=_conditions, default=[], metavar="LIST",
                   help="exit 3 when any holds: budget, input-bound, compute-bound, "
                        "optimizer-bound, host-overhead-bound, crashed, wiring")
    p.add_argument("--sample-hz", type=_rate, default=10.0, metavar="HZ",
                   help="host and GPU sampling rate (default 10 per second)")
    p.add_argument("--no-monitors", action="store_true",
                   help="no host or GPU sampling")
    p.add_argument("--pyspy", action="store_true",
                   help="record the script and its loader workers with py-spy")
    p.add_argument("--pyspy-rate", type=_positive_int, default=100, metavar="HZ",
                   help="py-spy samples per second (default 100)")
    p.add_argument("--trace", action="store_true",
                   help="record a few steps with torch.profiler (a typical window after "
                        "warm-up, and a window on recurring slow steps) for TensorBoard's "
                        "PyTorch Profiler plugin")
    p.add_argument("--trace-steps", type=_positive_int, default=3, metavar="N",
                   help="steps per --trace window (default 3)")
    p.add_argument("--trace-warmup", type=_positive_int, default=5, metavar="N",
                   help="train steps to let pass before the first --trace window (default 5)")
    p.add_argument("--memory-trace", action="store_true",
                   help="CUDA: record a few train steps' allocations with their stack traces "
                        "(memory_snapshot.pickle for PyTorch's memory viewer) and name the top "
                        "allocation sites")
    p.add_argument("--no-progress", action="store_true", help="no live progress line")
    p.add_argument("--quiet", action="store_true", help="no terminal report")
    p.add_argument("--no-follow", action="store_true",
                   help="profile this process only, not the Python processes the script "
                        "starts (ranks, mp.spawn, Hogwild workers, subprocesses)")
    d = p.add_argument_group("distributed: nnprof starts torchrun with these, one run per "
                             "rank in RUN/rank-<R>/, merged at RUN/")
    d.add_argument("--nproc-per-node", metavar="N", type=_nproc,
                   help="processes (ranks) per node")
    d.add_argument("--nnodes", metavar="N", type=_nnodes,
                   help="number of nodes (MIN:MAX for elastic launches)")
    d.add_argument("--node-rank", metavar="R", type=_non_negative_int, help="this node's rank")
    d.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="rendezvous address")
    d.add_argument("--rdzv-backend", metavar="NAME", help="rendezvous backend (c10d, ...)")
    d.add_argument("--rdzv-id", metavar="ID", help="rendezvous (job) id")
    d.add_argument("--master-addr", metavar="HOST", help="rank 0's address (static rendezvous)")
    d.add_argument("--master-port", metavar="PORT", type=_port, help="rank 0's port")
    d.add_argument("--max-restarts", metavar="N", type=_non_negative_int,
                   help="torchrun's restarts of failed workers (default 0)")
    return p


_VALUE_OPTIONS = {"--budget", "--max-steps", "--max-time", "--out", "--fail-on", "--sample-hz",
                  "--pyspy-rate", "--trace-steps", "--trace-warmup", "--nproc-per-node",
                  "--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-backend", "--rdzv-id",
                  "--master-addr", "--master-port", "--max-restarts"}


def split_profile_args(argv: list, value_options=_VALUE_OPTIONS):
    """(our options, script path or None, module or None, script args).

    Our options come before the script; everything after it belongs to it.
    ``value_options`` are the options that take a value (the next token).
    """
    ours, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok == "-m":
            if i + 1 >= len(argv):
                raise UsageError("-m needs a module name")
            return ours, None, argv[i + 1], argv[i + 2:]
        if tok.startswith("-m") and len(tok) > 2 and not tok.startswith("--"):
            return ours, None, tok[2:], argv[i + 1:]
        if tok == "--":
            if i + 1 >= len(argv):
                raise UsageError("no script given after --")
            return ours, argv[i + 1], None, argv[i + 2:]
        if tok.startswith("-") and tok != "-":
            ours.append(tok)
            if tok in value_options and i + 1 < len(argv):
                ours.append(argv[i + 1])
                i += 1
            i += 1
            continue
        return ours, tok, None, argv[i + 1:]
    return ours, None, None, []


def cmd_profile(argv: list) -> int:
    ours, script, module, rest = split_profile_args(argv)
    parser = _profile_parser()
    if "-h" in ours or "--help" in ours:
        parser.print_help()
        return 0
    opts = parser.parse_args(ours)
    target = _target(script, module, rest, "profile")

    from .distributed import rank_env, rank_path
    from .distributed.launch import wants_launch
    from .session import Profiler, check_writable, default_out
    if wants_launch(opts):
        from .distcli import launch_profile
        return launch_profile(opts, ours, target)
    rank = rank_env()
    if rank is not None:  # one rank of a torchrun launch: its own run in RUN/rank-<R>/
        from .distributed import default_launch_out
        top = opts.out or default_launch_out(target.name, rank)
        out = rank_path(top, rank.rank)
    else:
        out = opts.out or default_out(target.name)
    if os.path.exists(os.path.join(out, "meta.json")) or (
            rank is None and os.path.isdir(os.path.join(out, "rank-0"))):
        raise UsageError(f"{out} already holds a run; choose another --out")
    problem = check_writable(out)
    if problem:
        raise UsageError(problem)
    monitors = [] if opts.no_monitors else ["host", "gpu"]
    if opts.pyspy:
        monitors.append("pyspy")
    profiler = Profiler(out=out, budget=opts.budget, name=target.name, script=target.display,
                        argv=list(rest), max_steps=opts.max_steps, max_time=opts.max_time,
                        progress=False if opts.no_progress or (rank and rank.rank) else None,
                        monitors=monitors,
                        monitor_options={"sample_hz": opts.sample_hz,
                                         "pyspy_rate": opts.pyspy_rate},
                        memory_trace=opts.memory_trace,
                        **({"trace": {"steps": opts.trace_steps, "warmup": opts.trace_warmup}}
                           if opts.trace else {}))
    if rank is not None:
        from .distcli import profile_rank
        return profile_rank(profiler, target, opts, rank, top)
    return _profile(profiler, target, opts)


def _target(script, module, rest, command: str):
    from .runner import Target, TargetError, validate
    if script is None and module is None:
        raise UsageError(f"no script given (nnprof {command} [options] script.py [args])")
    target = Target(path=script, module=module, args=tuple(rest))
    try:
        validate(target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    return target


def run_profiled(profiler, target):
    """Run the target under ``profiler``; (outcome, summary), or (outcome, None) in a
    child the script forked (its parent owns the run)."""
    from . import runner
    with _deferred_sigterm() as early:  # a SIGTERM while starting: the run still ends well
        profiler.start()
    pid = os.getpid()
    outcome = runner.Outcome("crashed", 1)
    try:
        outcome = runner.Outcome("interrupted", 143) if early else runner.run(target)
    finally:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        if os.getpid() != pid:  # a child the script forked: the parent owns the run
            return outcome, None
        if outcome.stop_reason:
            profiler.notices.append(f"stopped at {outcome.stop_reason}")
        with _deferred_sigterm() as late:
            summary = profiler.stop(outcome.status, outcome.exit_code, shutdown_workers=True)
    if late and outcome.exit_code == 0:
        outcome.exit_code = 143
    return outcome, summary


class _deferred_sigterm:
    """SIGTERM while the run is being set up or written (a sweep stopping a trial that is
    just starting, torchrun stopping the other ranks when one failed) waits until that is
    done; the run then ends as interrupted (143)."""

    def __enter__(self) -> list:
        import signal
        self.got: list = []
        self.old = None
        try:
            self.old = signal.signal(signal.SIGTERM, lambda signum, frame: self.got.append(signum))
        except (ValueError, OSError):  # not the main thread
            self.old = None
        return self.got

    def __exit__(self, *exc) -> bool:
        import signal
        if self.old is not None:
            try:
                signal.signal(signal.SIGTERM, self.old)
            except (ValueError, OSError):
                pass
        return False


def report_run(summary: dict, path: str, opts, start_cwd: str, run=None) -> None:
    """The terminal report (unless --quiet) and where the run and its reports are."""
    from .renderers import render
    if not opts.quiet:
        tty = _stderr_is_tty()
        _write_err(render("terminal", summary, run, color=tty, width=_width(tty)))
    print(f"nnprof: run written to {_shown(path, start_cwd)}", file=sys.stderr)
    html = os.path.join(path, "report.html")
    if os.path.exists(html):
        tb = os.path.join(path, "tensorboard")
        print(f"nnprof: report {_shown(html, start_cwd)}" + (
            f"; TensorBoard: tensorboard --logdir {_shown(tb, start_cwd)}"
            if os.path.isdir(tb) else ""), file=sys.stderr)


def exit_code(outcome_code: int, summary: dict, conditions) -> int:
    """The script's own code, else 3 when a --fail-on condition holds."""
    from .summary import failed_conditions
    hits = failed_conditions(summary, conditions)
    if outcome_code != 0:
        return outcome_code
    if hits:
        print(f"nnprof: failing on {', '.join(hits)} (--fail-on)", file=sys.stderr)
        return EXIT_CONDITION
    return 0


def _profile(profiler, target, opts) -> int:
    start_cwd = os.getcwd()  # paths are shown from here, whatever the script does
    following = None
    if not opts.no_follow:
        from .distributed.follow import Following
        following = Following(profiler, {
            "budget": opts.budget,
            "monitors": [m for m in profiler.monitor_names if m != "pyspy"],
            "monitor_options": {"sample_hz": opts.sample_hz}}).install()
    try:
        outcome, summary = run_profiled(profiler, target)
    finally:
        if following is not None:
            following.uninstall()
    if summary is None:
        return outcome.exit_code
    if following is not None and following.several:
        from .distcli import _merge_and_report
        merged = _merge_and_report(following.top, opts, start_cwd,
                                   job=(outcome.status, outcome.exit_code))
        if following.pending:
            print(f"nnprof: process run(s) {', '.join(following.pending)} still running; "
                  "merged what was written (nnprof report RUN merges again)", file=sys.stderr)
        return exit_code(outcome.exit_code, merged or summary, opts.fail_on)
    if following is not None:
        from .distributed.follow import note_processes
        note_processes(profiler, summary)
    report_run(summary, profiler.path, opts, start_cwd)
    return exit_code(outcome.exit_code, summary, opts.fail_on)



def _examples(text: str) -> tuple:
    from .check import parse_examples
    try:
        return parse_examples(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ratio(text: str) -> float:
    v = _positive_float(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"must be below 1, got {text!r}")
    return v


def _check_parser() -> _Parser:
    p = _Parser(prog="nnprof check", add_help=True,
                description="The overfit ladder: is the script's model wired and able "
                            "to fit a few examples?",
                usage="nnprof check [options] (script.py | -m module) [script args...]")
    p.add_argument("--examples", type=_examples, default=(1, 10), metavar="LIST",
                   help="overfit rungs: train on the first N examples, for each N "
                        "(default 1,10)")
    p.add_argument("--max-steps", type=_positive_int, default=300, metavar="N",
                   help="train steps each overfit rung may take (default 300)")
    p.add_argument("--ratio", type=_ratio, default=0.1, metavar="R",
                   help="an overfit rung passes when the loss falls to R x the first "
                        "(default 0.1)")
    p.add_argument("--patience", type=_positive_int, default=5, metavar="K",
                   help="... as the mean of the last K train losses (default 5)")
    p.add_argument("--probe-steps", type=_positive_int, default=20, metavar="N",
                   help="train steps of the probe run (default 20)")
    p.add_argument("--as-is", action="store_true",
                   help="keep dropout, weight decay and LR schedules in the overfit rungs")
    p.add_argument("--max-time", type=_seconds, metavar="S",
                   help="seconds each training rung's run may take (default: no limit)")
    p.add_argument("--no-generalize", action="store_true",
                   help="leave out the generalize rung (the script on its full data, "
                        "judged on its validation loss)")
    p.add_argument("--out", metavar="DIR",
                   help="check directory (default reports/<script>-check-<timestamp>/)")
    return p


_CHECK_VALUE_OPTIONS = {"--examples", "--max-steps", "--ratio", "--patience",
                        "--probe-steps", "--max-time", "--out"}


def parse_command(argv: list, parser, value_options, command: str):
    """(options, target, script args) of a command that runs a script, or None when
    only its help was asked for (and printed)."""
    ours, script, module, rest = split_profile_args(argv, value_options)
    if "-h" in ours or "--help" in ours:
        parser.print_help()
        return None
    opts = parser.parse_args(ours)
    return opts, _target(script, module, rest, command), rest


def cmd_check(argv: list) -> int:
    parsed = parse_command(argv, _check_parser(), _CHECK_VALUE_OPTIONS, "check")
    if parsed is None:
        return 0
    opts, target, rest = parsed
    from .check import Settings, run_check
    from .session import check_writable, default_out
    out = opts.out or default_out(f"{target.name}-check")
    subs = ["probe", "generalize"] + [f"overfit-{n}" for n in opts.examples]
    for name in ["check.json"] + [os.path.join(d, "meta.json") for d in subs]:
        if os.path.exists(os.path.join(out, name)):
            raise UsageError(f"{out} already holds a check; choose another --out")
    problem = check_writable(out)
    if problem:
        raise UsageError(problem)
    settings = Settings(examples=opts.examples, max_steps=opts.max_steps, ratio=opts.ratio,
                        patience=opts.patience, probe_steps=opts.probe_steps,
                        as_is=opts.as_is, generalize=not opts.no_generalize,
                        max_time=opts.max_time)
    check = run_check(target, settings, out)
    from .renderers.checklist import render_checklist
    failed = check.failed_run
    if failed is not None and check.status == "script-failed":
        _write_err("".join(line + "\n" for line in failed.tail()))
        print(f"nnprof: the script failed in the probe run (exit {check.exit_code}); its "
              f"output is in {_shown(os.path.join(failed.path, 'output.log'))}",
              file=sys.stderr)
    tty = sys.stdout.isatty()
    record = check.record()
    try:
        from .renderers import write_text
        from .renderers.htmlpages import render_check
        write_text(os.path.join(out, "report.html"), render_check(record))
    except Exception as exc:  # the checklist and check.json stand without it
        print(f"nnprof: report.html not written: {exc.__class__.__name__}: {exc}",
              file=sys.stderr)
    sys.stdout.write(render_checklist(record, color=tty, width=_width(tty)))
    sys.stdout.flush()
    print(f"nnprof: check written to {_shown(out)}", file=sys.stderr)
    return check.exit_code


def cmd_sweep(argv: list) -> int:
    from .sweepcli import cmd_sweep as run
    return run(argv)


def cmd_merge(argv: list) -> int:
    from .distcli import cmd_merge as merge
    return merge(argv)


COMMANDS = {"profile": cmd_profile, "check": cmd_check, "sweep": cmd_sweep,
            "report": cmd_report, "compare": cmd_compare, "merge": cmd_merge}


def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: nnprof {profile,check,sweep,report,compare,merge} ...\n\n"
              "  profile   run a training script and profile its steps\n"
              "  check     the overfit ladder: wiring, loss at init, fitting a few examples\n"
              "  sweep     many trials of the script in parallel, the weak ones pruned early\n"
              "  report    render a run, check or sweep directory again (terminal, html, json)\n"
              "  compare   two runs side by side: what got faster or slower\n"
              "  merge     the ranks of a distributed run written on several nodes, merged\n\n"
              "nnprof profile --help (or check --help, sweep --help) for the options.")
        return 0 if argv else EXIT_BAD_INPUT
    if argv[0] == "--version":
        print(f"nnprof {__version__}")
        return 0
    cmd = COMMANDS.get(argv[0])
    try:
        if cmd is None:
            raise UsageError(f"unknown command {argv[0]!r} (choose from {', '.join(COMMANDS)})")
        return cmd(argv[1:])
    except UsageError as exc:
        print(f"nnprof: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"nnprof: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
