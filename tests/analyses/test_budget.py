import pandas as pd

from nnprof.analyses.budget import budget
from nnprof.instrument.steps import PHASES


def frame(walls, kinds=None, dominant="forward"):
    rows = []
    for i, w in enumerate(walls):
        kind = kinds[i] if kinds else "train"
        row = {"index": i, "kind": kind, "wall_s": w}
        for p in PHASES:
            row[f"{p}_s"] = 0.0
        row[f"{dominant}_s"] = w * 0.8
        row["other_s"] = w * 0.2
        rows.append(row)
    df = pd.DataFrame(rows)
    train = df["kind"] == "train"
    df["train_index"] = None
    df.loc[train, "train_index"] = range(int(train.sum()))
    df["train_index"] = pd.to_numeric(df["train_index"])
    return df


def test_steps_over_budget_are_listed_by_train_index():
    df = frame([0.5, 1.5, 0.2, 0.3, 2.0], kinds=["train", "train", "eval", "train", "train"])
    f = budget(df, 1.0)
    assert f.verdict == "exceeds"
    assert f.evidence["count"] == 2
    assert f.evidence["steps"] == [1, 3]  # train-step indices, eval step not counted
    assert f.evidence["dominant_phase_counts"] == {"forward": 2}
    assert f.severity == "warn"


def test_all_fit():
    f = budget(frame([0.1, 0.2]), 1.0)
    assert f.verdict == "fits" and f.evidence["count"] == 0


def test_epoch_projection_uses_training_loader_length():
    f = budget(frame([0.5, 0.5]), 1.0, {"id": "L0", "len": 100})
    assert f.evidence["epoch"]["projected_s"] == 50.0
    f = budget(frame([0.5, 0.5]), 1.0, None)
    assert f.evidence["epoch"]["projected_s"] is None and "reason" in f.evidence["epoch"]


def test_majority_over_budget_fails():
    assert budget(frame([2.0, 2.0, 0.1]), 1.0).severity == "fail"
