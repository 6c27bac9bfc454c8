"""The folder nnprof puts first on ``PYTHONPATH`` for the processes of a profiled job:
its ``sitecustomize.py`` lets nnprof follow every Python process the job starts (see
:mod:`nnprof.distributed.follow`). Nothing here is imported by nnprof itself."""
