"""The run's own model: what a run directory holds, how it is written as the run goes
(append-only, flushed) and read back, and which steps the timing statistics are made of.

It sits below everything that judges a run: the analyses, ``summary.py``, the
renderers and the commands read runs through it. It imports only the phase names of
:mod:`nnprof.instrument.steps` (a step row's columns) and the standard library
(pandas on demand, when a frame is built).

* :mod:`.files`      the layout, the writer, atomic JSON, the JSON readers
* :mod:`.reader`     :class:`RunDir`, a run directory read back as frames
* :mod:`.steady`     the steady-step basis (warm-up and worker start-up left out)
* :mod:`.appendfile` the append-only file every stream is written through
"""
from .files import (SCHEMA_VERSION, STEP_COLUMNS, RunDirError, RunWriter,
                    write_json)
from .reader import RunDir
from .steady import describe_basis, steady_steps

__all__ = ["SCHEMA_VERSION", "STEP_COLUMNS", "RunDirError", "RunWriter", "write_json",
           "RunDir", "describe_basis", "steady_steps"]
