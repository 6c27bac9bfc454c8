"""The command line: ``nnprof profile|check|sweep|report|compare|project|merge``, a module per
command and what they share (:mod:`.args`: exit codes, usage errors, option types,
the splitter of our options from the script's; :mod:`.profiled`: running, reporting
and judging a profiled run).

This room sits on top: it imports the session, the runner, the analyses' summary,
the renderers, the check ladder, the sweep driver and the distributed launcher;
nothing in the package imports it (``nnprof/__main__.py`` and the ``nnprof`` entry
point call :func:`main`). Within it, command modules import :mod:`.args` and
:mod:`.profiled`, never this ``__init__`` or each other, save ``profile`` reaching
``ranks`` for torchrun.

Exit codes: the script's own code (0, n from ``sys.exit(n)``, 1 for an uncaught
exception, 130 for Ctrl-C, 143 for SIGTERM); 2 for bad input; 3 when a ``--fail-on``
condition holds (after everything was written), or when a rung of ``nnprof check``
failed.
"""
from __future__ import annotations

import sys
from typing import Optional

from .._version import __version__
from .args import EXIT_BAD_INPUT, UsageError
from .check import cmd_check
from .profile import cmd_profile
from .project import cmd_project
from .ranks import cmd_merge
from .report import cmd_compare, cmd_report
from .sweep import cmd_sweep

COMMANDS = {"profile": cmd_profile, "check": cmd_check, "sweep": cmd_sweep,
            "report": cmd_report, "compare": cmd_compare, "merge": cmd_merge,
            "project": cmd_project}


def main(argv: Optional[list] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: nnprof {profile,check,sweep,report,compare,project,merge} ...\n\n"
              "  profile   run a training script and profile its steps\n"
              "  check     the overfit ladder: wiring, loss at init, fitting a few examples\n"
              "  sweep     many trials of the script in parallel, the weak ones pruned early\n"
              "  report    render a run, check or sweep directory again (terminal, html, json)\n"
              "  compare   two runs side by side: what got faster or slower\n"
              "  project   a run on more workers, GPUs and nodes: step time, throughput, bound\n"
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
