"""The sweep's spread start: its first trials cover the range (sweep/study.py)."""
from __future__ import annotations

import math

import pytest

optuna = pytest.importorskip("optuna")
from optuna.distributions import (CategoricalDistribution, FloatDistribution,  # noqa: E402
                                  IntDistribution)

from nnprof.sweep import study as st  # noqa: E402

SPACE = {"lr": FloatDistribution(1e-4, 10.0, log=True),
         "drop": FloatDistribution(0.0, 0.5),
         "width": IntDistribution(8, 64),
         "act": CategoricalDistribution(["relu", "gelu", "tanh", "silu", "elu"])}


def ask(study, n):
    out = []
    for _ in range(n):
        t = study.ask(fixed_distributions=SPACE)
        out.append(t.params)
        study.tell(t, sum(1 for _ in t.params))
    return out


def strata(values, lo, hi, n, log=False):
    f = (lambda v: math.log(v)) if log else (lambda v: v)
    return sorted(min(n - 1, int((f(v) - f(lo)) / (f(hi) - f(lo)) * n)) for v in values)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_the_first_ten_trials_take_one_stratum_each(seed):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=st.make_sampler(seed, seed))
    params = ask(study, 12)
    first = params[:st.START_TRIALS]
    assert strata([p["lr"] for p in first], 1e-4, 10.0, 10, log=True) == list(range(10))
    assert strata([p["drop"] for p in first], 0.0, 0.5, 10) == list(range(10))
    widths = [p["width"] for p in first]
    assert all(8 <= w <= 64 for w in widths) and max(widths) - min(widths) >= 40
    assert sorted(p["act"] for p in first) == sorted(["relu", "gelu", "tanh", "silu", "elu"] * 2)
    # 0.1 to 3 spans 1.5 of the 5 decades: at least one trial in it whatever the seed
    assert any(0.1 <= p["lr"] <= 3 for p in first)
    # then TPE, within the space
    assert all(1e-4 <= p["lr"] <= 10 for p in params[st.START_TRIALS:])


def test_a_resumed_or_shared_study_continues_the_same_hypercube(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    a = optuna.create_study(storage=url, study_name="s", sampler=st.make_sampler(3, None))
    seed = st.start_seed(a, None)                 # no --seed: one is drawn and kept
    a.sampler = st.make_sampler(None, seed)
    first = ask(a, 4)
    b = optuna.load_study(storage=url, study_name="s")
    assert st.start_seed(b, 99) == seed           # kept in the study, not the new --seed
    b.sampler = st.make_sampler(None, st.start_seed(b, 99))
    rest = ask(b, 6)
    assert strata([p["lr"] for p in first + rest], 1e-4, 10.0, 10, log=True) == list(range(10))


def test_spread_values_respect_steps_and_log_ints():
    d = FloatDistribution(0.0, 1.0, step=0.25)
    vals = {st.spread_value(5, "x", d, k, 10) for k in range(10)}
    assert vals <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(vals) >= 4
    d = IntDistribution(1, 1024, log=True)
    vals = [st.spread_value(5, "n", d, k, 10) for k in range(10)]
    assert all(1 <= v <= 1024 for v in vals)
    # a tenth of the log range each: from the first (1 to 2) to the last (512 to 1024)
    assert min(vals) <= 2 and max(vals) >= 512 and len(set(vals)) == 10
