"""What the script trains: models, optimizers, schedulers, wiring, losses, metrics.

Everything here runs off the per-step hot path: at a model's or optimizer's
first appearance, during the first ``window`` optimizer steps (the wiring
probe), and on evaluation steps (confusion counts, kept on the device until
the pass ends). It never changes what the script computes.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import torch
from torch import nn

from .losses import CLASSIFICATION, FUNCTION_NAMES, LossObserver  # noqa: F401
from .activations import ActivationMeter
from .procmem import process_peak_rss
from .model import eager_submodules
from .updates import to_float
from .wiring import WiringProbe, unwrapped as _unwrapped  # noqa: F401

DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def describe_model(module: nn.Module) -> dict:
    params = list(module.parameters())
    dropout, norms = [], []
    for name, m in module.named_modules():
        if isinstance(m, DROPOUT_TYPES):
            dropout.append({"module": name or type(m).__name__, "class": type(m).__name__,
                            "p": float(getattr(m, "p", 0.0))})
        elif isinstance(m, NORM_TYPES):
            norms.append({"module": name or type(m).__name__, "class": type(m).__name__})
    cls = type(getattr(module, "_orig_mod", module)).__name__  # torch.compile's wrapper: the model
    return {"name": cls, "class": cls,
            "modules": eager_submodules(module),  # submodule calls per forward, until counted
            "parameters": int(sum(p.numel() for p in params)),
            "trainable": int(sum(p.numel() for p in params if p.requires_grad)),
            "dropout": dropout[:50], "norms": norms[:50]}


def describe_optimizer(opt) -> dict:
    groups = []
    for g in opt.param_groups:
        groups.append({"lr": to_float(g.get("lr")), "weight_decay": to_float(g.get("weight_decay", 0)),
                       "momentum": to_float(g.get("momentum")), "params": len(g["params"]),
                       "numel": sum(p.numel() for p in g["params"])})
    return {"class": type(opt).__name__, "groups": groups}


def autocast_enabled(device: str = "cuda") -> bool:
    """Whether autocast is on for ``device`` ("cuda" or "cpu"), on torch 2.1 and later."""
    try:
        return bool(torch.is_autocast_enabled(device))  # torch >= 2.4
    except TypeError:
        pass
    if device == "cpu":
        fn = getattr(torch, "is_autocast_cpu_enabled", None)
        return bool(fn()) if fn is not None else False
    return bool(torch.is_autocast_enabled()) if device == "cuda" else False


def _first_float_param(module):
    for p in module.parameters():
        if p.is_floating_point():
            return p
    return None


def precision_state(module=None) -> dict:
    """Autocast, float32 matmul settings and, for ``module``, its first floating
    parameter's dtype and device; the device capability when CUDA is already
    initialised (never initialised here). Quiet: torch's warnings about
    these settings are not passed on to the script's output."""
    with _quiet():
        return _precision_state(module)


_IGNORE_ALL = ("ignore", None, Warning, None, 0)


@contextlib.contextmanager
def _quiet():
    """Ignore the warnings raised inside, without touching what Python remembers
    of warnings already shown.

    ``warnings.catch_warnings()`` and ``simplefilter()`` bump the filters'
    version, and a version change empties every module's ``__warningregistry__``:
    a warning the script's filters show once per location would be shown again
    after each probe. An "ignore" entry put at the head of the same filter list
    and taken out again leaves the version alone ("ignore" records nothing).
    """
    filters = warnings.filters
    entry = _IGNORE_ALL
    try:
        filters.insert(0, entry)
    except Exception:  # a script that replaced the list with something odd
        yield
        return
    try:
        yield
    finally:
        for i, item in enumerate(filters):
            if item is entry:
                del filters[i]
                break


def _precision_state(module) -> dict:
    """The settings, read through the calls that do not warn where torch offers
    them (torch >= 2.9 warns about its legacy TF32 getter)."""
    out = {"autocast_cuda": autocast_enabled("cuda"), "autocast_cpu": autocast_enabled("cpu")}
    try:
        out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    except Exception:
        out["float32_matmul_precision"] = None
    matmul = torch.backends.cuda.matmul
    try:
        out["fp32_precision"] = getattr(matmul, "fp32_precision", None)  # torch >= 2.9
    except Exception:
        out["fp32_precision"] = None
    if out["fp32_precision"] is not None:
        out["allow_tf32"] = out["fp32_precision"] == "tf32"
    else:
        try:
            out["allow_tf32"] = bool(matmul.allow_tf32)
        except Exception:
            out["allow_tf32"] = None
    p = _first_float_param(module) if module is not None else None
    out["param_dtype"] = str(p.dtype).replace("torch.", "") if p is not None else None
    out["param_device"] = p.device.type if p is not None else None
    cap = None
    try:  # is_available() may warn about the driver: initialised implies available
        if torch.cuda.is_initialized():
            cap = list(torch.cuda.get_device_capability())
    except Exception:
        cap = None
    out["device_capability"] = cap
    return out


