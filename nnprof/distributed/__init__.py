"""torch.distributed launches: rank detection, torchrun started by nnprof, and the merge
of the ranks' runs (:mod:`.launch`, :mod:`.merge`).

Every rank of one launch writes an ordinary run directory ``RUN/rank-<R>/``; the merged
view (``summary.json``, ``steps.csv``, ``report.html``) sits at ``RUN/``, written by
nnprof's parent process when nnprof started torchrun, else by rank 0 once the other
ranks are done (see :func:`merge.wait_for_ranks`).

The layout of such a run and rank detection are part of the run's model
(:mod:`nnprof.rundir.ranks`, re-exported here); everything in this room sits above
the session (it starts profiled processes, or reads their runs) and nothing below
the session imports it.
"""
from ..rundir.ranks import (PARENT_MERGES, PROC_DIR, RANK_DIR, RankInfo,
                            default_launch_out, is_distributed_run, proc_dirs, rank_dirs,
                            rank_env, rank_path)

__all__ = ["PARENT_MERGES", "PROC_DIR", "RANK_DIR", "RankInfo", "default_launch_out",
           "is_distributed_run", "proc_dirs", "rank_dirs", "rank_env", "rank_path"]
