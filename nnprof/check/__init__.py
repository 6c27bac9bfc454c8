"""``nnprof check``, the overfit ladder: probe, simplicity, wiring, loss at init,
overfit 1 and N examples, generalize (:mod:`.ladder`), each training rung a sub-run
of the script under ``python -m nnprof profile`` in its own process (:mod:`.subrun`,
which the sweep's trials share).

It imports the run (:mod:`nnprof.run`), the analyses it judges by and the summary's
JSON cleaning; the command line (:mod:`nnprof.cli.check`) and the renderers of its
checklist sit above it.
"""
from .ladder import (Check, Settings, conclude, judge_overfit, parse_examples, run_check,
                     skipped)
from .subrun import SubRun, profile_command, train_losses

__all__ = ["Check", "Settings", "conclude", "judge_overfit", "parse_examples", "run_check",
           "skipped", "SubRun", "profile_command", "train_losses"]
