"""Verdict rules, checked on hand-made shares (see the docstring of bottleneck())."""
import pytest

from nnprof.analyses.bottleneck import bottleneck


def shares(data=0.0, prep=0.0, forward=0.0, loss=0.0, backward=0.0, optimizer=0.0, other=0.0):
    d = dict(data=data, prep=prep, forward=forward, loss=loss, backward=backward,
             optimizer=optimizer, other=other)
    assert sum(d.values()) == pytest.approx(1.0)
    return d


MEANS = {"wall": 0.1, "data": 0.03, "prep": 0.001}


def loader(**kw):
    base = {"id": "L0", "site": "train.py:10", "dataset": "Images", "num_workers": 0,
            "batch_s": 0.030, "fetch_s": 0.005, "transform_s": 0.024, "collate_s": 0.001,
            "capacity_bps": 33.3, "demand_bps": 14.3, "loop_s": 0.07, "workers_needed": 1,
            "usable_workers": 7, "steps": {"train": 100, "eval": 0}, "iter_calls": 1,
            "startup_s": 0.0, "persistent_workers": False,
            "transform_by_name": [{"name": "RandomResizedCrop", "total_s": 2.0}]}
    base.update(kw)
    return base


@pytest.mark.parametrize("s,verdict", [
    (shares(data=0.25, forward=0.4, backward=0.35), "input-bound"),
    (shares(data=0.10, prep=0.10, forward=0.4, backward=0.4), "input-bound"),
    (shares(data=0.19, forward=0.4, backward=0.41), "compute-bound"),
    (shares(forward=0.2, backward=0.3, optimizer=0.5), "optimizer-bound"),
    (shares(forward=0.2, backward=0.2, other=0.6), "host-overhead-bound"),
    (shares(forward=0.3, backward=0.3, other=0.4), "compute-bound"),
    (shares(forward=0.2, backward=0.2, optimizer=0.25, other=0.25, data=0.1), "balanced"),
])
def test_verdict_rules(s, verdict):
    f = bottleneck(s, MEANS, loader(), "cpu", 8)
    assert f.verdict == verdict


def test_moderate_input_is_noted_beside_the_verdict():
    f = bottleneck(shares(data=0.10, forward=0.45, backward=0.45), MEANS, loader(), "cpu", 8)
    assert f.verdict == "compute-bound"
    assert f.evidence["level"] == "moderate"
    assert any("Moderately input-bound" in a for a in f.advice)


def test_no_workers_advice_suggests_a_count_from_capacity_and_cores():
    f = bottleneck(shares(data=0.3, forward=0.35, backward=0.35), MEANS,
                   loader(workers_needed=3, usable_workers=7), "cpu", 8)
    text = " ".join(f.advice)
    assert "num_workers=3" in text
    assert "RandomResizedCrop" in text  # the dominant transform is named


def test_advice_admits_when_cores_cannot_keep_up():
    f = bottleneck(shares(data=0.6, forward=0.2, backward=0.2), MEANS,
                   loader(workers_needed=9, usable_workers=1), "cpu", 2)
    assert any("Even num_workers=1" in a for a in f.advice)


def test_workers_that_cannot_keep_up_get_a_count():
    f = bottleneck(shares(data=0.5, forward=0.25, backward=0.25), MEANS,
                   loader(num_workers=2, capacity_bps=20.0, demand_bps=50.0, workers_needed=5,
                          usable_workers=15), "cuda", 16)
    text = " ".join(f.advice)
    assert "cannot keep up" in text and "num_workers=5" in text


def test_fetch_dominated_loading_names_getitem():
    f = bottleneck(shares(data=0.5, forward=0.25, backward=0.25), MEANS,
                   loader(fetch_s=0.025, transform_s=0.004, collate_s=0.001), "cpu", 8)
    assert any("__getitem__" in a for a in f.advice)


def test_input_bound_without_loader():
    f = bottleneck(shares(prep=0.4, forward=0.3, backward=0.3), MEANS, None, "cpu", 8)
    assert f.verdict == "input-bound"
    assert "no DataLoader" in f.advice[0]
