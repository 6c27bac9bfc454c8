"""The generalize rung's rule, on made-up curves."""
import pytest

from nnprof.analyses.generalize import MARGIN, ends, generalize

FALLING_TRAIN = [3.0, 2.5, 2.0, 1.6, 1.3, 1.1, 1.0, 0.9, 0.85, 0.8]


def test_validation_falling_passes():
    f = generalize(FALLING_TRAIN, [[0, 3.0], [5, 2.0], [10, 1.5]], 300)
    assert f.verdict == "pass"
    ev = f.evidence
    assert ev["val_loss_first"] == 3.0 and ev["val_loss_last"] == 1.5
    assert ev["val_drop"] == pytest.approx(0.5) and ev["val_passes"] == 3
    assert ev["train_loss_first"] == 3.0
    assert ev["train_loss_last"] == pytest.approx(sum(FALLING_TRAIN[-5:]) / 5)
    assert "rose_after_step" not in ev


def test_validation_rising_while_training_falls_is_overfitting():
    f = generalize(FALLING_TRAIN, [[0, 2.8], [5, 3.0], [10, 3.4]], 300)
    assert f.verdict == "warn" and "already overfits" in f.advice[0]


def test_both_rising_is_training_not_working():
    f = generalize([2.0] * 5 + [2.6] * 5, [[0, 2.0], [10, 2.5]], 300)
    assert f.verdict == "warn" and "neither loss improves" in f.advice[0]


def test_flat_validation():
    f = generalize(FALLING_TRAIN, [[0, 2.0], [10, 2.0 * (1 - MARGIN / 2)]], 300)
    assert f.verdict == "warn" and "memorises without generalising" in f.advice[0]
    f = generalize([2.0] * 10, [[0, 2.0], [10, 2.01]], 300)
    assert f.verdict == "warn" and "has not learned yet" in f.advice[0]


def test_a_rise_after_the_lowest_pass_is_noted():
    val = [[0, 3.0], [10, 1.0], [20, 1.3], [30, 1.4]]
    f = generalize(FALLING_TRAIN, val, 300)
    assert f.verdict == "pass" and f.evidence["rose_after_step"] == 10
    assert "overfitting starts there" in f.advice[1]
    # one noisy pass after the lowest is not a trend
    f = generalize(FALLING_TRAIN, [[0, 3.0], [10, 1.0], [20, 1.3]], 300)
    assert "rose_after_step" not in f.evidence


def test_skips():
    f = generalize(FALLING_TRAIN, [], 300)
    assert f.verdict == "skip" and "no validation pass" in f.evidence["reason"]
    assert f.evidence["val_loss_first"] is None
    f = generalize(FALLING_TRAIN, [[0, 2.0]], 300)
    assert f.verdict == "skip" and "one validation pass" in f.evidence["reason"]
    assert "--max-steps (it was 300)" in f.advice[0]
    f = generalize(FALLING_TRAIN, [[0, -1.0], [5, -2.0]], 300)
    assert f.verdict == "skip" and "> 0" in f.evidence["reason"]


def test_ends():
    assert ends([], 5) == (None, None)
    assert ends([2.0], 5) == (2.0, 2.0)
    assert ends([4.0, 2.0, float("nan"), 1.0], 5) == (4.0, 1.5)
