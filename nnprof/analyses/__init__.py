"""Pure analyses: functions of measured data -> :class:`Finding`, no I/O.

Each function's docstring states its rule and thresholds so that a verdict can
be checked by hand against ``steps.csv``. They import the run's model
(:mod:`nnprof.rundir`: phase names, the steady-step basis) and nothing else of
nnprof; ``summary.py``, the renderers and the check ladder build on them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Finding:
    """One conclusion: ``verdict`` (a short keyword), ``evidence`` (measured
    numbers it rests on), ``advice`` (what to do, specific to the measurement),
    ``severity`` (``info`` | ``warn`` | ``fail``)."""

    name: str
    verdict: str
    evidence: dict = field(default_factory=dict)
    advice: tuple = ()
    severity: str = "info"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["advice"] = list(self.advice)
        return d
