"""``nnprof profile``: run a training script unmodified and profile its steps (one
process, the processes it starts, or ranks under torchrun: :mod:`.ranks`).

Exit codes: the script's own code (0, n from ``sys.exit(n)``, 1 for an uncaught
exception, 130 for Ctrl-C, 143 for SIGTERM); 2 for bad input; 3 when a ``--fail-on``
condition holds (after everything was written).
"""
from __future__ import annotations

import os
import sys

from .args import (UsageError, _conditions, _nnodes,
                   _non_negative_int, _nproc, _port, _Parser, _positive_int, _rate, _seconds,
                   _target, split_profile_args)
from .profiled import exit_code, merge_and_report, report_run, run_profiled


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


#: the options above that take a value (the splitter must know them)
_VALUE_OPTIONS = {"--budget", "--max-steps", "--max-time", "--out", "--fail-on", "--sample-hz",
                  "--pyspy-rate", "--trace-steps", "--trace-warmup", "--nproc-per-node",
                  "--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-backend", "--rdzv-id",
                  "--master-addr", "--master-port", "--max-restarts"}


def cmd_profile(argv: list) -> int:
    ours, script, module, rest = split_profile_args(argv, _VALUE_OPTIONS)
    parser = _profile_parser()
    if "-h" in ours or "--help" in ours:
        parser.print_help()
        return 0
    opts = parser.parse_args(ours)
    target = _target(script, module, rest, "profile")

    from ..distributed import rank_env, rank_path
    from ..distributed.launch import wants_launch
    from ..rundir.place import check_writable, default_out
    from ..session import Profiler
    if wants_launch(opts):
        from .ranks import launch_profile
        return launch_profile(opts, ours, target)
    rank = rank_env()
    if rank is not None:  # one rank of a torchrun launch: its own run in RUN/rank-<R>/
        from ..distributed import default_launch_out
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
        from .ranks import profile_rank
        return profile_rank(profiler, target, opts, rank, top)
    return _profile(profiler, target, opts)


def _profile(profiler, target, opts) -> int:
    start_cwd = os.getcwd()  # paths are shown from here, whatever the script does
    following = None
    if not opts.no_follow:
        from ..distributed.follow import Following
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
        merged = merge_and_report(following.top, opts, start_cwd,
                                   job=(outcome.status, outcome.exit_code))
        if following.pending:
            print(f"nnprof: process run(s) {', '.join(following.pending)} still running; "
                  "merged what was written (nnprof report RUN merges again)", file=sys.stderr)
        return exit_code(outcome.exit_code, merged or summary, opts.fail_on)
    if following is not None:
        from ..distributed.follow import note_processes
        note_processes(profiler, summary)
    report_run(summary, profiler.path, opts, start_cwd)
    return exit_code(outcome.exit_code, summary, opts.fail_on)
