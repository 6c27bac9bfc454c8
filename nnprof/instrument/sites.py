"""Where a DataLoader was built: the user's own line, which names it across runs."""
from __future__ import annotations

import os
import sys

import torch

from .frames import is_library_file

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
            if not is_library_file(fn):
                return fn, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back
    return fallback or ("?", 0, "?")
