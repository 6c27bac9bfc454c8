"""Following a trial's run directory while it is written: passes, metrics, train loss,
and the reports a trial owes the study."""
import json

import pytest

from nnprof.sweep.tail import TrialTail, due_reports

HEADER = "index,kind,train_index,start_s,wall_s,loss\n"


def row(i, kind, ti, start, wall, loss=""):
    return f"{i},{kind},{ti},{start},{wall},{loss}\n"


def test_passes_close_when_a_train_step_follows(tmp_path):
    steps = tmp_path / "steps.csv"
    rows = [row(0, "train", 0, 0.0, 0.1, 2.0), row(1, "train", 1, 0.1, 0.1, 1.0),
            row(2, "eval", "", 0.2, 0.05, 0.8), row(3, "eval", "", 0.25, 0.05, 0.6)]
    steps.write_text(HEADER + "".join(rows))
    tail = TrialTail(str(tmp_path))
    tail.poll()
    assert tail.train_steps == 2 and tail.eval_steps == 2
    assert tail.points("val_loss", "passes") == []  # the pass may go on
    with open(steps, "a") as fh:
        fh.write(row(4, "train", 2, 0.3, 0.1, 0.5))
        fh.write("5,tra")  # a torn line is never read
    tail.poll()
    assert tail.points("val_loss", "passes") == [(1, pytest.approx(0.7))]
    assert tail.points("val_loss", "steps") == [(2, pytest.approx(0.7))]
    assert tail.points("val_loss", "seconds") == [(pytest.approx(0.3), pytest.approx(0.7))]
    assert tail.position("val_loss", "steps") == 3
    assert tail.position("val_loss", "seconds") == pytest.approx(0.4)
    with open(steps, "a") as fh:
        fh.write("in,2,0.3,0.1,0.4\n")  # the rest of the torn line: a whole row now
    tail.poll()
    assert tail.train_steps == 4  # the completed row was read once the line ended


def test_the_last_pass_closes_when_the_trial_ends(tmp_path):
    (tmp_path / "steps.csv").write_text(HEADER + row(0, "train", 0, 0, 0.1, 1.0)
                                        + row(1, "eval", "", 0.1, 0.1, 0.9))
    tail = TrialTail(str(tmp_path))
    tail.poll(finished=True)
    assert tail.points("val_loss", "passes") == [(1, pytest.approx(0.9))]


def test_accuracy_and_f1_come_from_the_pass_confusion_matrix(tmp_path):
    (tmp_path / "steps.csv").write_text(HEADER + row(0, "train", 0, 0, 0.1, 1.0)
                                        + row(1, "eval", "", 0.1, 0.1, 0.9)
                                        + row(2, "train", 1, 0.2, 0.1, 0.8))
    tail = TrialTail(str(tmp_path))
    tail.poll()
    assert tail.points("val_accuracy", "passes") == []  # its matrix has not come yet
    (tmp_path / "metrics.jsonl").write_text(json.dumps(
        {"pass": 0, "after_train_steps": 1, "confusion": [[3, 1], [0, 4]]}) + "\n")
    tail.poll()
    assert tail.points("val_accuracy", "passes") == [(1, pytest.approx(7 / 8))]
    f1 = (2 * 0.75 / 1.75 + 2 * 0.8 * 1 / 1.8) / 2
    assert tail.points("val_f1", "passes") == [(1, pytest.approx(f1))]


def test_train_loss_is_smoothed_over_the_last_steps(tmp_path):
    rows = [row(i, "train", i, i * 0.1, 0.1, float(i)) for i in range(30)]
    (tmp_path / "steps.csv").write_text(HEADER + "".join(rows))
    tail = TrialTail(str(tmp_path))
    tail.poll()
    pts = tail.points("train_loss", "steps")
    assert pts[0] == (1, 0.0) and pts[19] == (20, pytest.approx(9.5))
    assert pts[-1] == (30, pytest.approx(sum(range(10, 30)) / 20))
    assert tail.step_time_s() == pytest.approx(0.1)


def test_a_nan_loss_is_kept(tmp_path):
    (tmp_path / "steps.csv").write_text(HEADER + row(0, "train", 0, 0, 0.1, "nan"))
    tail = TrialTail(str(tmp_path))
    tail.poll()
    v = tail.points("train_loss", "steps")[0][1]
    assert v != v


