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


def _nnprof_arm():
    if not _os.environ.get("NNPROF_FOLLOW"):
        return
    import multiprocessing.process as _mpp

    original = _mpp.BaseProcess.__dict__["_bootstrap"]
    if getattr(original, "_nnprof_follows", False):
        return

    def _bootstrap(self, *args, **kwargs):
        target = getattr(self, "_target", None)
        if getattr(target, "__module__", "") == "torch.utils.data._utils.worker":
            return original(self, *args, **kwargs)  # a DataLoader worker: timed by its loader
        if "torch" not in _sys.modules:
            _watch_torch("process")
            code = original(self, *args, **kwargs)
            if "nnprof.distributed.follow" in _sys.modules:
                _sys.modules["nnprof.distributed.follow"].end_process(code)
            return code
        from nnprof.distributed.follow import run_process
        return run_process(self, original, args, kwargs)

    import functools
    functools.update_wrapper(_bootstrap, original)
    _bootstrap._nnprof_follows = True
    _mpp.BaseProcess._bootstrap = _bootstrap
    argv0 = _sys.argv[0] if _sys.argv else ""
    if argv0 in ("", "-c"):
        return  # python -c: multiprocessing's own children, or a one-liner
    if _os.path.basename(argv0) == "nnprof" or _main_module() == "nnprof" \
            or argv0.endswith(_os.path.join("nnprof", "__main__.py")):
        return  # nnprof itself: it profiles what it runs
    _watch_torch("exit")


def _main_module():
    orig = getattr(_sys, "orig_argv", None) or []
    for i, tok in enumerate(orig[:-1]):
        if tok == "-m":
            return orig[i + 1]
    return None


def _watch_torch(until):
    """Start the followed run right after ``import torch`` has finished."""

    class _TorchWatch:
        def find_spec(self, name, path=None, target=None):
            if name != "torch":
                return None
            try:
                _sys.meta_path.remove(self)
            except ValueError:
                pass
            import importlib.util
            spec = importlib.util.find_spec("torch")
            loader = getattr(spec, "loader", None)
            if loader is None or not hasattr(loader, "exec_module"):
                return spec
            exec_module = loader.exec_module

            def exec_then_follow(module):
                exec_module(module)
                try:
                    from nnprof.distributed.follow import start_process
                    start_process(until)
                except Exception:
                    pass

            loader.exec_module = exec_then_follow
            return spec

    if "torch" not in _sys.modules:
        _sys.meta_path.insert(0, _TorchWatch())


def _nnprof_boot():
    here = _os.path.dirname(_os.path.abspath(__file__))
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != here]
    try:
        _nnprof_arm()
    except Exception:
        pass
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


_nnprof_boot()
