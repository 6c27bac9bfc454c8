"""The renderer interface (one per output format) and the atomic text write."""
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
        """``nnprof compare`` in this format (see :mod:`nnprof.analyses.compare`)."""
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