def test_reports_fall_on_shared_ticks_with_the_latest_value():
    pts = [(3, 1.0), (7, 0.5)]
    assert due_reports(pts, position=10, every=2, last_step=0) == [
        (4, 1.0), (6, 1.0), (8, 0.5), (10, 0.5)]
    assert due_reports(pts, position=10, every=2, last_step=6) == [(8, 0.5), (10, 0.5)]
    assert due_reports(pts, position=2, every=2, last_step=0) == []  # nothing measured by 2
    assert due_reports([], position=10, every=1, last_step=0) == []
    assert due_reports([(1, 3.0), (2, 2.0)], position=2, every=1, last_step=0) == [
        (1, 3.0), (2, 2.0)]


def test_a_pass_before_training_is_pass_0_and_never_reported(tmp_path):
    # Lightning's sanity check: two eval steps before the first train step
    rows = [row(0, "eval", "", 0.0, 0.05, 2.3), row(1, "eval", "", 0.05, 0.05, 2.3),
            row(2, "train", 0, 0.1, 0.1, 2.0), row(3, "train", 1, 0.2, 0.1, 1.0),
            row(4, "eval", "", 0.3, 0.05, 0.7), row(5, "train", 2, 0.35, 0.1, 0.5)]
    (tmp_path / "steps.csv").write_text(HEADER + "".join(rows))
    tail = TrialTail(str(tmp_path))
    tail.poll()
    assert [p["pass"] for p in tail.passes] == [0, 1]
    assert tail.points("val_loss", "passes") == [(1, pytest.approx(0.7))]
    assert tail.position("val_loss", "passes") == 1
    assert due_reports(tail.points("val_loss", "passes"), 1, 1, 0) == [(1, pytest.approx(0.7))]
    assert tail.has_validation
    only_sanity = tmp_path / "sanity"
    only_sanity.mkdir()
    (only_sanity / "steps.csv").write_text(HEADER + "".join(rows[:4]))
    t2 = TrialTail(str(only_sanity))
    t2.poll(finished=True)
    assert not t2.has_validation and t2.points("val_loss", "passes") == []


def test_ticks_wait_for_a_pass_whose_metrics_are_on_their_way(tmp_path):
    rows = [row(0, "train", 0, 0, 0.1, 1.0), row(1, "eval", "", 0.1, 0.1, 0.9),
            row(2, "train", 1, 0.2, 0.1, 0.8), row(3, "eval", "", 0.3, 0.1, 0.7),
            row(4, "train", 2, 0.4, 0.1, 0.6)]
    (tmp_path / "steps.csv").write_text(HEADER + "".join(rows))
    (tmp_path / "metrics.jsonl").write_text(json.dumps(
        {"pass": 0, "after_train_steps": 1, "confusion": [[1, 1], [0, 2]]}) + "\n")
    tail = TrialTail(str(tmp_path))
    tail.poll()
    pts = tail.points("val_accuracy", "passes")
    assert pts == [(1, pytest.approx(0.75))]
    # pass 2 ended but its matrix is not written yet: no tick may report pass 1's value
    assert tail.position("val_accuracy", "passes") < 2
    assert due_reports(pts, tail.position("val_accuracy", "passes"), 1, 1) == []
    assert tail.position("val_accuracy", "steps") < 2
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"pass": 1, "after_train_steps": 2,
                             "confusion": [[2, 0], [0, 2]]}) + "\n")
    tail.poll()
    assert tail.position("val_accuracy", "passes") == 2
    assert due_reports(tail.points("val_accuracy", "passes"), 2, 1, 1) == [(2, 1.0)]


def test_active_time_runs_from_the_first_step_to_the_last(tmp_path):
    rows = [row(0, "train", 0, 3.0, 0.5, 1.0), row(1, "train", 1, 3.5, 0.5, 0.9)]
    (tmp_path / "steps.csv").write_text(HEADER + "".join(rows))
    tail = TrialTail(str(tmp_path))
    assert tail.active_s == 0.0
    tail.poll()
    assert tail.active_s == pytest.approx(1.0)  # the 3 s of start-up are not in it
