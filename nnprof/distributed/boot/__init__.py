"""The folder nnprof puts first on ``PYTHONPATH`` for the processes of a profiled job:
its ``sitecustomize.py`` lets nnprof follow every Python process the job starts (see
:mod:`nnprof.distributed.follow`). Standard library only: ``_nnprof_boot`` reaches
nnprof (:mod:`nnprof.distributed.followed`) only once a child imports torch or starts
a ``multiprocessing`` target; the profiled process uses its ``make_bootstrap`` for
forked children."""
