"""This process's resident memory, read without psutil: now (``/proc/self/statm``) and
its peak so far (``ru_maxrss``). nnprof's own memory is what the process adds after
``import torch`` and before the script starts; the script's peak is the process's
less that."""
from __future__ import annotations

import os
import sys
from typing import Optional

try:
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):
    _PAGE = 4096


def process_rss() -> Optional[int]:
    """This process's resident bytes now (``/proc/self/statm``; None elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except Exception:
        return None


def process_peak_rss() -> Optional[int]:
    """This process's peak resident bytes so far (``ru_maxrss``)."""
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024
    except Exception:
        return None
