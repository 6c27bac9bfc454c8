import json

from nnprof.analyses.wiring import wiring


def record(**lists):
    base = {"window": 3, "steps_seen": 3, "complete": True, "checked": 8,
            "no_grad": [], "zero_grad": [], "not_in_optimizer": [], "unchanged": [],
            "frozen": []}
    base.update(lists)
    return base


def test_clean_wiring_passes():
    f = wiring(record(frozen=["embed.weight"]))
    assert f.name == "wiring" and f.verdict == "pass" and f.severity == "info"
    assert f.evidence["counts"]["frozen"] == 1
    assert any("embed.weight" in a and "frozen" in a for a in f.advice)
    json.dumps(f.to_dict())


def test_each_category_fails_with_its_cause():
    cases = {
        "no_grad": ("head.weight", "detach"),
        "zero_grad": ("gate.bias", "ReLU"),
        "not_in_optimizer": ("extra.0.weight", "ModuleList"),
        "unchanged": ("fc.weight", "lr=0"),
    }
    for cat, (param, cause) in cases.items():
        f = wiring(record(**{cat: [param]}))
        assert f.verdict == "fail" and f.severity == "fail", cat
        assert f.evidence[cat] == [param] and f.evidence["counts"][cat] == 1
        assert len(f.advice) == 1
        assert param in f.advice[0] and cause in f.advice[0], (cat, f.advice)


def test_long_lists_are_named_in_part_but_kept_in_full():
    names = [f"layers.{i}.weight" for i in range(12)]
    f = wiring(record(no_grad=names, unchanged=["a", "b"]))
    assert f.evidence["no_grad"] == names and f.evidence["counts"]["no_grad"] == 12
    first = f.advice[0]
    assert "12 parameters receive no gradient" in first
    assert "layers.4.weight" in first and "layers.5.weight" not in first
    assert "and 7 more" in first
    assert "2 parameters got" in f.advice[1]


def test_skip_without_record_or_checked_parameters():
    for rec in (None, {}, record(checked=0)):
        f = wiring(rec)
        assert f.verdict == "skip" and f.severity == "info" and f.advice


def test_incomplete_window_is_noted():
    f = wiring(record(complete=False, steps_seen=1))
    assert f.verdict == "pass"
    assert any("1 of the 3" in a for a in f.advice)
