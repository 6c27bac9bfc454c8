"""Where a run directory goes: the default path (``reports/<name>-<timestamp>``) and
whether a path can hold one, said in one line."""
from __future__ import annotations

import datetime
import os
from typing import Optional


def default_out(name: str, root: str = "reports") -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{name}-{stamp}")
    path, n = base, 2
    while os.path.exists(path):
        path, n = f"{base}-{n}", n + 1
    return path


def check_writable(path: str) -> Optional[str]:
    """None if ``path`` can hold a run, else a one-line reason."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        return f"cannot create output directory {path}: {exc.strerror or exc}"
    if not os.path.isdir(path):
        return f"output path is not a directory: {path}"
    probe = os.path.join(path, ".nnprof-write-test")
    try:
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        return f"output directory is not writable: {path}: {exc.strerror or exc}"
    return None
