"""Loss at initialisation, and whether the model can overfit a few examples."""
from __future__ import annotations

import math
from typing import Optional

from . import Finding
from .metrics import downsample
from .wiring import CATEGORIES, name_list

TOLERANCE_REL = 0.25   # |first - expected| may be this share of expected ...
TOLERANCE_ABS = 0.1    # ... or this many nats, whichever is larger
FLAT_BAND = 0.02       # last mean within 2% of the first loss: the loss did not move
MAX_CURVE_POINTS = 200
VAL_DROP_SHARE = 0.8   # validation fell by >= 80% of the training drop: suspicious

MULTICLASS = {"cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"}
BINARY = {"binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
          "binary_cross_entropy", "BCELoss"}
WIRING_LABELS = {"no_grad": "no gradient", "zero_grad": "all-zero gradient",
                 "not_in_optimizer": "in no optimizer", "unchanged": "never changed"}
SUPPORTED = ("cross_entropy / nn.CrossEntropyLoss, nll_loss / nn.NLLLoss (expected ln C), "
             "binary_cross_entropy_with_logits / nn.BCEWithLogitsLoss (expected ln 2)")


def expected_initial_loss(function: str, classes: Optional[int]) -> Optional[float]:
    """ln C for (multiclass) cross-entropy and NLL, ln 2 for binary
    cross-entropy: the loss of a model that predicts the uniform distribution."""
    if function in BINARY:
        return math.log(2)
    if function in MULTICLASS and classes and int(classes) >= 2:
        return math.log(int(classes))
    return None


def loss_at_init(info: Optional[dict]) -> Finding:
    """Rule: a freshly initialised classifier should predict about uniformly,
    so its first loss should be near ``expected`` = ln C (cross-entropy or NLL
    over C classes) or ln 2 (binary cross-entropy).

    ``pass`` when |first - expected| <= max(TOLERANCE_REL x expected,
    TOLERANCE_ABS) = max(0.25 x expected, 0.1); ``warn`` otherwise (or when the
    first loss is not finite); ``skip`` without a supported loss (``info`` is
    ``probe.json``'s ``loss_at_init``).
    """
    if not info:
        return Finding("loss-at-init", "skip", {"reason": "no classification loss seen"},
                       (f"Loss at initialisation not checked: no supported loss was seen "
                        f"(supported: {SUPPORTED}).",), "info")
    function, classes = info.get("function"), info.get("classes")
    expected = expected_initial_loss(function, classes)
    first = info.get("first_loss")
    evidence = {"function": function, "classes": classes, "first_loss": first,
                "expected": expected}
    if expected is None or first is None:
        reason = ("missing first loss" if first is None
                  else f"unsupported loss {function!r} with classes={classes!r}")
        evidence["reason"] = reason
        return Finding("loss-at-init", "skip", evidence,
                       (f"Loss at initialisation not checked: {reason} (supported: "
                        f"{SUPPORTED}).",), "info")
    first = float(first)
    tol = max(TOLERANCE_REL * expected, TOLERANCE_ABS)
    evidence.update(tolerance=tol, rule=f"|first - expected| <= max({TOLERANCE_REL:g} x "
                    f"expected, {TOLERANCE_ABS:g})")
    what = (f"ln {int(classes)} = {expected:.3f} for {function} over {classes} classes"
            if function in MULTICLASS else f"ln 2 = {expected:.3f} for {function}")
    if not math.isfinite(first):
        return Finding("loss-at-init", "warn", evidence,
                       (f"The first loss is {first}: the model or the inputs hold NaN or inf "
                        f"before any training (expected {what}).",), "warn")
    diff = first - expected
    evidence["difference"] = diff
    if abs(diff) <= tol:
        return Finding("loss-at-init", "pass", evidence,
                       (f"The first loss {first:.3f} is close to {what}: the model starts "
                        "without preferring any class.",), "info")
    if diff > 0:
        msg = (f"The first loss {first:.3f} is far above {what}: the model starts "
               "overconfident (a wrong initialisation, or logits scaled up, e.g. by a large "
               "final-layer init or a temperature), reduction='sum' instead of the mean, "
               "or a bug in the labels.")
    else:
        msg = (f"The first loss {first:.3f} is far below {what}: labels may leak into the "
               "inputs, or the loss is averaged over something unexpected"
               + (" (or nll_loss is given probabilities instead of log-probabilities)"
                  if function in ("nll_loss", "NLLLoss") else "") + ".")
    return Finding("loss-at-init", "warn", evidence, (msg,), "warn")


def _float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _val_values(val_losses: list) -> list:
    """Validation losses given as numbers or as ``[after_train_steps, loss]`` pairs."""
    vals = [_float(v[-1] if isinstance(v, (list, tuple)) else v) for v in val_losses]
    return [v for v in vals if math.isfinite(v)]


