"""The rung after overfitting: on the script's full training data, does the validation
loss fall (the model generalises) or only the training loss (it memorises)?"""
from __future__ import annotations

import math
from typing import Optional

from . import Finding
from .metrics import downsample

MARGIN = 0.05          # a change of at least 5% of the first value is a clear move
MAX_CURVE_POINTS = 200


def _finite(values) -> list:
    out = []
    for v in values or []:
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append(v)
    return out


def ends(losses: list, k: int) -> tuple:
    """(the first, the mean of the last ``k`` after it) of the finite ``losses``, or
    (None, None): a rung's training loss at its start and at its end, as the overfit
    rule reads them (the last alone when there is one)."""
    vals = _finite(losses)
    if not vals:
        return None, None
    tail = vals[max(1, len(vals) - max(1, k)):] or vals[-1:]
    return vals[0], sum(tail) / len(tail)


def _change(first: Optional[float], last: Optional[float]) -> Optional[float]:
    """The relative drop 1 - last / first (negative when it rose), None if unknown."""
    if first is None or last is None or not first > 0:
        return None
    return 1 - last / first


def generalize(train_losses: list, val_losses: Optional[list], steps_limit: int,
               smooth: int = 5, stopped_early: Optional[str] = None) -> Finding:
    """Rule, on a run of the script as it is (its full training data, its dropout and
    schedules) for at most ``steps_limit`` train steps, with the validation passes it
    ran itself (``val_losses``: ``[after_train_steps, loss]`` per pass):

    - the validation drop is 1 - last pass's loss / first pass's loss; the training
      drop 1 - mean of the last ``smooth`` (5) train losses / the first train loss;
    - ``pass`` when validation fell by at least MARGIN (5%) of its first value;
    - ``warn`` when it rose by MARGIN or more (while training fell: overfitting
      already; otherwise: training is not working on the full data), or stayed within
      MARGIN (flat: memorising without generalising if training fell, else not
      learning yet);
    - ``skip`` with fewer than two validation passes (none: the script has no
      validation pass; one: no trend to read), or a first validation loss <= 0.

    A pass whose validation loss rose again after its lowest pass (two passes or more
    after it, whose mean is 2 x MARGIN = 10% above the lowest) adds a note: the point
    to stop, or to regularise, from.
    """
    name = "generalize"
    train = _finite(train_losses)
    t_first, t_last = ends(train, smooth)
    t_drop = _change(t_first, t_last)
    val = [(p[0], float(p[1])) for p in (val_losses or [])
           if isinstance(p, (list, tuple)) and len(p) == 2
           and _finite([p[1]])]
    evidence = {"steps": len(train), "train_loss_first": t_first, "train_loss_last": t_last,
                "val_loss_first": val[0][1] if val else None,
                "val_loss_last": val[-1][1] if val else None, "val_passes": len(val),
                "train_drop": t_drop, "margin": MARGIN,
                "rule": f"validation loss falls by >= {MARGIN:.0%} of its first value",
                "curve": downsample([[i, v] for i, v in enumerate(train)], MAX_CURVE_POINTS),
                "val_curve": [[a, v] for a, v in val]}
    ran = f"in {len(train)} train steps on the full training data"
    if not val:
        return Finding(name, "skip", dict(evidence, reason="the script ran no validation "
                                          f"pass {ran}"),
                       (f"Not judged: no validation pass {ran} (evaluation steps: forwards "
                        "under torch.no_grad() or with the model in eval() mode, computing "
                        "a loss). Add one on held-out data, every few hundred steps, so "
                        "that you see the model generalise and not only memorise; if the "
                        "script evaluates only after a long epoch, raise --max-steps.",),
                       "info")
    if len(val) < 2:
        return Finding(name, "skip", dict(evidence, reason=f"one validation pass {ran}: "
                                          "no trend to read"),
                       (f"Not judged: one validation pass {ran}; two are needed to see "
                        "whether the validation loss falls. Evaluate more often, or raise "
                        f"--max-steps (it was {steps_limit}).",), "info")
    v_first, v_last = val[0][1], val[-1][1]
    v_drop = _change(v_first, v_last)
    if v_drop is None:
        return Finding(name, "skip", dict(evidence, reason=f"the first validation loss is "
                                          f"{v_first:g}: the rule needs a loss > 0"),
                       (f"Not judged: the first validation loss is {v_first:g}; the rule "
                        "compares relative changes of a positive loss.",), "info")
    evidence["val_drop"] = v_drop
    said = (f"Validation loss {v_first:.4g} -> {v_last:.4g} over {len(val)} passes "
            f"({_pct(v_drop)}), training loss {_num(t_first)} -> {_num(t_last)} "
            f"({_pct(t_drop)}) {ran}")
    if stopped_early:
        said += f" (stopped: {stopped_early})"
    train_fell = t_drop is not None and t_drop >= MARGIN
    if v_drop >= MARGIN:
        advice = [said + ": the model generalises beyond the examples it memorises."]
        low = min(range(len(val)), key=lambda i: val[i][1])
        best_step, best = val[low]
        after = [v for _, v in val[low + 1:]]
        if len(after) >= 2 and sum(after) / len(after) > best * (1 + 2 * MARGIN):
            note = (f"The validation loss was lowest ({best:.4g}) after {best_step} train "
                    f"steps and rose again to {v_last:.4g}: overfitting starts there; "
                    "stop early, or add data, augmentation or regularisation.")
            evidence["rose_after_step"] = best_step
            advice.append(note)
        return Finding(name, "pass", evidence, tuple(advice), "info")
    if v_drop <= -MARGIN:
        if train_fell:
            msg = (said + ": the model already overfits (it memorises the training data "
                   "and gets worse on new data). Add data or augmentation, regularise "
                   "(dropout, weight decay), use a smaller model, or stop earlier.")
        else:
            msg = (said + ": neither loss improves, so training itself does not work on "
                   "the full data: lower the learning rate, check the data pipeline "
                   "(labels matching inputs, normalisation), or run longer.")
        return Finding(name, "warn", evidence, (msg,), "warn")
    if train_fell:
        msg = (said + ": validation stays flat while training improves: the model "
               "memorises without generalising. Check that the validation data comes "
               "from the same distribution, then add data or regularise.")
    else:
        msg = (said + ": neither loss moved clearly, so the model has not learned yet on "
               "the full data: raise --max-steps, or the learning rate if it is small.")
    return Finding(name, "warn", evidence, (msg,), "warn")


def _num(v) -> str:
    return "?" if v is None else f"{v:.4g}"


def _pct(drop: Optional[float]) -> str:
    if drop is None:
        return "change unknown"
    return f"fell {drop:.0%}" if drop >= 0 else f"rose {-drop:.0%}"
