"""Renderers: one small family, registered here and picked by name.

A renderer turns a run's findings into something to look at. It never measures
and never decides where its output goes; the caller gives a path.

* ``render(summary, run=None) -> str`` for the text renderers (terminal, json,
  html); ``run`` is the :class:`nnprof.run.Run` behind the summary, for the
  renderers that draw per-step data (html), and may be ``None``.
* ``write(path, summary, run=None) -> str`` writes the output at ``path``
  (a file, or a folder for tensorboard) and returns what it wrote.
"""
from __future__ import annotations

import os
from typing import Optional


class Renderer:
    name = ""
    #: what ``write`` makes in a run directory by default (None: nothing by default)
    default_name: Optional[str] = None

    def __init__(self, **_options) -> None:
        pass

    def render(self, summary: dict, run=None) -> str:
        raise NotImplementedError

    def render_compare(self, comparison: dict) -> str:
        """``nnprof compare`` in this format (see :mod:`nnprof.compare`)."""
        raise ValueError(f"compare has no {self.name} format")

    def write(self, path: str, summary: dict, run=None) -> str:
        """Write atomically, so that an older file is never lost half-way."""
        return write_text(path, self.render(summary, run))


def write_text(path: str, text: str) -> str:
    """Write ``text`` at ``path`` atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


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