class TrainingProbe:
    """Collects what the script trains, for ``probe.json``; applies a rung's settings.

    ``rung`` (see docs/check-contract.md): unless ``as_is``, dropout is set to
    p = 0 in every model and weight decay to 0 in every optimizer group.
    """

    MAX_ITEMS = 32

    def __init__(self, write_pass, rung: Optional[dict] = None, window: int = 3) -> None:
        self.write_pass = write_pass
        self.rung = rung
        self.simplify = rung is not None and not rung.get("as_is", False)
        self.models: list = []
        self.losses: list = []
        self.optimizers: list = []
        self.schedulers: list = []
        self.wiring = WiringProbe(window)
        self.activations = ActivationMeter(self.wiring.models)
        self.own_bytes: Optional[int] = None  # nnprof's own resident bytes at the start
        self.observer: Optional[LossObserver] = None
        self.precision: Optional[dict] = None
        self.direct_forward: list = []  # classes whose forward was called directly
        self._entries: dict = {}  # id(model) -> its entry in models
        self._calls: dict = {}    # id(model) -> module calls counted in its first forwards

    def on_direct(self, name: str) -> None:
        if name not in self.direct_forward and len(self.direct_forward) < self.MAX_ITEMS:
            self.direct_forward.append(name)

    def on_module(self, module, is_loss: bool) -> None:
        if is_loss:
            if len(self.losses) < self.MAX_ITEMS:
                self.losses.append({"class": type(module).__name__})
            if next(module.parameters(), None) is None:
                return
        if len(self.models) >= self.MAX_ITEMS:
            return
        if self.simplify:
            for m in module.modules():
                if isinstance(m, DROPOUT_TYPES):
                    m.p = 0.0
        self.models.append(describe_model(module))
        self._entries[id(module)] = self.models[-1]
        self.wiring.add_model(module)

    def on_calls(self, module, n: int) -> None:
        """``n`` module calls made inside one of the first top-level calls of ``module``:
        its entry's ``modules`` becomes the mean of those counted (at first, the number
        of its submodules: a layer called at every time step calls more, an unused one
        fewer)."""
        entry = self._entries.get(id(module))
        if entry is None:
            return
        counts = self._calls.setdefault(id(module), [])
        counts.append(n)
        entry["modules"] = round(sum(counts) / len(counts))
        entry["modules_counted"] = True

    def on_forward(self, module) -> None:
        """At the first few top-level model calls: the precision they run in.

        ``autocast``: seen on at any of them; the matmul settings and the
        capability from the latest; the parameter from the first model."""
        try:
            state = precision_state(module)
        except Exception:
            return
        prev = self.precision
        if prev is None:
            self.precision = dict(state, calls=1, autocast=state["autocast_cuda"]
                                  or state["autocast_cpu"])
            return
        for k in ("float32_matmul_precision", "allow_tf32", "fp32_precision",
                  "device_capability"):
            prev[k] = state[k] if state[k] is not None else prev.get(k)
        prev["autocast_cuda"] = prev["autocast_cuda"] or state["autocast_cuda"]
        prev["autocast_cpu"] = prev["autocast_cpu"] or state["autocast_cpu"]
        prev["autocast"] = prev["autocast_cuda"] or prev["autocast_cpu"]
        prev["calls"] += 1

    def on_optimizer(self, opt) -> None:
        if self.simplify:
            for g in opt.param_groups:
                if "weight_decay" in g:
                    g["weight_decay"] = 0.0
        if len(self.optimizers) < self.MAX_ITEMS:
            self.optimizers.append(describe_optimizer(opt))
        self.wiring.add_optimizer(opt)

    def on_scheduler(self, scheduler) -> None:
        if len(self.schedulers) < self.MAX_ITEMS:
            self.schedulers.append({"class": type(scheduler).__name__})

    def make_observer(self, clock, capture) -> LossObserver:
        self.observer = LossObserver(clock, self.write_pass, capture)
        if self.rung is not None:
            self.observer.targets = []
        return self.observer

    def result(self) -> dict:
        if self.observer is not None:
            self.observer.flush()
        return {"models": self.models, "losses": self.losses, "optimizers": self.optimizers,
                "schedulers": self.schedulers, "wiring": self.wiring.result(),
                "loss_at_init": self.observer.loss_at_init() if self.observer else None,
                "rung": self.rung, "precision": self.precision,
                "targets": self.observer.targets_seen() if self.observer else None,
                "memory": held_bytes(self.wiring), "direct_forward": self.direct_forward,
                "activations": self.activations.result(),
                "process": {"peak_rss_bytes": process_peak_rss(),
                            "nnprof_bytes": self.own_bytes}}


def _nbytes(t) -> int:
    try:
        return int(t.numel()) * int(t.element_size())
    except Exception:
        return 0


def held_bytes(wiring: "WiringProbe") -> dict:
    """Bytes held by the parameters of the models and optimizers seen, by the gradients
    of the trainable ones that received one, and by the optimizers' state tensors."""
    params = {}
    for m in _unwrapped(wiring.models):
        try:
            for p in m.parameters():
                params[id(p)] = p
        except Exception:
            continue
    for o in wiring.optimizers:
        for g in getattr(o, "param_groups", []):
            for p in g.get("params", []):
                if isinstance(p, torch.Tensor):
                    params[id(p)] = p
    grads = sum(_nbytes(p) for k, p in params.items()
                if p.requires_grad and (wiring.saw_grad.get(k) or p.grad is not None))
    state, seen = 0, set()
    for o in wiring.optimizers:
        for st in getattr(o, "state", {}).values():
            for v in (st.values() if isinstance(st, dict) else []):
                if isinstance(v, torch.Tensor) and id(v) not in seen:
                    seen.add(id(v))
                    state += _nbytes(v)
    return {"parameters": sum(_nbytes(p) for p in params.values()), "gradients": grads,
            "optimizer_state": state}