def _trivial(examples: Optional[int], classes: Optional[int],
             classification: bool) -> Optional[str]:
    """Why a pass on these examples may prove nothing, or None."""
    if not examples or examples <= 1 or (classes is not None and classes > 1):
        return None
    if classes == 1:
        return (f"The {examples} examples are all of one class: predicting that class fits "
                "them, so this pass proves little. The dataset's labels could not be read "
                "to pick examples of several classes: give it a `targets` list (or "
                "`samples`, as ImageFolder has).")
    if not classification:
        return None
    return (f"The rung may be trivial: the classes of the {examples} examples could not be "
            "read (no `targets`, `labels` or `samples` on the dataset, and no "
            "classification loss saw them); if they are all of one class, as the first "
            "items of a dataset sorted by class are, a constant prediction fits them.")


ADVERSARIAL_SHARE = 0.5  # of the train steps


def adversarial(train_steps) -> Optional[dict]:
    """Two models trained against each other (a GAN), from the probe's train steps.

    Rule: in at least ADVERSARIAL_SHARE of the train steps, two or more optimizer
    steps each follow a backward of their own (``n_optimizer >= 2`` and
    ``n_backward >= 2``; nnprof's steps put one optimizer's repeated steps in
    separate steps, so these are distinct optimizers stepping in turn). One
    backward feeding two optimizers (sparse and dense parameters) is not this.
    Returns the evidence, or None. ``train_steps``: a frame with ``n_optimizer``
    and ``n_backward`` columns (train steps only).
    """
    n = len(train_steps)
    if not n:
        return None
    pairs = train_steps[(train_steps["n_optimizer"] >= 2) & (train_steps["n_backward"] >= 2)]
    if len(pairs) < ADVERSARIAL_SHARE * n:
        return None
    return {"steps": n, "steps_with_turns": len(pairs),
            "optimizer_steps_per_step": float(pairs["n_optimizer"].median()),
            "backwards_per_step": float(pairs["n_backward"].median())}


def converged_at(losses: list, ratio: float, patience: int) -> Optional[int]:
    """How many of ``losses`` had run when an overfit run's stop rule first held (the
    mean of the last ``patience`` finite losses <= ``ratio`` x the first finite one, as
    ``session.py`` applies it as the run goes), or None. A run without a DataLoader
    closes a step when the next one's optimizer steps, so it stops one step later:
    the rung is judged where the rule held."""
    seen: list = []
    for i, v in enumerate(losses):
        v = _float(v)
        if not math.isfinite(v):
            continue
        seen.append(v)
        if len(seen) >= patience and seen[0] > 0 and \
                sum(seen[-patience:]) / patience <= ratio * seen[0]:
            return i + 1
    return None


