"""The instrumentation active in this process (at most one), and what a forked child
does with the one it inherited: its hooks go quiet and write nothing of the parent's.

Kept apart from the package's ``__init__`` so that the loader's worker side can reach
it without importing the package that installs the hooks.
"""
from __future__ import annotations

from typing import Optional

_ACTIVE = None  # the installed Instrumentation, if any


def current():
    """The Instrumentation installed in this process, or None."""
    return _ACTIVE


def set_current(inst) -> None:
    global _ACTIVE
    _ACTIVE = inst


def clear(inst) -> None:
    """Forget ``inst`` if it is the active one."""
    global _ACTIVE
    if _ACTIVE is inst:
        _ACTIVE = None


def quiet_inherited() -> Optional[object]:
    """In a forked child: the inherited instrumentation stops timing (its clock no
    longer matches this thread) and drops the parent's unwritten rows."""
    active = _ACTIVE
    if active is not None:
        active.clock.thread_id = -1
        active.writer.abandon()
    return active
