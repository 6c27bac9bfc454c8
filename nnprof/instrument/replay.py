"""Replay: the overfit rungs of ``nnprof check`` for a script that makes its batches by
hand (no DataLoader: slices of a tensor, a ``get_batch()`` over a memmap, an RL buffer).

In the rung's run, the tensors of the first training batch are kept as they enter the
model (the outermost forward's tensor arguments, positional and keyword, cut to the
first N rows along the batch dimension), together with the target handed to the loss
function when the loss is computed outside the model; every later train forward gets
those same tensors instead of the script's, and every loss call outside the model the
kept target. When N exceeds the batch size B, the first ceil(N / B) train batches are
kept (N rows in all) and replayed in turn. Evaluation (gradients off, or the model in
``eval()`` mode) keeps the script's own data.

Replay stops the run, with its reason in ``probe.json`` (``replay``), where it cannot
be done safely: an input that is a container of tensors or no tensor at all, tensors
whose first dimensions disagree, a later batch with another structure or other
trailing dimensions, a loss target whose first dimension is no multiple of the batch
size, or a loss that no loss function computed (``((out - y) ** 2).mean()``: its target
is invisible). The checks run once per train forward, on shapes only: no value is read.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

PASS_THROUGH = (type(None), bool, int, float, str, torch.dtype, torch.device)


def _shape(t) -> tuple:
    return tuple(t.shape)


def _describe(key) -> str:
    return f"argument {key}" if isinstance(key, int) else f"{key!r}"


def _holds_tensor(v, depth: int = 0) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if depth > 3:
        return False
    if isinstance(v, dict):
        return any(_holds_tensor(x, depth + 1) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_holds_tensor(x, depth + 1) for x in v[:64])
    return False


def _has_own_loss(out) -> bool:
    """The model returned its loss: a scalar tensor, or an output with a ``loss``
    (a dict, a Hugging Face ``ModelOutput``, a tuple holding the scalar)."""
    def scalar(t) -> bool:
        return isinstance(t, torch.Tensor) and t.numel() == 1 and t.is_floating_point()
    if isinstance(out, torch.Tensor):
        return scalar(out)
    if isinstance(out, dict):
        return scalar(out.get("loss"))
    if isinstance(out, (list, tuple)):
        return any(scalar(t) for t in out[:8])
    return scalar(getattr(out, "loss", None))


class Replay:
    """The tensors of the first train batch(es), fed again on every train step.

    ``examples``: N, the rows kept in all. ``stop(reason)`` ends the run when replay
    turns out impossible (the clock's stop, at the next step boundary).
    """

    def __init__(self, examples: int, stop=None) -> None:
        self.examples = max(1, int(examples))
        self.stop = stop
        self.model_id: Optional[int] = None
        self.batch_size: Optional[int] = None
        self.kept: list = []          # per kept batch: (args, kwargs, rows)
        self.targets: list = []       # per kept batch: the loss target, or None
        self.target_rows: Optional[int] = None  # target rows per input row (k)
        self.layout = None            # (positional kinds, keyword kinds, trailing shapes)
        self.rows_kept = 0
        self.forwards = 0             # train forwards of the model seen
        self.current = 0              # the kept batch the latest forward was given
        self.own_batch = 0            # the script's own first dimension at that forward
        self.loss_inside: Optional[bool] = None
        self.outer_losses = 0         # loss calls outside the model since that forward
        self.replayed = 0
        self.reason: Optional[str] = None

    # -- hooks ---------------------------------------------------------------
    def inputs(self, module, args: tuple, kwargs: dict):
        """At an outermost forward under gradients: the arguments it runs with."""
        if self.reason is not None or not module.training:
            return args, kwargs
        if self.model_id is None:
            self.model_id = id(module)
        elif id(module) != self.model_id:
            return args, kwargs  # another model (a GAN's second net): its own data
        if self.forwards and self.loss_inside is False and not self.outer_losses:
            return self._fail("no loss function received the model's output in a train "
                              "step (a loss computed by hand, such as ((out - y) ** 2)."
                              "mean()): its target cannot be replayed", args, kwargs)
        layout, rows, why = self._layout(args, kwargs)
        if why is not None:
            return self._fail(why, args, kwargs)
        if self.layout is None:
            self.layout = layout
            self.batch_size = rows
        elif layout != self.layout:
            return self._fail(self._changed(layout), args, kwargs)
        self.own_batch = rows
        self.outer_losses = 0
        n = self.forwards
        self.forwards += 1
        if self.rows_kept < self.examples:  # still keeping the first batches
            take = min(rows, self.examples - self.rows_kept)
            a = tuple(self._cut(v, take) for v in args)
            kw = {k: self._cut(v, take) for k, v in kwargs.items()}
            self.kept.append((a, kw, take))
            self.targets.append(None)
            self.rows_kept += take
            self.current = len(self.kept) - 1
            return a, kw
        self.current = n % len(self.kept)
        self.replayed += 1
        a, kw, _ = self.kept[self.current]
        return a, dict(kw)

    def output(self, out) -> None:
        """After the first train forward: does the model compute its own loss?"""
        if not self.loss_inside and self.forwards == 1 and self.reason is None:
            self.loss_inside = _has_own_loss(out)

    def loss_call(self, args: tuple, kwargs: dict, inside: bool):
        """At a loss call under gradients (``inside``: within the model's forward): the
        arguments it runs with. Outside the model, the kept target for the batch the
        latest forward was given (kept from the script's own while the first batches
        are kept) replaces the script's."""
        if self.reason is not None or not self.forwards:
            return args, kwargs
        if inside:
            self.loss_inside = True  # the model computes its loss from replayed inputs
            return args, kwargs
        self.outer_losses += 1
        if len(args) > 1:
            y, where = args[1], 1
        elif "target" in kwargs:
            y, where = kwargs["target"], "target"
        else:
            return args, kwargs
        if not isinstance(y, torch.Tensor) or y.dim() == 0:
            return args, kwargs
        i = self.current
        kept = self.targets[i] if i < len(self.targets) else None
        if kept is None:
            own = self.own_batch
            if not own or y.shape[0] % own:
                self._fail(f"the loss target's first dimension ({y.shape[0]}) is no "
                           f"multiple of the batch's ({own}): its rows cannot be matched "
                           "to the replayed examples", args, kwargs)
                return args, kwargs
            k = y.shape[0] // own
            if self.target_rows is None:
                self.target_rows = k
            rows = self.kept[i][2]
            kept = self.targets[i] = y.detach()[:rows * k].clone()
        if where == 1:
            return (args[0], kept) + tuple(args[2:]), kwargs
        return args, dict(kwargs, target=kept)

    # -- helpers --------------------------------------------------------------
    def _layout(self, args, kwargs):
        """(layout, first dimension, None) or (None, None, why replay is unsafe)."""
        kinds, shapes, firsts = [], [], []
        items = [(i, v) for i, v in enumerate(args)] + sorted(kwargs.items(),
                                                            key=lambda kv: kv[0])
        for key, v in items:
            if isinstance(v, torch.Tensor):
                if v.dim() == 0:
                    return None, None, (f"the model's input {_describe(key)} is a "
                                        "0-d tensor: no batch dimension to cut")
                kinds.append((key, "tensor"))
                shapes.append(_shape(v)[1:])
                firsts.append((key, v.shape[0]))
            elif isinstance(v, PASS_THROUGH) or not _holds_tensor(v):
                kinds.append((key, "other"))
            else:
                return None, None, (f"the model's input {_describe(key)} is a "
                                    f"{type(v).__name__} holding tensors, not a tensor: "
                                    "replay cuts tensors along their first dimension only")
        if not firsts:
            return None, None, "the model's forward received no tensor"
        sizes = {b for _, b in firsts}
        if len(sizes) > 1:
            listed = ", ".join(f"{_describe(k)}: {b}" for k, b in firsts[:4])
            return None, None, (f"the model's tensor inputs disagree on their first "
                                f"dimension ({listed}): no common batch dimension to cut")
        return (tuple(kinds), tuple(shapes)), firsts[0][1], None

    def _changed(self, layout) -> str:
        was_kinds, was_shapes = self.layout
        kinds, shapes = layout
        if kinds != was_kinds:
            return ("the batch changes structure between train steps (other arguments "
                    "reach the model): one batch cannot stand for the others")
        for (key, _), a, b in zip([k for k in kinds if k[1] == "tensor"], was_shapes, shapes):
            if a != b:
                return (f"the batch changes shape between train steps ({_describe(key)}: "
                        f"(B, {', '.join(map(str, a))}) then (B, {', '.join(map(str, b))})"
                        "): a replayed batch may not fit what the script does with its own")
        return "the batch changes shape between train steps"

    @staticmethod
    def _cut(v, rows: int):
        if isinstance(v, torch.Tensor):
            return v.detach()[:rows].clone().requires_grad_(v.requires_grad)
        return v

    def _fail(self, reason: str, args, kwargs):
        if self.reason is None:
            self.reason = reason
            if self.stop is not None:
                self.stop()
        return args, kwargs

    def result(self) -> dict:
        """``probe.json``'s ``replay``: what was kept and replayed, or why not."""
        return {"examples": self.examples, "batch_size": self.batch_size,
                "batches": len(self.kept), "rows": self.rows_kept,
                "batches_needed": (math.ceil(self.examples / self.batch_size)
                                   if self.batch_size else None),
                "loss": (None if self.loss_inside is None else
                         "model" if self.loss_inside else "loss function"),
                "target_kept": any(t is not None for t in self.targets),
                "train_forwards": self.forwards, "replayed": self.replayed,
                "ok": self.reason is None and self.forwards > 0, "reason": self.reason}
