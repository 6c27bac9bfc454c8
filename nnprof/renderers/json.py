"""The summary as JSON text."""
from __future__ import annotations

import json


class JsonRenderer:
    name = "json"
    binary = False

    def __init__(self, **_options) -> None:
        pass

    def render(self, summary: dict) -> str:
        return json.dumps(summary, indent=2, allow_nan=False) + "\n"
