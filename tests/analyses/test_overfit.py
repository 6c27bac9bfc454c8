import json
import math

import pytest

from nnprof.analyses.overfit import (TOLERANCE_ABS, TOLERANCE_REL, expected_initial_loss,
                                     loss_at_init, overfit)


# ---- loss at init ---------------------------------------------------------------------

def test_cross_entropy_near_ln_c_passes():
    f = loss_at_init({"function": "cross_entropy", "classes": 10, "first_loss": 2.31})
    assert f.name == "loss-at-init" and f.verdict == "pass" and f.severity == "info"
    assert f.evidence["expected"] == pytest.approx(math.log(10))
    json.dumps(f.to_dict())


def test_expected_values():
    assert expected_initial_loss("CrossEntropyLoss", 100) == pytest.approx(math.log(100))
    assert expected_initial_loss("nll_loss", 3) == pytest.approx(math.log(3))
    assert expected_initial_loss("binary_cross_entropy_with_logits", 2) == pytest.approx(
        math.log(2))
    assert expected_initial_loss("BCEWithLogitsLoss", None) == pytest.approx(math.log(2))
    assert expected_initial_loss("mse_loss", 10) is None
    assert expected_initial_loss("cross_entropy", 1) is None


def test_tolerance_boundaries():
    exp = math.log(10)
    tol = max(TOLERANCE_REL * exp, TOLERANCE_ABS)
    ok = loss_at_init({"function": "cross_entropy", "classes": 10, "first_loss": exp + tol * 0.99})
    bad = loss_at_init({"function": "cross_entropy", "classes": 10, "first_loss": exp + tol * 1.01})
    assert ok.verdict == "pass" and bad.verdict == "warn"
    # small expected value: the absolute tolerance applies (0.25 x ln 2 < 0.1)
    b = math.log(2)
    assert loss_at_init({"function": "binary_cross_entropy_with_logits", "classes": 2,
                         "first_loss": b + 0.09}).verdict == "pass"
    assert loss_at_init({"function": "binary_cross_entropy_with_logits", "classes": 2,
                         "first_loss": b + 0.2}).verdict == "warn"


def test_far_above_and_far_below_give_different_advice():
    hi = loss_at_init({"function": "cross_entropy", "classes": 10, "first_loss": 9.0})
    assert hi.verdict == "warn" and hi.severity == "warn"
    assert "above" in hi.advice[0] and "2.303" in hi.advice[0] and "labels" in hi.advice[0]
    lo = loss_at_init({"function": "nll_loss", "classes": 10, "first_loss": 0.2})
    assert lo.verdict == "warn" and "below" in lo.advice[0] and "leak" in lo.advice[0]
    assert "log-probabilities" in lo.advice[0]


def test_non_finite_first_loss_warns():
    f = loss_at_init({"function": "cross_entropy", "classes": 10, "first_loss": float("nan")})
    assert f.verdict == "warn" and "NaN" in f.advice[0]


def test_skip_names_supported_losses():
    for info in (None, {"function": "mse_loss", "classes": None, "first_loss": 1.0}):
        f = loss_at_init(info)
        assert f.verdict == "skip" and "cross_entropy" in f.advice[0]


# ---- overfit --------------------------------------------------------------------------

def test_converging_loss_passes():
    losses = [2.0 * 0.8 ** i for i in range(40)]
    f = overfit("overfit-1", losses)
    assert f.name == "overfit-1" and f.verdict == "pass" and f.severity == "info"
    ev = f.evidence
    assert ev["first"] == 2.0 and ev["steps"] == 40
    assert ev["last_mean"] == pytest.approx(sum(losses[-5:]) / 5)
    assert ev["ratio_achieved"] <= 0.1 and "0.1 x first" in ev["rule"]
    assert ev["curve"][0] == [0, 2.0] and len(ev["curve"]) == 40
    json.dumps(f.to_dict())


def test_curve_is_downsampled():
    losses = [1.0 / (1 + i) for i in range(5000)]
    f = overfit("overfit-1", losses)
    assert len(f.evidence["curve"]) <= 200 and f.evidence["curve"][-1][0] == 4999


