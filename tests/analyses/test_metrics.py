import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

import nnprof.analyses.metrics as metrics_module
from nnprof.analyses.metrics import (classification_metrics, curves, downsample,
                                     validation_passes)


def confusion_of(y_true, y_pred, c):
    m = [[0] * c for _ in range(c)]
    for t, p in zip(y_true, y_pred):
        m[t][p] += 1
    return m


def check_against_sklearn(y_true, y_pred, c):
    got = classification_metrics(confusion_of(y_true, y_pred, c))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro",
                                                 zero_division=0)
    assert got["precision_macro"] == pytest.approx(p, abs=1e-12)
    assert got["recall_macro"] == pytest.approx(r, abs=1e-12)
    assert got["f1_macro"] == pytest.approx(f, abs=1e-12)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["support"] == len(y_true)
    labels = list(range(c))
    pc, rc, fc, sc = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                     average=None, zero_division=0)
    assert got["precision"] == pytest.approx(list(pc), abs=1e-12)
    assert got["recall"] == pytest.approx(list(rc), abs=1e-12)
    assert got["f1"] == pytest.approx(list(fc), abs=1e-12)
    assert got["class_support"] == [int(s) for s in sc]
    assert got["labels"] == sorted(set(y_true) | set(y_pred))
    return got


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("c", [2, 3, 7])
def test_random_labels_match_sklearn(seed, c):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    y_true = rng.integers(0, c, n).tolist()
    # predictions agree with the targets part of the time, so precision/recall vary
    y_pred = [t if rng.random() < 0.5 else int(rng.integers(0, c)) for t in y_true]
    check_against_sklearn(y_true, y_pred, c)


@pytest.mark.parametrize("seed", range(5))
def test_classes_missing_from_predictions_or_targets(seed):
    rng = np.random.default_rng(100 + seed)
    c = 6
    n = 80
    y_true = rng.choice([0, 1, 2, 3], n).tolist()        # 4, 5 never true
    y_pred = rng.choice([1, 2, 4], n).tolist()           # 0, 3, 5 never predicted
    got = check_against_sklearn(y_true, y_pred, c)
    assert 5 not in got["labels"] and 4 in got["labels"] and 0 in got["labels"]


def test_binary_all_one_class_predicted():
    y_true = [0, 1, 1, 0, 1]
    y_pred = [1, 1, 1, 1, 1]
    got = check_against_sklearn(y_true, y_pred, 2)
    assert got["precision"][0] == 0.0  # zero_division=0


def test_binary_only_one_class_anywhere():
    got = check_against_sklearn([1, 1, 1], [1, 1, 1], 2)
    assert got["labels"] == [1] and got["f1_macro"] == 1.0


def test_empty_and_malformed():
    got = classification_metrics([[0, 0], [0, 0]])
    assert got["support"] == 0 and got["accuracy"] is None and got["f1_macro"] is None
    with pytest.raises(ValueError):
        classification_metrics([[1, 2], [3]])


def steps_frame(kinds, losses):
    train_index, t = [], 0
    for k in kinds:
        train_index.append(t if k == "train" else None)
        t += k == "train"
    return pd.DataFrame({"index": range(len(kinds)), "kind": kinds,
                         "train_index": pd.to_numeric(pd.Series(train_index, dtype=object)),
                         "loss": losses, "wall_s": [0.01] * len(kinds)})


def test_validation_passes_group_consecutive_eval_steps():
    kinds = ["train"] * 3 + ["eval"] * 2 + ["train"] * 2 + ["eval"] * 3 + ["train"]
    losses = [3, 2, 1, 1.0, 3.0, 1, 1, 2.0, None, float("nan"), 1]
    df = steps_frame(kinds, losses).sample(frac=1, random_state=0)  # order by index, not rows
    assert validation_passes(df) == [
        {"pass": 0, "after_train_steps": 3, "steps": 2, "loss": 2.0},
        {"pass": 1, "after_train_steps": 5, "steps": 3, "loss": 2.0},
    ]


def test_validation_pass_without_losses_and_leading_eval():
    df = steps_frame(["eval", "eval", "train"], [None, None, 1.0])
    assert validation_passes(df) == [{"pass": 0, "after_train_steps": 0, "steps": 2,
                                      "loss": None}]
    assert validation_passes(steps_frame([], [])) == []
    assert validation_passes(steps_frame(["train"], [1.0])) == []


def test_curves_downsample_train_and_list_validation():
    n = 5000
    kinds = ["train"] * n + ["eval"] * 2
    losses = [float(n - i) for i in range(n)] + [7.0, 9.0]
    c = curves(steps_frame(kinds, losses), max_points=100)
    tl = c["train_loss"]
    assert len(tl) == 100
    assert tl[0] == [0, float(n)] and tl[-1] == [n - 1, 1.0]
    xs = [p[0] for p in tl]
    assert xs == sorted(set(xs))
    gaps = np.diff(xs)
    assert gaps.max() - gaps.min() <= 1  # evenly spaced
    assert c["val_loss"] == [[n, 8.0]]


def test_curves_short_and_missing_losses():
    c = curves(steps_frame(["train", "train", "eval", "train"], [2.0, None, None, 1.0]))
    assert c == {"train_loss": [[0, 2.0], [2, 1.0]], "val_loss": []}


def test_downsample_edges():
    assert downsample([1, 2, 3], 5) == [1, 2, 3]
    assert downsample(list(range(10)), 2) == [0, 9]
    assert len(downsample(list(range(1001)), 1000)) == 1000
    with pytest.raises(ValueError):
        downsample([1, 2], 1)


def test_module_imports_no_torch_or_pandas():
    tree = ast.parse(Path(metrics_module.__file__).read_text())
    names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for a in node.names}
    names |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and not node.level}
    assert not names & {"torch", "pandas", "numpy"}
