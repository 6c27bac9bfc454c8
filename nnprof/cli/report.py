"""``nnprof report`` and ``nnprof compare``: render run and check directories again,
and put two runs side by side, without running anything."""
from __future__ import annotations

import os
import sys
from typing import Optional

from .args import UsageError, _Parser, _shown, _width
from .loading import _load, _load_distributed


def _emit(text: str, output: Optional[str], default: Optional[str] = None) -> None:
    """Print ``text``, or write it atomically at ``output`` (or ``default`` for HTML)."""
    from ..renderers import write_text
    path = output if output not in (None, "-") else (default if output is None else None)
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory; give a file name with -o")
    write_text(path, text)
    print(f"nnprof: written to {_shown(path)}", file=sys.stderr)


def cmd_report(argv: list) -> int:
    p = _Parser(prog="nnprof report",
                description="Render a run directory (finished, crashed or killed), a check "
                            "directory or a sweep directory again, without re-running "
                            "anything.")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("terminal", "html", "json"), default="terminal")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here (- for stdout); html defaults to RUN_DIR/report.html")
    opts = p.parse_args(argv)
    from ..renderers import get
    tty = sys.stdout.isatty() and opts.output in (None, "-")
    if os.path.isfile(os.path.join(opts.run_dir, "check.json")):
        return _report_check(opts, tty)
    if os.path.isfile(os.path.join(opts.run_dir, "sweep.json")):
        return _report_sweep(opts, tty)
    from ..distributed import is_distributed_run
    if is_distributed_run(opts.run_dir):
        run, summary = _load_distributed(opts.run_dir)
    else:
        run, summary = _load(opts.run_dir)
    text = get(opts.format, color=tty, width=_width(tty)).render(summary, run)
    _emit(text, opts.output, os.path.join(opts.run_dir, "report.html")
          if opts.format == "html" else None)
    return 0


def _report_check(opts, tty: bool) -> int:
    from ..run import RunDirError
    from ..rundir.files import _read_json
    path = os.path.join(opts.run_dir, "check.json")
    try:
        check = _read_json(path)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(check, dict) or not isinstance(check.get("rungs"), list):
        raise UsageError(f"{path}: not a check record")
    from ..renderers.checklist import render_checklist
    from ..renderers.htmlpages import render_check
    return _render_record(opts, tty, check, render_check, render_checklist)


def _report_sweep(opts, tty: bool) -> int:
    """The leaderboard of a sweep directory, from its ``sweep.json`` (the study is
    not contacted)."""
    from ..renderers.leaderboard import render_leaderboard
    from ..renderers.sweeppage import render_sweep_html
    from ..sweep.record import load_record
    try:
        rec = load_record(opts.run_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _render_record(opts, tty, rec, render_sweep_html, render_leaderboard)


def _render_record(opts, tty: bool, record: dict, html, text) -> int:
    """A check or sweep record as JSON, its HTML page or its terminal text."""
    if opts.format == "json":
        import json
        out = json.dumps(record, indent=2) + "\n"
    elif opts.format == "html":
        out = html(record)
    else:
        out = text(record, color=tty, width=_width(tty))
    _emit(out, opts.output, os.path.join(opts.run_dir, "report.html")
          if opts.format == "html" else None)
    return 0


def cmd_compare(argv: list) -> int:
    p = _Parser(prog="nnprof compare",
                description="Two runs side by side: per-phase means and p95, budget and "
                            "verdicts, what got faster or slower and by how much.")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--format", choices=("terminal", "html", "json"), default="terminal")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    opts = p.parse_args(argv)
    from ..analyses.compare import compare_runs
    from ..renderers import get
    run_a, sa = _load(opts.run_a)
    run_b, sb = _load(opts.run_b)
    cmp = compare_runs(sa, sb, run_a, run_b)
    tty = sys.stdout.isatty() and opts.output in (None, "-")
    _emit(get(opts.format, color=tty, width=_width(tty)).render_compare(cmp), opts.output)
    return 0