def test_rule_uses_ratio_and_patience():
    losses = [1.0] + [0.5] * 10 + [0.04] * 3
    assert overfit("o", losses, patience=3).verdict == "pass"
    assert overfit("o", losses, patience=5).verdict == "fail"  # mean of last 5 = 0.224
    assert overfit("o", losses, ratio=0.3, patience=5).verdict == "pass"


def test_flat_loss_points_at_gradients():
    f = overfit("o", [2.3, 2.31, 2.29, 2.3, 2.3, 2.3, 2.31, 2.3])
    assert f.verdict == "fail" and f.severity == "fail"
    assert len(f.advice) == 1 and "flat" in f.advice[0] and "gradients" in f.advice[0]


def test_rising_or_nan_loss_points_at_learning_rate():
    f = overfit("o", [1.0, 1.5, 3.0, 8.0, 20.0, 50.0])
    assert "rose" in f.advice[0] and "too high" in f.advice[0]
    f = overfit("o", [1.0, 0.9, float("nan"), float("nan"), float("nan")])
    assert f.verdict == "fail" and "NaN" in f.advice[0] and "too high" in f.advice[0]
    assert f.evidence["curve"][2] == [2, None] and f.evidence["nonfinite"] == 3
    json.dumps(f.to_dict(), allow_nan=False)


def test_slow_fall_says_by_how_much():
    losses = [2.0 - 0.02 * i for i in range(50)]  # to about 1.06: fell ~47%
    f = overfit("o", losses)
    assert f.verdict == "fail"
    assert "fell by 47%" in f.advice[0] and "50 steps" in f.advice[0]
    assert "too small" in f.advice[0]


def test_wiring_problems_come_first():
    w = {"no_grad": ["head.weight"], "zero_grad": [], "not_in_optimizer": ["extra.weight"],
         "unchanged": [], "frozen": ["embed.weight"]}
    f = overfit("o", [2.3] * 10, wiring=w)
    assert f.verdict == "fail"
    assert f.advice[0].startswith("Wiring")
    assert "head.weight" in f.advice[0] and "extra.weight" in f.advice[0]
    assert "embed.weight" not in f.advice[0]
    assert "flat" in f.advice[1]
    clean = dict(w, no_grad=[], not_in_optimizer=[])
    assert not overfit("o", [2.3] * 10, wiring=clean).advice[0].startswith("Wiring")


def test_validation_falling_with_training_is_noted():
    losses = [2.0 * 0.7 ** i for i in range(30)]
    f = overfit("o", losses, val_losses=[[0, 2.0], [10, 0.5], [20, 0.05]])
    assert f.verdict == "pass"
    assert f.evidence["val_losses"] == [2.0, 0.5, 0.05]
    assert "val_note" in f.evidence and any("Validation" in a for a in f.advice)
    f = overfit("o", losses, val_losses=[2.0, 2.1, 2.4])
    assert "val_note" not in f.evidence and f.evidence["val_losses"] == [2.0, 2.1, 2.4]


def test_skips():
    for losses in ([], [1.0]):
        assert overfit("o", losses).verdict == "skip"
    for first in (0.0, -1.0, float("inf"), float("nan")):
        f = overfit("o", [first, 0.5, 0.1])
        assert f.verdict == "skip" and f.severity == "info" and "first loss" in f.advice[0]


def test_converged_at_is_where_the_stop_rule_first_held():
    from nnprof.analyses.overfit import converged_at
    # alternating batches (8 rows, then 2): the rule holds at 7, the run wound down at 8
    losses = [1.0, 0.5, 0.3, 0.2, 0.05, 0.1, 0.05, 0.4]
    assert converged_at(losses, 0.1, 3) == 7
    assert converged_at([1.0, float("nan"), 0.1, 0.1, 0.1], 0.2, 3) == 5
    assert converged_at([1.0, 0.9, 0.8], 0.1, 2) is None
