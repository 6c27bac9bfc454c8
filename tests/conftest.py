"""Shared fixtures: run the real CLI in a subprocess; assert nothing is left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import dataloader as dl_module
from torch.utils.data._utils import fetch as fetch_module

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _hook_state():
    import multiprocessing.process as mp_process
    from torch.optim import optimizer as optim_module
    return (
        mp_process.BaseProcess.__dict__["_bootstrap"],
        os.environ.get("NNPROF_FOLLOW"), os.environ.get("PYTHONPATH"),
        torch.nn.Module.__dict__["__call__"],
        torch.nn.Module.__dict__["zero_grad"],
        torch.Tensor.__dict__["backward"],
        torch.autograd.backward,
        torch.autograd.grad,
        torch.optim.Optimizer.__dict__["zero_grad"],
        F.cross_entropy,
        F.mse_loss,
        DataLoader.__dict__["__iter__"],
        DataLoader.__dict__["__init__"],
        DataLoader.__dict__["_get_iterator"],
        dl_module._BaseDataLoaderIter.__dict__["__next__"],
        fetch_module._MapDatasetFetcher.__dict__["fetch"],
        fetch_module._IterableDatasetFetcher.__dict__["fetch"],
        len(optim_module._global_optimizer_pre_hooks),
        len(optim_module._global_optimizer_post_hooks),
    )


def pytest_configure(config):
    """A suite started in the background of a non-interactive shell inherits SIGINT
    ignored, and so would every process it starts (no KeyboardInterrupt in them: the
    Ctrl-C tests could not pass). Python's own handler instead: a child gets the default."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every test must leave no hook, patch or thread of ours behind."""
    before = _hook_state()
    threads = set(threading.enumerate())
    yield
    from nnprof.instrument import active
    assert active.current() is None, "instrumentation still active"
    assert _hook_state() == before, "a patch or hook was left installed"
    extra = [t for t in threading.enumerate() if t not in threads and t.is_alive()
             and t.name.startswith("nnprof")]
    assert not extra, f"threads left running: {extra}"


def run_cli(args, cwd=None, timeout=180, module=False, env=None, input=None):
    """Run ``nnprof ARGS`` (or ``python -m nnprof ARGS``) in a subprocess."""
    exe = [sys.executable, "-m", "nnprof"] if module else [
        str(Path(sys.executable).parent / "nnprof")]
    if not module and not Path(exe[0]).exists():
        exe = [sys.executable, "-m", "nnprof"]
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONHASHSEED", "0")
    full_env.pop("PYTHONWARNINGS", None)
    if env:
        full_env.update(env)
    return subprocess.run(exe + [str(a) for a in args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env, input=input)


def run_python(args, cwd=None, timeout=180, env=None):
    """Run the same script under plain python, for transparency comparisons."""
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONHASHSEED", "0")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def processes_naming(path) -> list:
    """Processes (other than this one) whose command line names ``path``."""
    import psutil
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(path) in cmd and p.pid != os.getpid():
            found.append(p)
    return found


def read_summary(run_dir) -> dict:
    with open(Path(run_dir) / "summary.json") as fh:
        return json.load(fh)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def scripts():
    return SCRIPTS
