"""The basis of the timing statistics: which steps, and how the report says it."""
import pandas as pd

from nnprof.rundir.steady import MIN_STEPS_FOR_WARMUP, describe_basis, steady_steps


def frame(n, offset=0):
    return pd.DataFrame({"index": range(offset, offset + n), "wall_s": [0.01] * n},
                        index=range(offset, offset + n))


def test_first_step_left_out_once_there_are_enough():
    steps = frame(10, offset=3)  # train steps keep their place among all steps
    steady = steady_steps(steps)
    assert list(steady["index"]) == list(range(4, 13))
    b = describe_basis("train", steps, steady)
    assert b == {"over": "train", "steps": 9, "of": 10, "left_out": 1, "left_out_steps": [3],
                 "text": "steady train steps: 9 of 10 (first 1 left out as warm-up)"}


def test_few_steps_are_all_kept_and_said_so():
    steps = frame(MIN_STEPS_FOR_WARMUP - 1)
    assert len(steady_steps(steps)) == len(steps)
    assert describe_basis("train", steps, steps)["text"] == \
        f"train steps: all {len(steps)} (none left out as warm-up)"
    assert describe_basis("all", frame(0), frame(0))["text"] == "no steps measured"


def test_steps_left_out_further_on_are_listed():
    steps = frame(12)
    steady = steps.drop(index=[0, 6])  # e.g. a second epoch's start-up step
    b = describe_basis("train", steps, steady)
    assert b["left_out_steps"] == [0, 6]
    assert b["text"] == "steady train steps: 10 of 12 (2 left out as warm-up or start-up)"
