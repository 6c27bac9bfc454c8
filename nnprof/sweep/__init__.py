"""``nnprof sweep``: the search space (space), the trial processes (trials), what a
running trial measured (tail), the Optuna study (study), the loop (driver), the record
(record), what is shown while it runs (live) and written (output).

Each trial is ``python -m nnprof profile`` in a process of its own (the check
ladder's sub-runs, :mod:`nnprof.check.subrun`), forked from a warm server where it can be
(forkserver); the sweep reads trials back as runs
(:mod:`nnprof.run`) and draws its leaderboard with the renderers. Only the command
line (:mod:`nnprof.cli.sweep`) imports it.
"""