def overfit(name: str, losses: list, ratio: float = 0.1, patience: int = 5,
            wiring: Optional[dict] = None, val_losses: Optional[list] = None,
            ended_by_script: Optional[int] = None, examples: Optional[int] = None,
            classes: Optional[int] = None, classification: bool = False) -> Finding:
    """Rule: ``pass`` when the mean of the last ``patience`` train losses <=
    ``ratio`` x the first loss (the first loss itself is left out of that mean
    when there are no more than ``patience`` losses); ``fail`` otherwise.
    ``skip`` with fewer than 2 losses, or when the first loss is not finite and
    > 0.

    On ``fail`` the advice names the likeliest causes, in this order when they
    apply: wiring problems (``wiring`` = ``probe.json``'s wiring record); NaN/inf
    or a rising loss (last mean > first x (1 + FLAT_BAND)): learning rate too
    high (unless parameters were found unchanged: then the changes are batch
    noise and the loss counts as flat); a flat loss (last mean within FLAT_BAND = 2% of the first): gradients
    do not reach the parameters; a loss that fell, but not enough: learning rate
    too small or too few steps. With ``val_losses``, a note is added when the
    validation loss fell by at least VAL_DROP_SHARE (80%) of the training drop.

    ``ended_by_script`` (the rung's step limit) says that the script ended the
    run on its own before that limit (its own epochs or max_steps): the advice
    then says so first, and a finite loss curve is reported as it went (too
    few steps to blame the learning rate or the gradients on it); NaN or inf
    still point at the learning rate.

    A pass on more than one example becomes ``warn`` (the rung may be trivial:
    a constant prediction fits examples of one class) when ``classes``, the
    number of classes among the ``examples``, is 1, or when it is unknown
    (None) and the loss is a ``classification`` loss.
    """
    losses = [_float(v) for v in losses or []]
    n = len(losses)
    rule = f"mean of last {patience} losses <= {ratio:g} x first loss"
    if n < 2:
        return Finding(name, "skip", {"steps": n, "rule": rule},
                       (f"Not judged: {n} train loss{'es' if n != 1 else ''} recorded, "
                        "at least 2 are needed.",), "info")
    first = losses[0]
    if not (math.isfinite(first) and first > 0):
        return Finding(name, "skip", {"steps": n, "first": first, "rule": rule},
                       (f"Not judged: the first loss is {first}; the rule needs a finite "
                        "loss > 0 (a loss that is 0 or negative at the start, such as a "
                        "log-likelihood, cannot shrink by a ratio).",), "info")
    tail = losses[max(1, n - patience):]
    last = sum(tail) / len(tail)
    finite = [v for v in losses if math.isfinite(v)]
    achieved = last / first
    evidence = {
        "first": first, "last_mean": last if math.isfinite(last) else None,
        "min": min(finite), "steps": n,
        "ratio": ratio, "patience": patience,
        "ratio_achieved": achieved if math.isfinite(achieved) else None, "rule": rule,
        # non-finite values become None so that the evidence stays valid JSON
        "curve": downsample([[i, v if math.isfinite(v) else None]
                             for i, v in enumerate(losses)], MAX_CURVE_POINTS),
        "nonfinite": n - len(finite),
        "classes": classes,  # among the examples, None if unknown
    }
    advice: list = []
    if val_losses is not None:
        vals = _val_values(val_losses)
        evidence["val_losses"] = vals
        train_drop = 1 - achieved
        if len(vals) >= 2 and vals[0] > 0 and math.isfinite(train_drop) and train_drop > 0:
            val_drop = 1 - vals[-1] / vals[0]
            evidence["val_drop"] = val_drop
            if val_drop >= VAL_DROP_SHARE * train_drop:
                note = (f"Validation loss fell as much as the training loss "
                        f"({100 * val_drop:.0f}% against {100 * train_drop:.0f}%): while the "
                        "model memorises a few examples it should stay high; check that the "
                        "validation data is not the training data.")
                evidence["val_note"] = note
                advice.append(note)

    if math.isfinite(last) and last <= ratio * first:
        advice.insert(0, f"The loss fell from {first:.4g} to {last:.4g} ({achieved:.3f} x "
                         f"the first) in {n} steps: the model can fit these examples.")
        trivial = _trivial(examples, classes, classification)
        if trivial:
            evidence["trivial"] = trivial
            advice.append(trivial)
            return Finding(name, "warn", evidence, tuple(advice), "warn")
        return Finding(name, "pass", evidence, tuple(advice), "info")

    causes: list = []
    if ended_by_script:
        evidence["ended_by_script"] = True
        causes.append(f"The script ended the run itself after {n} train steps, before the "
                      f"rung's limit of {ended_by_script}: its own schedule (epochs, "
                      "max_steps) stopped the training, so the rung could not tell whether "
                      "the model can fit these examples. Let it train longer for the check "
                      "(more epochs or steps, e.g. through its arguments).")
    problems = {k: list((wiring or {}).get(k) or []) for k in CATEGORIES}
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        causes.append("Wiring: " + "; ".join(f"{WIRING_LABELS[k]}: {name_list(v)}"
                                             for k, v in bad.items())
                      + " (see the wiring finding).")
    nonfinite = n - len(finite)
    frozen_by_optimizer = bool(bad.get("unchanged"))  # parameters never moved: noise only
    if ended_by_script and not nonfinite and math.isfinite(last):
        # too few steps to read a trend into: say what the loss did, blame nothing
        change = (f"fell by {100 * (1 - achieved):.0f}%" if last < first
                  else f"rose by {100 * (achieved - 1):.0f}%")
        causes.append(f"The loss {change} in those {n} steps ({first:.4g} -> {last:.4g}, "
                      f"{achieved:.3f} x the first; needed {ratio:g} x).")
    elif nonfinite or not math.isfinite(last) or (last > first * (1 + FLAT_BAND)
                                                  and not frozen_by_optimizer):
        what = (f"{nonfinite} loss{'es are' if nonfinite != 1 else ' is'} NaN or inf"
                if nonfinite else f"the loss rose from {first:.4g} to {last:.4g}")
        causes.append(f"{what[0].upper()}{what[1:]}: the learning rate is likely too high; "
                      "lower it (by 10x) or clip gradients.")
    elif abs(last - first) <= FLAT_BAND * first or frozen_by_optimizer:
        causes.append(f"The loss stayed flat ({first:.4g} -> {last:.4g} in {n} steps): "
                      "gradients do not reach the parameters, the optimizer holds other "
                      "parameters than the model's, or the loss does not depend on the "
                      "model's output.")
    else:
        causes.append(f"The loss fell by {100 * (1 - achieved):.0f}% in {n} steps "
                      f"({first:.4g} -> {last:.4g}, {achieved:.3f} x the first; needed "
                      f"{ratio:g} x): the learning rate is likely too small, or there were "
                      "too few steps.")
    return Finding(name, "fail", evidence, tuple(causes + advice), "fail")
