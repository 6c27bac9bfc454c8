"""Figures quoted in the loading advice: each is the figure of what it names."""
import re

from nnprof.analyses import bottleneck as bn
from nnprof.analyses.bottleneck import bottleneck

SHARES = dict(data=0.5, prep=0.0, forward=0.25, loss=0.0, backward=0.25, optimizer=0.0,
              other=0.0)
MEANS = {"wall": 0.1, "data": 0.05, "prep": 0.0}
PARTS = {"fetch": 0.004, "transform": 0.015, "collate": 0.001}  # 75% transform


def loader(named, batches=100):
    return {"id": "L0", "site": "train.py:10", "dataset": "Images", "num_workers": 0,
            "batch_s": 0.020, "fetch_s": PARTS["fetch"], "transform_s": PARTS["transform"],
            "collate_s": PARTS["collate"], "capacity_bps": 50.0, "demand_bps": 20.0,
            "loop_s": 0.05, "workers_needed": 1, "usable_workers": 7,
            "steps": {"train": batches, "eval": 0}, "iter_calls": 1, "startup_s": 0.0,
            "persistent_workers": False, "batches_measured": batches,
            "transform_by_name": named}


def test_the_costliest_member_is_quoted_with_its_own_figures():
    # a Compose of two members: ColorJitter 10 ms, Resize 5 ms per batch (100 batches)
    named = [{"name": "ColorJitter", "total_s": 1.0, "share_of_loading": 0.5},
             {"name": "Resize", "total_s": 0.5, "share_of_loading": 0.25}]
    text = " ".join(bottleneck(SHARES, MEANS, loader(named), "cpu", 8).advice)
    assert "transform takes 75% of loading time (15.0 ms per batch)" in text, text
    assert "ColorJitter alone takes 50% (10.0 ms per batch)" in text, text
    assert not re.search(r"ColorJitter takes 75%", text)


def test_a_transform_that_is_the_whole_is_named_alone():
    named = [{"name": "SlowTransform", "total_s": 1.5, "share_of_loading": 0.75}]
    text = bn.transform_advice(loader(named), PARTS)
    assert text.startswith("The transform SlowTransform takes 75% of loading time "
                           "(15.0 ms per batch)"), text
    assert "alone" not in text


def test_without_names_the_whole_transform_is_quoted():
    text = bn.transform_advice(loader([]), PARTS)
    assert text.startswith("The dataset's transform takes 75% of loading time "
                           "(15.0 ms per batch)"), text
    text = bn.transform_advice(loader([{"name": "Resize", "total_s": 0.5}], batches=0), PARTS)
    assert "75%" in text and "Resize the costliest part" in text, text
