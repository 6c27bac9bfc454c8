"""What a sweep leaves in its directory as it goes: ``sweep.json`` and
``report.html``, each written atomically, so a report already written is never lost."""
from __future__ import annotations

import os


def write_outputs(out: str, record: dict, notices: list) -> None:
    from ..renderers import write_text
    from ..run import write_json
    from ..rundir.files import json_safe as _clean
    try:
        write_json(os.path.join(out, "sweep.json"), _clean(record))
    except OSError as exc:
        _notice(notices, f"cannot write sweep.json: {exc.strerror or exc}")
        return
    try:
        from ..renderers.sweeppage import render_sweep_html
        write_text(os.path.join(out, "report.html"), render_sweep_html(_clean(record)))
    except Exception as exc:  # the record stands without its page
        _notice(notices, f"report.html not written: {exc.__class__.__name__}: {exc}")


def _notice(notices: list, text: str) -> None:
    if text not in notices:
        notices.append(text)
