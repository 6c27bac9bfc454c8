"""nnprof: a profiler and bottleneck analyser for PyTorch training.

Public API: :func:`profile`, :class:`Profiler`, :func:`load_run`, ``__version__``.
"""
__version__ = "0.1.0"

from .run import load_run  # noqa: E402
from .session import Profiler, profile  # noqa: E402

__all__ = ["profile", "Profiler", "load_run", "__version__"]
