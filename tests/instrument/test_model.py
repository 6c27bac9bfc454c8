"""Module-call hooks: what a submodule call costs under them."""
import sys

import pytest
import torch
from torch import nn

from nnprof.instrument import model as model_hooks
from nnprof.instrument.steps import StepClock


def _depth() -> int:
    f, n = sys._getframe(1), 0
    while f is not None:
        f, n = f.f_back, n + 1
    return n


class Child(nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(("child", _depth()))
        return x


class Parent(nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.child = Child(seen)
        self.seen = seen

    def forward(self, x):
        self.seen.append(("parent", _depth()))
        return self.child(self.lin(x))


def _frames_between(hooked: bool, on_calls=None) -> int:
    seen: list = []
    model = Parent(seen)
    patches = model_hooks.install(StepClock(lambda rec: None), on_calls=on_calls) \
        if hooked else None
    try:
        for _ in range(model_hooks.FORWARD_WATCH + 2):
            model(torch.zeros(1, 2))
    finally:
        if patches is not None:
            patches.uninstall()
    depth = dict(seen[-2:])
    return depth["child"] - depth["parent"]


def test_a_submodule_call_takes_no_more_frames_than_without_the_hooks():
    # the hook replaces torch's own dispatcher frame for submodules of a forward
    assert _frames_between(hooked=True) == _frames_between(hooked=False)
    # ... again once the first forwards' calls were counted (through the slow path)
    calls: list = []
    assert _frames_between(hooked=True, on_calls=lambda m, n: calls.append(n)) == \
        _frames_between(hooked=False)
    assert calls == [2] * model_hooks.FORWARD_WATCH  # lin and child


class Unrolled(nn.Module):
    """A cell called at every time step, and a submodule that forward never calls."""

    def __init__(self, steps=5):
        super().__init__()
        self.cell = nn.Linear(3, 3)
        self.head = nn.Linear(3, 1)
        self.unused = nn.Linear(3, 3)
        self.steps = steps

    def forward(self, x):
        for _ in range(self.steps):
            x = torch.tanh(self.cell(x))
        if self.steps < 0:
            raise ValueError("no steps")
        return self.head(x)


def test_the_first_forwards_count_the_module_calls_they_make():
    calls: list = []
    model = Unrolled()
    patches = model_hooks.install(StepClock(lambda rec: None),
                                  on_calls=lambda m, n: calls.append((m, n)))
    hook = nn.Module.__dict__["__call__"]
    try:
        for _ in range(model_hooks.FORWARD_WATCH + 2):
            model(torch.zeros(2, 3))
            assert nn.Module.__dict__["__call__"] is hook  # put back after each
        model.steps = -1  # a watched forward that raises puts it back too
        with pytest.raises(ValueError):
            model(torch.zeros(2, 3))
    finally:
        patches.uninstall()
    assert nn.Module.__dict__["__call__"] is not hook
    # the cell five times and the head; the unused layer never: not its 3 submodules
    assert calls == [(model, 6)] * model_hooks.FORWARD_WATCH


def test_the_cost_estimate_counts_the_calls_made(tmp_path):
    import json

    import nnprof
    model = Unrolled(steps=7)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nnprof.profile(out=str(tmp_path / "run"), progress=False, monitors=[]):
        for _ in range(4):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["models"][0]["modules"] == 8
    assert summary["overhead"]["calls_per_step"]["submodule"] == 8
