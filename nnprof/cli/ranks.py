"""The command line of distributed runs: one rank under torchrun, nnprof starting
torchrun (``nnprof profile --nproc-per-node`` ...), and ``nnprof merge`` (see
:mod:`nnprof.distributed`)."""
from __future__ import annotations

import os
import shutil
import signal
import sys

from ..distributed import PARENT_MERGES, rank_dirs
from .args import EXIT_BAD_INPUT, UsageError, _Parser
from .profiled import exit_code, merge_and_report, run_profiled

SIGNAL_EXIT = {getattr(signal, n): 128 + int(getattr(signal, n))
               for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}


def profile_rank(profiler, target, opts, rank, top: str) -> int:
    """One rank of a torchrun launch. Its run goes to ``top/rank-<R>/``; rank 0 (or a
    node's local rank 0 where rank 0's directory is not on this filesystem) then waits
    for the other ranks' runs and writes the merged view, unless nnprof's own launcher
    does that (it started torchrun)."""
    from ..distributed.merge import wait_for_ranks
    start_cwd = os.getcwd()
    outcome, summary = run_profiled(profiler, target)
    if summary is None:
        return outcome.exit_code
    if os.environ.get(PARENT_MERGES):
        return exit_code(outcome.exit_code, summary, opts.fail_on)
    node_first = rank.node_rank * rank.local_world_size
    if rank.rank == 0:
        expected = list(range(rank.local_world_size if rank.local_world_size < rank.world_size
                              else rank.world_size))
    elif rank.local_rank == 0 and 0 not in rank_dirs(top):
        expected = list(range(node_first, node_first + rank.local_world_size))
    else:
        return exit_code(outcome.exit_code, summary, opts.fail_on)
    pending = wait_for_ranks(top, expected)
    if pending:
        print(f"nnprof: rank(s) {', '.join(map(str, pending))} still running; merged what "
              "was written (nnprof report RUN merges again)", file=sys.stderr)
    merged = merge_and_report(top, opts, start_cwd)
    return exit_code(outcome.exit_code, merged or summary, opts.fail_on)


def _forwarded_options(ours: list) -> list:
    """Our own options for each rank, without torchrun's, --out, --quiet and --fail-on
    (judged here, on the merged run)."""
    from ..distributed.launch import TORCHRUN_OPTIONS
    drop_value = {f for f in TORCHRUN_OPTIONS.values()} | {"--out", "--fail-on"}
    out, i = [], 0
    while i < len(ours):
        tok = ours[i]
        name = tok.split("=", 1)[0]
        if name in drop_value:
            i += 1 if "=" in tok else 2
            continue
        if name not in ("--quiet",):
            out.append(tok)
        i += 1
    return out


def launch_profile(opts, ours: list, target) -> int:
    """``nnprof profile --nproc-per-node N ...``: torchrun started, its ranks merged."""
    from ..distributed import rank_env
    from ..distributed.launch import Launch, torchrun_command
    from ..rundir.place import check_writable, default_out
    if rank_env() is not None:
        raise UsageError("--nproc-per-node and the other torchrun options are for a plain "
                         "launch, not inside torchrun (this process is already a rank)")
    several = opts.nnodes is not None and opts.nnodes.split(":")[-1] != "1"
    if several and opts.rdzv_endpoint is None and opts.master_addr is None:
        raise UsageError("--nnodes above 1 needs where the nodes meet: --rdzv-endpoint "
                         "HOST:PORT (or --master-addr and --master-port)")
    start_cwd = os.getcwd()
    top = os.path.abspath(opts.out or default_out(target.name))
    if rank_dirs(top) or os.path.exists(os.path.join(top, "meta.json")):
        raise UsageError(f"{opts.out or top} already holds a run; choose another --out")
    problem = check_writable(top)
    if problem:
        raise UsageError(problem)
    cmd = torchrun_command(opts, _forwarded_options(ours) + ["--out", top, "--quiet"], target)
    launch = Launch(cmd)
    rc = launch.run()
    if launch.signals:
        rc = SIGNAL_EXIT.get(launch.signals[0], rc)
    if not rank_dirs(top):
        print(f"nnprof: torchrun exited with code {rc} before any rank wrote its run",
              file=sys.stderr)
        return rc or 1
    merged = merge_and_report(top, opts, start_cwd)
    if rc != 0 or merged is None:
        return rc
    return exit_code(0, merged, opts.fail_on)


def cmd_merge(argv: list) -> int:
    """``nnprof merge RUN_A RUN_B ... [--out DIR]``: the ranks of several nodes' run
    directories in one, merged."""
    p = _Parser(prog="nnprof merge",
                description="Merge the rank runs of one distributed launch written on "
                            "several nodes (each node's RUN/rank-<R>/ directories) into one "
                            "run directory with the merged report.")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", metavar="DIR",
                   help="where the merged run goes (default: the first RUN, which gains "
                        "the other runs' rank directories)")
    p.add_argument("--quiet", action="store_true", help="no terminal report")
    opts = p.parse_args(argv)
    start_cwd = os.getcwd()
    sources = {}
    for path in opts.runs:
        dirs = rank_dirs(path)
        if not dirs:
            raise UsageError(f"{path}: no rank-<R> run directories (not a distributed run)")
        for r, folder in dirs.items():
            if r in sources and os.path.realpath(sources[r]) != os.path.realpath(folder):
                raise UsageError(f"rank {r} is in both {os.path.dirname(sources[r])} and "
                                 f"{path}: these are not one launch's nodes")
            sources[r] = folder
    top = opts.out or opts.runs[0]
    if opts.out:
        from ..rundir.place import check_writable
        problem = check_writable(top)
        if problem:
            raise UsageError(problem)
    here = rank_dirs(top)
    for r, folder in sources.items():
        if r in here:
            continue
        try:
            shutil.copytree(folder, os.path.join(top, f"rank-{r}"))
        except OSError as exc:
            raise UsageError(f"cannot copy rank {r} into {top}: {exc.strerror or exc}") from None
    merged = merge_and_report(top, opts, start_cwd)
    return 0 if merged is not None else EXIT_BAD_INPUT
