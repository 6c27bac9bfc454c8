"""Where a DataLoader was built: the user's own line, which names it across runs."""
from __future__ import annotations

import os
import sys

import torch

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _installed_dirs() -> tuple:
    """The standard library's and the installed packages' folders."""
    import site
    import sysconfig
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(path)
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except (AttributeError, TypeError):  # an embedded or old-style site module
        pass
    return tuple(sorted(os.path.join(d, "") for d in dirs if d))


_INSTALLED = _installed_dirs()
_PACKAGE_MARKS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def call_site(skip_dirs=(_TORCH_DIR, _OWN_DIR)) -> tuple:
    """(file, line, function) of the user's own frame that built the loader: the
    first caller frame outside torch, nnprof, the standard library and installed
    packages (a framework building the loader for the script, as Lightning and
    accelerate do, names the script's line that called it). Without such a
    frame (a script that is itself an installed package): the first frame
    outside torch and nnprof."""
    skip = tuple(os.path.join(d, "") for d in skip_dirs)  # "nnprof/", not "nnprof_x/"
    frame = sys._getframe(1)
    fallback = None
    while frame is not None:
        fn = frame.f_code.co_filename
        if not fn.startswith(skip) and not fn.startswith("<frozen"):
            if fallback is None:
                fallback = (fn, frame.f_lineno, frame.f_code.co_name)
            if not fn.startswith(_INSTALLED) and not any(m in fn for m in _PACKAGE_MARKS):
                return fn, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return fallback or ("?", 0, "?")
