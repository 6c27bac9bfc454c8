"""``nnprof sweep``: many trials of an unmodified script, the weak ones pruned early
(the loop is in :mod:`nnprof.sweep.driver`).

Exit codes: 0 when at least one trial of the study completed; 3 when none did
(the sweep stopped after trials kept failing included); 2 for bad input (a bad
spec, an unknown metric, an unreachable storage); 130 on Ctrl-C, 143 on SIGTERM,
after stopping every trial and writing everything.
"""
from __future__ import annotations

import argparse
import os
import sys

from .args import EXIT_CONDITION, UsageError, _Parser, _positive_int, _seconds, _shown

METRIC_NAMES = ("val_loss", "val_accuracy", "val_f1", "train_loss")


def _param(text: str):
    from ..sweep.space import SpecError, parse_param
    try:
        return parse_param(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _prune(text: str):
    from ..sweep.study import parse_prune
    try:
        return parse_prune(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> _Parser:
    p = _Parser(prog="nnprof sweep", add_help=True,
                description="Run many trials of a training script with different argument "
                            "values, in parallel, and stop the weak ones early (Optuna).",
                usage="nnprof sweep [options] -p NAME=SPEC ... (script.py | -m module) "
                      "[script args...]")
    p.add_argument("-p", "--param", type=_param, action="append", default=[],
                   metavar="NAME=SPEC", dest="params",
                   help="a searched argument: loguniform:LO:HI, uniform:LO:HI, "
                        "int:LO:HI[:log], choice:A,B,... (given as --NAME VALUE, or put "
                        "into {NAME} placeholders of the script's arguments)")
    p.add_argument("--trials", type=_positive_int, default=20, metavar="N",
                   help="trials in the study in all (default 20; a resumed or shared study "
                        "counts those it has)")
    p.add_argument("--parallel", type=_positive_int, default=1, metavar="P",
                   help="trials at once; the cores (and GPUs) are split among them "
                        "(default 1)")
    p.add_argument("--metric", choices=METRIC_NAMES, default="val_loss",
                   help="what trials are compared on (default val_loss)")
    p.add_argument("--direction", choices=("minimize", "maximize"),
                   help="default: minimize a loss, maximize accuracy and F1")
    p.add_argument("--prune", type=_prune, default=None, metavar="RULE",
                   help="median (default), percentile:P, asha, hyperband, patience:N, none")
    p.add_argument("--resource", choices=("passes", "steps", "seconds"), default="passes",
                   help="what trials are compared at: evaluation passes (default), train "
                        "steps, or seconds of running")
    p.add_argument("--report-every", type=_seconds, default=None, metavar="N",
                   help="report the metric every N of the resource (default 1 pass, 20 steps, "
                        "10 seconds)")
    p.add_argument("--min-trials", type=_positive_int, default=None, metavar="N",
                   help="no trial is pruned before N trials finished and N reported at that "
                        "point (default max(2, --parallel))")
    p.add_argument("--out", metavar="DIR",
                   help="sweep directory (default reports/<script>-sweep-<timestamp>/); the "
                        "same --out again resumes the sweep")
    p.add_argument("--storage", metavar="URL",
                   help="a shared study: postgresql://..., sqlite:///..., redis://... "
                        "(default: a journal file in the sweep directory)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the script's name)")
    p.add_argument("--seed", type=int, default=None, help="the sampler's seed")
    p.add_argument("--budget", type=_seconds, default=None, metavar="S",
                   help="each trial's step budget, as nnprof profile --budget")
    p.add_argument("--max-steps", type=_positive_int, default=None, metavar="N",
                   help="stop each trial cleanly after N train steps")
    p.add_argument("--max-time", type=_seconds, default=None, metavar="S",
                   help="stop each trial cleanly after S seconds")
    p.add_argument("--max-failures", type=_positive_int, default=3, metavar="K",
                   help="stop the sweep when K trials in a row fail before any succeeds "
                        "(default 3)")
    p.add_argument("--grace", type=_seconds, default=10.0, metavar="S",
                   help="a stopped trial gets S seconds to write its run before SIGKILL "
                        "(default 10)")
    p.add_argument("--fresh-trials", action="store_true",
                   help="start every trial as a new python process (default: fork trials "
                        "from a warm process that has imported torch and nnprof once)")
    p.add_argument("--no-live", action="store_true",
                   help="no live table: one line per event")
    return p


VALUE_OPTIONS = {"-p", "--param", "--trials", "--parallel", "--metric", "--direction",
                 "--prune", "--resource", "--report-every", "--min-trials", "--out",
                 "--storage", "--study", "--seed", "--budget", "--max-steps", "--max-time",
                 "--max-failures", "--grace"}


def cmd_sweep(argv: list) -> int:
    from .args import parse_command
    parsed = parse_command(argv, _parser(), VALUE_OPTIONS, "sweep")
    if parsed is None:
        return 0
    opts, target, rest = parsed
    from ..monitors.machine import usable_cores
    from ..rundir.place import check_writable, default_out
    from ..sweep import driver, study
    from ..sweep.space import Space, SpecError
    from ..sweep.tail import DEFAULT_EVERY, METRICS
    try:
        space = Space(opts.params, rest)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    direction = opts.direction or METRICS[opts.metric]
    prune = opts.prune or study.parse_prune("median")
    prune_text = prune.kind + ("" if prune.arg is None else f":{prune.arg:g}")
    every = opts.report_every or DEFAULT_EVERY[opts.resource]
    if opts.resource == "passes" and every != int(every):
        raise UsageError("--report-every counts passes: give a whole number")
    out = opts.out or default_out(f"{target.name}-sweep")
    problem = check_writable(out)
    if problem:
        raise UsageError(problem)
    lock = _lock(out)
    settings = driver.Settings(
        trials=opts.trials, parallel=opts.parallel, metric=opts.metric, direction=direction,
        prune=prune, prune_text=prune_text, resource=opts.resource, every=every,
        min_trials=opts.min_trials or max(2, opts.parallel),
        study=opts.study or target.name, storage=opts.storage, seed=opts.seed,
        budget=opts.budget, max_steps=opts.max_steps, max_time=opts.max_time,
        max_failures=opts.max_failures, grace_s=opts.grace, cores=usable_cores(),
        gpus=_gpus(), fresh_trials=opts.fresh_trials)
    from ..sweep.live import make_display
    display = make_display(False if opts.no_live else None)
    sweep = driver.Sweep(settings, target, space, out, display, target.display)
    try:
        code = sweep.run()
    except study.StudyError as exc:
        raise UsageError(str(exc)) from None
    finally:
        display.close()
        lock.close()
    _finish(sweep, out, code)
    return code


def _gpus() -> list:
    from ..sweep.trials import visible_gpus
    return visible_gpus()


def _lock(out: str):
    """One sweep process per sweep directory (trials of several sweeps share a study
    through --storage, each with its own directory)."""
    os.makedirs(out, exist_ok=True)
    fh = open(os.path.join(out, ".sweep.lock"), "w")
    try:
        import fcntl
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise UsageError(f"another nnprof sweep is running in {out}") from None
    except ImportError:
        pass
    return fh


def _finish(sweep, out: str, code: int) -> None:
    from .args import _stderr_is_tty, _width, _write_err
    rec = getattr(sweep, "last_record", None)
    if rec is not None:
        try:
            from ..renderers.leaderboard import render_leaderboard
            tty = _stderr_is_tty()
            _write_err(render_leaderboard(rec, color=tty, width=_width(tty)))
        except Exception as exc:
            print(f"nnprof: leaderboard not shown: {exc.__class__.__name__}: {exc}",
                  file=sys.stderr)
    if sweep.stop_reason:
        print(f"nnprof: error: {sweep.stop_reason}" if code == EXIT_CONDITION or code == 1
              else f"nnprof: {sweep.stop_reason}", file=sys.stderr)
    print(f"nnprof: sweep written to {_shown(out)}; report "
          f"{_shown(os.path.join(out, 'report.html'))}", file=sys.stderr)
