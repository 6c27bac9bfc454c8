"""The arithmetic of an optimizer's update against the float resolution of the weights
it changes, for the wiring probe (:mod:`nnprof.instrument.wiring`).

Floating point rounds ``w + u`` back to ``w`` when ``|u|`` is below about half the
spacing of the format at ``w``, a spacing between ``eps·|w|/2`` and ``eps·|w|`` (``eps``
= ``torch.finfo(dtype).eps``). :func:`asked_update` reads the element-wise update an
optimizer asked for from the gradient and its state; :func:`resolution_ratio` sets it
against ``eps·|w|``; :func:`fingerprint` and :func:`same` tell whether a parameter kept
its value without holding a copy of it.
"""
from __future__ import annotations

from typing import Optional

import torch

SAMPLED_ELEMENTS = 1024  # elements of each parameter kept as they were (the rest: norms)
# The spacing of floats at w lies between eps·|w|/2 and eps·|w|, and w + u rounds back
# to w only when |u| is below half of it. An unmoved parameter whose asked update stayed
# within twice eps·|w| is explained by rounding (the slack covers the spacing's range).
RESOLUTION_SLACK = 2.0


def to_float(v, default=None):
    """``float(v)``, or ``default`` for None and what does not convert."""
    if v is None:
        return default
    try:
        return float(v)
    except (TypeError, ValueError, RuntimeError):
        return default


def group_lr(group) -> Optional[float]:
    """A param group's learning rate (a float or a tensor), or None."""
    return to_float(group.get("lr"))


def asked_update(opt, group, p) -> tuple:
    """``(|u|, basis)``: the element-wise size of the update the optimizer asked for at
    the step just taken (read after it, from the gradient and the optimizer's state),
    before rounding; ``(None, reason)`` where it cannot be read.

    - Adam-like state (``exp_avg``, ``exp_avg_sq``): ``lr·|m̂|/(sqrt(v̂)+eps)`` with
      bias corrections at the state's step, plus ``lr·wd·|w|`` when weight decay is
      decoupled (AdamW);
    - a momentum buffer (SGD): ``lr·|buf|``; Nesterov ``lr·|g + wd·w + m·buf|``;
    - ``square_avg`` (RMSprop) or ``sum`` (Adagrad): ``lr·|g|/(sqrt(acc)+eps)``;
    - no state: plain gradient descent, ``lr·|g + wd·w|``.
    """
    lr = group_lr(group)
    if lr is None:
        return None, "no readable learning rate"
    g = p.grad
    if g is None:
        return torch.zeros((), device=p.device), "no gradient"
    if g.is_sparse or g.layout != torch.strided:
        return None, "a sparse gradient"
    try:
        state = opt.state.get(p) or {}
    except Exception:
        state = {}
    w = p.detach().float()
    gf = g.detach().float()
    wd = to_float(group.get("weight_decay"), 0.0)
    eps = to_float(group.get("eps"), 1e-8)
    if "exp_avg" in state and ("exp_avg_sq" in state or "max_exp_avg_sq" in state):
        t = max(to_float(state.get("step"), 1.0), 1.0)
        b1, b2 = group.get("betas") or (0.9, 0.999)
        b1, b2 = to_float(b1, 0.9), to_float(b2, 0.999)
        v = state.get("max_exp_avg_sq") if group.get("amsgrad") else None
        v = state.get("exp_avg_sq") if v is None else v
        m = state["exp_avg"].detach().float().abs() / (1 - b1 ** t)
        d = m / ((v.detach().float() / (1 - b2 ** t)).sqrt() + eps)
        if group.get("decoupled_weight_decay") or "AdamW" in type(opt).__name__:
            d = d + wd * w.abs()
        return lr * d, "the optimizer's state (Adam form)"
    buf = state.get("momentum_buffer")
    if isinstance(buf, torch.Tensor):
        b = buf.detach().float()
        if group.get("nesterov"):  # the step is g + wd·w + m·buf, buf already updated
            b = gf + wd * w + to_float(group.get("momentum"), 0.0) * b
        return lr * b.abs(), "the optimizer's momentum buffer"
    acc = state.get("square_avg", state.get("sum"))
    if isinstance(acc, torch.Tensor) and "acc_delta" not in state:
        return lr * (gf + wd * w).abs() / (acc.detach().float().sqrt() + eps), \
            "the optimizer's squared-gradient average"
    if not any(isinstance(v, torch.Tensor) and v.numel() > 1 for v in state.values()):
        return lr * (gf + wd * w).abs(), "learning rate x gradient"
    return None, f"{type(opt).__name__}'s update is not of a form nnprof reads"


def fingerprint(p) -> Optional[tuple]:
    """What tells a parameter's value apart from any update of it, without a copy: its L1
    and L2 norms in float64 (no float64 copy is made) and ``SAMPLED_ELEMENTS`` of its
    elements, evenly spaced. An update that changes any element changes the norms."""
    try:
        w = p.detach()
        flat = w.reshape(-1)
        step = max(1, flat.numel() // SAMPLED_ELEMENTS)
        return (torch.linalg.vector_norm(w, 1, dtype=torch.float64),
                torch.linalg.vector_norm(w, 2, dtype=torch.float64),
                flat[::step][:SAMPLED_ELEMENTS].clone())
    except Exception:  # a parameter type without these operations: not checked
        return None


def same(snap, p) -> bool:
    """Whether ``p`` still has the value ``snap`` was taken of: a copy (compared exactly)
    or a fingerprint. A different fingerprint is a different value; the same fingerprint
    can miss a change of elements far below the others in magnitude (the float64 norms do
    not register it), which the exact copy taken after the first step then catches."""
    if isinstance(snap, torch.Tensor):
        return bool(torch.equal(snap, p.detach()))
    now = fingerprint(p)
    if now is None:
        return False
    return bool(torch.equal(snap[0], now[0]) and torch.equal(snap[1], now[1])
                and torch.equal(snap[2], now[2]))


def resolution_ratio(u, p) -> float:
    """The largest ``|u| / (eps·|w|)`` over the elements that were asked to move
    (``inf`` where a zero weight was asked to move)."""
    w = p.detach()
    res = torch.finfo(w.dtype).eps * w.float().abs()
    moved = u > 0
    if not bool(moved.any()):
        return 0.0
    return float((u[moved] / res[moved]).max())
