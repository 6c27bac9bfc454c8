"""Whose code is this frame's: the script's own, or an installed package's."""
from __future__ import annotations

import os
import sys
import sysconfig


def _library_dirs() -> tuple:
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            path = sysconfig.get_paths().get(key)
        except Exception:
            path = None
        if path:
            dirs.add(os.path.realpath(path) + os.sep)
            dirs.add(os.path.abspath(path) + os.sep)
    for path in sys.path:
        if path and os.path.basename(path.rstrip(os.sep)) in ("site-packages", "dist-packages"):
            dirs.add(os.path.abspath(path) + os.sep)
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_library_file(filename: str) -> bool:
    """True for the standard library, installed packages (torch, Lightning,
    transformers, accelerate, ...), nnprof itself and frozen modules; code typed
    in (``<stdin>``, a notebook cell) is the user's."""
    if not filename or filename.startswith("<frozen"):
        return True
    if "site-packages" + os.sep in filename or "dist-packages" + os.sep in filename:
        return True
    return filename.startswith(_OWN_DIR) or filename.startswith(_LIBRARY_DIRS)


class CodeOwners:
    """``library(code)``: is this code object a library's? Cached per code object."""

    def __init__(self) -> None:
        self._known: dict = {}

    def library(self, code) -> bool:
        known = self._known.get(code)
        if known is None:
            known = self._known[code] = is_library_file(code.co_filename)
        return known
