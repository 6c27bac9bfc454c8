"""Renderers: ``render(summary) -> str``; they never measure nor choose where output goes.

One small family, registered here and picked by name.
"""
from __future__ import annotations

from . import json as json_renderer
from . import terminal

RENDERERS = {
    terminal.TerminalRenderer.name: terminal.TerminalRenderer,
    json_renderer.JsonRenderer.name: json_renderer.JsonRenderer,
}


def render(name: str, summary: dict, **options) -> str:
    try:
        cls = RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r} (choose from {', '.join(RENDERERS)})") from None
    return cls(**options).render(summary)
