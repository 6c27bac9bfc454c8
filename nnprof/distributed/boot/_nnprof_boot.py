"""The triggers of :mod:`sitecustomize` (standard library only), shared with the profiled
process itself (:func:`nnprof.distributed.follow.bootstrap_patch`), which imports this
file as ``nnprof.distributed.boot._nnprof_boot``."""
import os as _os
import sys as _sys


def make_bootstrap(original):
    """``BaseProcess._bootstrap`` profiling a multiprocessing child around its target,
    unless the target is a DataLoader worker (timed from its loader)."""

    def _bootstrap(self, *args, **kwargs):
        target = getattr(self, "_target", None)
        if getattr(target, "__module__", "") == "torch.utils.data._utils.worker":
            return original(self, *args, **kwargs)
        if "torch" not in _sys.modules:
            _watch_torch("process")
            code = original(self, *args, **kwargs)
            if "nnprof.distributed.followed" in _sys.modules:
                _sys.modules["nnprof.distributed.followed"].end_process(code)
            return code
        from nnprof.distributed.followed import run_process
        return run_process(self, original, args, kwargs)

    import functools
    functools.update_wrapper(_bootstrap, original)
    _bootstrap._nnprof_follows = True
    return _bootstrap


def arm():
    if not _os.environ.get("NNPROF_FOLLOW"):
        return
    import multiprocessing.process as _mpp

    original = _mpp.BaseProcess.__dict__["_bootstrap"]
    if getattr(original, "_nnprof_follows", False):
        return
    _mpp.BaseProcess._bootstrap = make_bootstrap(original)
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
                    from nnprof.distributed.followed import start_process
                    start_process(until)
                except Exception:
                    pass

            loader.exec_module = exec_then_follow
            return spec

    if "torch" not in _sys.modules:
        _sys.meta_path.insert(0, _TorchWatch())
