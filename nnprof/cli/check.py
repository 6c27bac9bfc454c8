"""``nnprof check``: the overfit ladder's command line (the ladder is
:mod:`nnprof.check`).

Exit codes: 0 when every rung passed or warned, 3 when a rung failed, 2 for bad input,
the script's own code when it failed in the probe run.
"""
from __future__ import annotations

import argparse
import os
import sys

from .args import (UsageError, _Parser, _positive_float, _positive_int, _seconds, _shown,
                   _width, _write_err, parse_command)


def _examples(text: str) -> tuple:
    from ..check import parse_examples
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


def cmd_check(argv: list) -> int:
    parsed = parse_command(argv, _check_parser(), _CHECK_VALUE_OPTIONS, "check")
    if parsed is None:
        return 0
    opts, target, rest = parsed
    from ..check import Settings, run_check
    from ..rundir.place import check_writable, default_out
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
    from ..renderers.checklist import render_checklist
    failed = check.failed_run
    if failed is not None and check.status == "script-failed":
        _write_err("".join(line + "\n" for line in failed.tail()))
        print(f"nnprof: the script failed in the probe run (exit {check.exit_code}); its "
              f"output is in {_shown(os.path.join(failed.path, 'output.log'))}",
              file=sys.stderr)
    tty = sys.stdout.isatty()
    record = check.record()
    try:
        from ..renderers import write_text
        from ..renderers.htmlpages import render_check
        write_text(os.path.join(out, "report.html"), render_check(record))
    except Exception as exc:  # the checklist and check.json stand without it
        print(f"nnprof: report.html not written: {exc.__class__.__name__}: {exc}",
              file=sys.stderr)
    sys.stdout.write(render_checklist(record, color=tty, width=_width(tty)))
    sys.stdout.flush()
    print(f"nnprof: check written to {_shown(out)}", file=sys.stderr)
    return check.exit_code
