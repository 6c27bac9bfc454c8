"""The summary as JSON text."""
from __future__ import annotations

import json

from .base import Renderer


class JsonRenderer(Renderer):
    name = "json"

    def render(self, summary: dict, run=None) -> str:
        return json.dumps(summary, indent=2, allow_nan=False) + "\n"

    def render_compare(self, comparison: dict) -> str:
        return self.render(comparison)
