"""Optional deep captures, each asked for by a flag and off by default: torch.profiler
windows (``--trace``, :mod:`.trace`), CUDA memory history with its allocation sites
(``--memory-trace``, :mod:`.memtrace`) and the flame graph drawn from py-spy's stacks
(:mod:`.flamegraph`).

They import the run directory's writer (:mod:`nnprof.rundir`) and the standard
library (torch when a capture runs), nothing else of nnprof: the session starts them,
the summary reads what they wrote.
"""
