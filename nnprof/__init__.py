"""nnprof: a profiler and bottleneck analyser for PyTorch training.

Public API: :func:`profile`, :class:`Profiler`, :func:`load_run`, ``__version__``.
"""
from ._version import __version__
from .run import load_run
from .session import Profiler, profile

__all__ = ["profile", "Profiler", "load_run", "__version__"]
