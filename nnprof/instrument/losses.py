"""What the script's loss calls tell: the first classification loss (loss at
init), eval losses and confusion counts, the loss a scaled backward tensor
stands for, and in overfit rungs the classes of the training targets.

Called after each outermost loss call (``model.install``'s ``observer``). Under
gradients it keeps references only (no value is read, no device sync); eval
passes count on the device until the pass ends.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import torch

CLASSIFICATION = {
    "cross_entropy": "multiclass", "CrossEntropyLoss": "multiclass",
    "nll_loss": "multiclass", "NLLLoss": "multiclass",
    "binary_cross_entropy_with_logits": "binary", "BCEWithLogitsLoss": "binary",
}
FUNCTION_NAMES = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss",
                  "BCEWithLogitsLoss": "binary_cross_entropy_with_logits"}
MAX_CLASSES = 1000          # no confusion matrix beyond this many classes

# autograd nodes of ``x * c``, ``x / c`` and a dtype cast: a constant scale
SCALE_NODES = frozenset(("MulBackward0", "MulBackward1", "DivBackward0", "DivBackward1",
                         "ToCopyBackward0"))
MAX_SCALE_HOPS = 4
RECENT_LOSSES = 3
WATCH_TARGETS = 32  # classification train losses whose targets an overfit rung keeps
INDEX_TARGETS = {"cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"}


def _count_of(name: str, args, kwargs):
    """What a ``reduction='sum'`` loss summed over: (target, ignore_index), or None."""
    y = args[1] if len(args) > 1 else kwargs.get("target")
    if not isinstance(y, torch.Tensor):
        return None
    return y, kwargs.get("ignore_index", -100) if name in INDEX_TARGETS else None


def _kept(result):
    """A loss output's value as it is now, kept apart from later in-place changes: a
    float for a CPU tensor (``item()``: nothing to wait for), else a copy (queued on the
    device, nothing read)."""
    if result.is_cpu:
        try:
            return result.item()
        except (RuntimeError, ValueError, TypeError):  # a tensor without data (fake, meta)
            pass
    return result.detach().clone()


def _per_element(out, count, t):
    """``out`` (a summed loss: a tensor, or a float kept on the CPU) divided by the
    number of targets that count, or ``t``."""
    if count is None:
        return t
    y, ignore = count
    try:
        with torch.no_grad():
            if ignore is not None and not y.is_floating_point():
                n = (y != ignore).sum().clamp(min=1)  # a device tensor: no sync
                if isinstance(out, float):  # a CPU loss: its targets are on the CPU
                    return out / float(n)
                return out / n.to(out.dtype)
            n = y.numel() // y.shape[1] if ignore is not None and y.dim() > 1 else y.numel()
            return out / max(1, n)
    except (RuntimeError, IndexError, TypeError):
        return t


class LossObserver:
    """Looks at loss calls: the first classification loss, eval losses and metrics,
    and the train losses that a backward tensor may scale (:meth:`unscaled`)."""

    def __init__(self, clock, write_pass, capture) -> None:
        self.clock = clock
        self.write_pass = write_pass
        self.capture = capture
        self.init_info: Optional[dict] = None
        self.init_ref = None
        self.pass_key: Optional[int] = None
        self.pass_info: Optional[dict] = None
        self.pass_counts = None
        self.pass_last_ns = 0  # when the open pass last counted (perf_counter_ns)
        self.n_passes = 0
        # (grad_fn, detached output, reduction, what a summed loss counted) of the
        # loss calls since the last backward; holding the node keeps its graph until
        # that backward (or until RECENT_LOSSES newer losses replace it), as the
        # script's own variable does
        self.recent: list = []
        # the train loss calls' reduction was 'sum': the recorded train losses are sums,
        # and an eval sum is kept as one (a VAE), not divided per sample (mnist's test)
        self.train_sum = False
        # in overfit rungs: the targets of the first train losses (whether the few
        # examples span several classes), else None
        self.targets: Optional[list] = None

    def unscaled(self, t):
        """The loss output that the backward tensor ``t`` scales by a constant,
        or ``t`` itself.

        Rule, from the graph alone (no value is read): walk from ``t.grad_fn``
        through at most MAX_SCALE_HOPS nodes in SCALE_NODES that have a single
        input needing a gradient (the other factor is a constant: a Python
        number, the accumulation count, a GradScaler's scale); when the walk
        reaches the ``grad_fn`` of a recent loss output, that output is the
        loss, as the loss function returned it: a copy taken at the call, so that
        an in-place division (``loss /= accum_steps``) does not change it. A sum of several losses, or any other operation, keeps ``t``.

        A ``reduction='sum'`` output that is scaled (divided by a count, as
        Hugging Face models do with ``num_items_in_batch``, the tokens of all
        the micro-batches of an accumulation window) stands for its mean over
        its own elements: the sum divided by the targets that count (class
        indices other than ``ignore_index``; else the target's elements, one per
        row for class probabilities). That division is queued on the device;
        nothing is read.
        """
        recent = self.recent
        if not recent:
            return t
        self.recent = []
        node = getattr(t, "grad_fn", None)
        for hops in range(MAX_SCALE_HOPS + 1):
            if node is None:
                return t
            for fn, out, reduction, count in recent:
                if fn is node:
                    if hops == 0:
                        return out  # the value returned, whatever was done to it since
                    return out if reduction != "sum" else _per_element(out, count, t)
            if type(node).__name__ not in SCALE_NODES:
                return t
            nxt = None
            for f, _ in node.next_functions:
                if f is not None:
                    if nxt is not None:
                        return t  # two inputs need a gradient: not a constant scale
                    nxt = f
            node = nxt
        return t

    def __call__(self, name: str, args, kwargs, result, reduction=None) -> None:
        grad = torch.is_grad_enabled()
        if grad:
            fn = getattr(result, "grad_fn", None)
            if fn is not None and result.numel() == 1:
                self.train_sum = reduction == "sum"
                recent = self.recent
                if len(recent) >= RECENT_LOSSES:
                    del recent[0]
                # ``loss /= k`` in place, as timm does for accumulation, must not change
                # the loss recorded: on the CPU its value now (a float, no sync to wait
                # for, a tenth of a copy's cost), elsewhere a copy (queued on the
                # device, nothing read)
                recent.append((fn, _kept(result), reduction,
                               _count_of(name, args, kwargs) if reduction == "sum" else None))
            if self.targets is not None and len(self.targets) < WATCH_TARGETS:
                self._keep_targets(name, args, kwargs)
            if self.init_info is not None:
                return
        task = CLASSIFICATION.get(name)
        if grad:
            if task is not None and self.clock.train_steps == 0:
                self._init(name, task, args, kwargs, result, reduction)
            return
        o = self.clock.open
        if o is not None and isinstance(result, torch.Tensor) and result.numel() == 1:
            if reduction == "sum" and not self.train_sum:  # per sample, as the train loss
                x, _ = self._io(args, kwargs)
                n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 1
                result = result / max(1, n)
            o.eval_loss_ref = self.capture(result)
        if task is not None:
            self._count(task, args, kwargs)

    def _io(self, args, kwargs):
        x = args[0] if args else kwargs.get("input")
        y = args[1] if len(args) > 1 else kwargs.get("target")
        return x, y

    def _keep_targets(self, name, args, kwargs) -> None:
        task = CLASSIFICATION.get(name)
        x, y = self._io(args, kwargs)
        if task is None or not isinstance(y, torch.Tensor):
            return
        with torch.no_grad():
            if task == "binary":
                y = y > 0.5
            elif y.is_floating_point() and isinstance(x, torch.Tensor) and \
                    y.shape == x.shape and y.dim() > 1:
                y = y.argmax(1)  # one-hot or soft targets
            self.targets.append(y.detach().flatten())

    def targets_seen(self) -> Optional[dict]:
        """{"losses", "classes"}: how many train losses' targets were kept and how
        many distinct classes they hold (None: not watched, or no such loss)."""
        if not self.targets:
            return None
        try:
            classes = int(torch.cat([t.long().cpu() for t in self.targets]).unique().numel())
        except (RuntimeError, ValueError):
            return None
        return {"losses": len(self.targets), "classes": classes}

    def _init(self, name, task, args, kwargs, result, reduction=None) -> None:
        x, _ = self._io(args, kwargs)
        if not isinstance(x, torch.Tensor):
            return
        classes = 2 if task == "binary" else (int(x.shape[1]) if x.dim() > 1 else int(x.shape[0]))
        self.init_info = {"function": FUNCTION_NAMES.get(name, name), "classes": classes}
        if isinstance(result, torch.Tensor) and result.numel() == 1:
            self.init_ref = result.detach()
            if reduction == "sum":  # a summed loss: its mean, comparable with ln C
                self.init_ref = _per_element(self.init_ref, _count_of(name, args, kwargs),
                                             self.init_ref)

    def _count(self, task, args, kwargs) -> None:
        x, y = self._io(args, kwargs)
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            return
        try:
            with torch.no_grad():
                if task == "binary":
                    c = 2
                    pred = (x > 0).long().flatten()
                    true = (y > 0.5).long().flatten()
                else:
                    if x.dim() < 2:
                        return
                    c = int(x.shape[1])
                    if c > MAX_CLASSES:
                        return
                    pred = x.argmax(1).flatten()
                    true = (y.argmax(1) if y.dtype.is_floating_point and y.shape == x.shape
                            else y).long().flatten()
                    keep = (true >= 0) & (true < c)
                    pred, true = pred[keep], true[keep]
                if pred.numel() != true.numel():
                    return
                counts = torch.bincount(true * c + pred, minlength=c * c)
        except (RuntimeError, IndexError, ValueError):
            return
        key = self.clock.train_steps
        if self.pass_key != key or self.pass_counts is None or \
                self.pass_counts.numel() != c * c:
            self.flush()
            self.pass_key = key
            self.pass_info = {"task": "binary" if task == "binary" else "multiclass",
                              "classes": c}
            self.pass_counts = counts
        else:
            self.pass_counts += counts
        self.pass_last_ns = time.perf_counter_ns()

    def flush(self) -> None:
        if self.pass_counts is None:
            return
        c = self.pass_info["classes"]
        flat = self.pass_counts.cpu().tolist()
        self.write_pass(dict(self.pass_info, **{
            "pass": self.n_passes, "after_train_steps": self.pass_key,
            "confusion": [flat[i * c:(i + 1) * c] for i in range(c)]}))
        self.n_passes += 1
        self.pass_counts = None

    def loss_at_init(self) -> Optional[dict]:
        if self.init_info is None:
            return None
        first = None
        if self.init_ref is not None:
            try:
                first = float(self.init_ref)
            except (RuntimeError, ValueError):
                first = None
        if first is not None and not math.isfinite(first):
            first = None
        return dict(self.init_info, first_loss=first)
