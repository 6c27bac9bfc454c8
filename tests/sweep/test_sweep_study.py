"""Pruner specs and rules, storage URLs, trials left running by a dead sweep."""
import os

import pytest

from nnprof.sweep import study as st


@pytest.mark.parametrize("text,kind,arg", [
    ("median", "median", None), ("percentile:25", "percentile", 25.0), ("asha", "asha", None),
    ("hyperband", "hyperband", None), ("patience:3", "patience", 3), ("none", "none", None)])
def test_prune_specs(text, kind, arg):
    assert st.parse_prune(text) == st.PruneSpec(kind, arg)


@pytest.mark.parametrize("text", ["mean", "percentile:0", "percentile:x", "patience:0",
                                  "median:3", "patience"])
def test_bad_prune_specs(text):
    with pytest.raises(ValueError):
        st.parse_prune(text)


def test_pruners_wait_for_enough_trials():
    import optuna
    pr, rule = st.make_pruner(st.PruneSpec("median"), 3, 1, "pass")
    assert isinstance(pr, optuna.pruners.MedianPruner)
    assert "once 3 trials have finished" in rule
    assert (pr._n_startup_trials, pr._n_min_trials) == (3, 3)
    pr, rule = st.make_pruner(st.PruneSpec("asha"), 2, 20, "step")
    assert isinstance(pr, optuna.pruners.SuccessiveHalvingPruner) and "20, 60, 180" in rule
    pr, _ = st.make_pruner(st.PruneSpec("patience", 4), 2, 1, "pass")
    assert isinstance(pr, optuna.pruners.PatientPruner)
    pr, _ = st.make_pruner(st.PruneSpec("none"), 2, 1, "pass")
    assert isinstance(pr, optuna.pruners.NopPruner)


def test_median_pruning_does_not_start_before_enough_trials_finished():
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pr, _ = st.make_pruner(st.PruneSpec("median"), 2, 1, "pass")
    study = optuna.create_study(pruner=pr)
    good = study.ask()
    good.report(0.1, 1)
    study.tell(good, 0.1)
    bad = study.ask()
    bad.report(5.0, 1)
    assert not bad.should_prune()  # one finished trial is not enough evidence
    study.tell(bad, 5.0)
    worse = study.ask()
    worse.report(9.0, 1)
    assert worse.should_prune()


def test_redact_hides_the_password():
    assert st.redact("postgresql://me:s3cret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert st.redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_storage_errors_are_one_line(tmp_path):
    with pytest.raises(st.StudyError, match="not a database URL"):
        st.open_storage("nonsense", str(tmp_path))
    with pytest.raises(st.StudyError) as err:
        st.open_storage("postgresql://nobody:pw@127.0.0.1:1/none", str(tmp_path))
    assert "\n" not in str(err.value) and "pw" not in str(err.value)


def test_stale_running_trials(tmp_path):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, _ = st.open_storage(None, str(tmp_path))
    study = optuna.create_study(storage=storage, study_name="s")
    mine_dead, mine_alive, other = study.ask(), study.ask(), study.ask()
    for t, pid, host in ((mine_dead, 2 ** 22 + 7, st.host_id()),
                         (mine_alive, os.getppid(), st.host_id()), (other, 1, "elsewhere")):
        t.set_user_attr("host", host)
        t.set_user_attr("sweep_pid", pid)
    local = [t.number for t in st.stale_running(study, only_local=True)]
    assert local == [mine_dead.number]
    assert len(st.stale_running(study, only_local=False)) == 3  # the embedded study
