"""Python runs this at the start of every process of a job that nnprof profiles (its
folder is first on ``PYTHONPATH`` while ``NNPROF_FOLLOW`` says where the job's run is).

It imports only the standard library: a process that never imports torch pays nothing
but this file. It arms two triggers, and nnprof (:mod:`nnprof.distributed.follow`) is
imported only when one fires:

* a ``multiprocessing`` child (spawn, forkserver or fork: ``mp.spawn``, Lightning's
  ``ddp_spawn``, Hogwild ``mp.Process``) is profiled around its target, unless the
  target is a DataLoader worker (nnprof times those from their parent);
* any other Python process running a script or a module (a rank that Lightning,
  accelerate or torchrun starts by running Python again, the user's own ``subprocess``)
  is profiled from the moment it has imported torch until it exits.

Then it takes itself off ``sys.path`` and runs the ``sitecustomize`` it shadows, if any.
"""
import os as _os
import sys as _sys


def _boot():
    here = _os.path.dirname(_os.path.abspath(__file__))
    try:
        import _nnprof_boot  # beside this file, on sys.path until just below
        _nnprof_boot.arm()
    except Exception:
        pass
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != here]
    # the sitecustomize this one shadows (a distribution's, a virtualenv's)
    ours = _sys.modules.pop("sitecustomize", None)
    try:
        import importlib
        importlib.import_module("sitecustomize")
    except ImportError:
        if ours is not None:
            _sys.modules["sitecustomize"] = ours
    except Exception as exc:  # as site.py reports a failing sitecustomize
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
              f"{type(exc).__name__}: {exc}", file=_sys.stderr)


_boot()
