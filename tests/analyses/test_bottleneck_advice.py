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


# -- the shape of the step: one backward over many forwards ---------------------
COMPUTE = dict(data=0.0, prep=0.0, forward=0.1, loss=0.0, backward=0.8, optimizer=0.02,
               other=0.08)


def test_backward_is_compared_with_all_the_forwards_of_a_rollout_step():
    """30 small forwards then one backward (a policy-gradient episode): the ratio is
    to all 30 together, and the advice is to batch them, not gradient checkpointing."""
    text = " ".join(bottleneck(COMPUTE, {"wall": 0.01, "forwards": 30.0}, None,
                               "cpu", 2).advice)
    assert "backward takes 8.0x the 30 forward passes of each step together" in text
    assert "Batch the forwards" in text
    assert "checkpointing" not in text


def test_backward_of_a_single_forward_still_points_at_checkpointing():
    text = " ".join(bottleneck(COMPUTE, {"wall": 0.01, "forwards": 1.0}, None,
                               "cpu", 2).advice)
    assert "backward takes 8.0x the forward pass (about 2x is usual)" in text
    assert "checkpointing" in text
    text = " ".join(bottleneck(COMPUTE, {"wall": 0.01, "forwards": 2.0}, None,
                               "cpu", 2).advice)
    assert "backward takes 8.0x the 2 forward passes of each step" in text


def test_overhead_between_the_forwards_of_a_rollout_is_named_as_such():
    shares = dict(COMPUTE, backward=0.05, other=0.83)
    f = bottleneck(shares, {"wall": 0.01, "forwards": 25.0}, None, "cpu", 2)
    assert f.verdict == "host-overhead-bound"
    text = " ".join(f.advice)
    assert "outside the model's 25 forward passes" in text and "environment" in text
    f = bottleneck(shares, {"wall": 0.01, "forwards": 1.0}, None, "cpu", 2)
    assert "logging, metrics, printing" in " ".join(f.advice)


def test_a_forward_called_directly_is_not_read_as_input_or_logging():
    """``layer.forward(x)`` called directly: its work lands in prep and other; prep is
    not input then, and the advice names the cause, not loaders or logging."""
    shares = dict(data=0.0, prep=0.25, forward=0.02, loss=0.0, backward=0.1,
                  optimizer=0.03, other=0.6)
    f = bottleneck(shares, {"wall": 0.01, "forwards": 1.0}, None, "cpu", 2,
                   unseen=("Layer",))
    assert f.evidence["input_share"] == 0.0
    assert f.evidence["forward_called_directly"] == ["Layer"]
    text = " ".join(f.advice)
    assert text.startswith("Layer.forward is called directly")
    assert "DataLoader" not in text and "logging" not in text
    plain = " ".join(bottleneck(shares, {"wall": 0.01}, None, "cpu", 2).advice)
    assert "input-bound" in bottleneck(shares, {"wall": 0.01}, None, "cpu", 2).verdict
    assert "called directly" not in plain


def test_a_forward_called_directly_is_not_compared_with_its_backward():
    shares = dict(COMPUTE, forward=0.02, backward=0.8, other=0.16)
    f = bottleneck(shares, {"wall": 0.01, "forwards": 2.0}, None, "cpu", 2,
                   unseen=("Layer",))
    assert f.verdict == "compute-bound"
    assert "backward takes" not in " ".join(f.advice)
