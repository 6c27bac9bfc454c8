"""``nnprof sweep``: the search space (space), the trial processes (trials), what a
running trial measured (tail), the Optuna study (study), the loop (driver), the record
(record), what is shown while it runs (live) and written (output)."""
