"""What the script's loss calls tell: the first classification loss (loss at
init), eval losses and confusion counts, the loss a scaled backward tensor
stands for, and in overfit rungs the classes of the training targets.

Called after each outermost loss call (``model.install``'s ``observer``). Under
gradients it keeps references only (no value is read, no device sync); eval
passes count on the device until the pass ends.
"""
from __future__ import annotations

import math
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
        self.n_passes = 0
        # (grad_fn, detached output, reduction) of the loss calls since the last
        # backward; holding the node keeps its graph until that backward (or until
        # RECENT_LOSSES newer losses replace it), as the script's own variable does
        self.recent: list = []
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
        loss. A sum of several losses, or any other operation, keeps ``t``; so
        does a ``reduction='sum'`` loss, whose scaled value (a mean over a
        count) is the one worth plotting.
        """
        recent = self.recent
        if not recent:
            return t
        self.recent = []
        node = getattr(t, "grad_fn", None)
        for hops in range(MAX_SCALE_HOPS + 1):
            if node is None:
                return t
            for fn, out, reduction in recent:
                if fn is node:
                    return t if hops == 0 or reduction == "sum" else out
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
                recent = self.recent
                if len(recent) >= RECENT_LOSSES:
                    del recent[0]
                recent.append((fn, result.detach(), reduction))
            if self.targets is not None and len(self.targets) < WATCH_TARGETS:
                self._keep_targets(name, args, kwargs)
            if self.init_info is not None:
                return
        task = CLASSIFICATION.get(name)
        if grad:
            if task is not None and self.clock.train_steps == 0:
                self._init(name, task, args, kwargs, result)
            return
        o = self.clock.open
        if o is not None and isinstance(result, torch.Tensor) and result.numel() == 1:
            if reduction == "sum":  # per sample, comparable with the train loss
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

    def _init(self, name, task, args, kwargs, result) -> None:
        x, _ = self._io(args, kwargs)
        if not isinstance(x, torch.Tensor):
            return
        classes = 2 if task == "binary" else (int(x.shape[1]) if x.dim() > 1 else int(x.shape[0]))
        self.init_info = {"function": FUNCTION_NAMES.get(name, name), "classes": classes}
        if isinstance(result, torch.Tensor) and result.numel() == 1:
            self.init_ref = result.detach()

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
