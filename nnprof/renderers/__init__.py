"""Renderers: one small family, registered here and picked by name.

A renderer turns a run's findings into something to look at. It never measures
and never decides where its output goes; the caller gives a path. The renderers
import the run's model (:mod:`nnprof.rundir`) and the analyses' helpers, never
``summary.py``, the session or the commands (which call them).

* ``render(summary, run=None) -> str`` for the text renderers (terminal, json,
  html); ``run`` is the :class:`nnprof.run.Run` behind the summary, for the
  renderers that draw per-step data (html), and may be ``None``.
* ``write(path, summary, run=None) -> str`` writes the output at ``path``
  (a file, or a folder for tensorboard) and returns what it wrote.
"""
from __future__ import annotations

import os

from .base import Renderer, write_text

__all__ = ["Renderer", "write_text", "get", "render", "render_compare", "write",
           "write_run_reports", "RUN_REPORTS"]


def _registry() -> dict:
    from .html import HtmlRenderer
    from .json import JsonRenderer
    from .tensorboard import TensorBoardRenderer
    from .terminal import TerminalRenderer
    return {cls.name: cls for cls in (TerminalRenderer, JsonRenderer, HtmlRenderer,
                                      TensorBoardRenderer)}


RENDERERS: dict = {}


def get(name: str, **options) -> Renderer:
    if not RENDERERS:
        RENDERERS.update(_registry())
    try:
        cls = RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r} (choose from {', '.join(RENDERERS)})") from None
    return cls(**options)


def render(name: str, summary: dict, run=None, **options) -> str:
    return get(name, **options).render(summary, run)


def render_compare(name: str, comparison: dict, **options) -> str:
    return get(name, **options).render_compare(comparison)


def write(name: str, path: str, summary: dict, run=None, **options) -> str:
    return get(name, **options).write(path, summary, run)


#: what every run directory gets at the end of a run, after ``summary.json``
RUN_REPORTS = ("html", "tensorboard")


def write_run_reports(run, summary: dict, formats=RUN_REPORTS) -> list:
    """Write ``report.html`` and ``tensorboard/`` into the run directory.

    Each fails soft: the return value is a list of one-line notices, one per
    report that could not be written; what was written before is kept.
    """
    notices = []
    for name in formats:
        try:
            r = get(name)
            r.write(os.path.join(run.path, r.default_name), summary, run)
        except Exception as exc:  # a report must never cost the run
            notices.append(f"{name} report not written: {exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": "))
    return notices
