"""Module-call hooks: what a submodule call costs under them."""
import sys

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


def _frames_between(hooked: bool) -> int:
    seen: list = []
    model = Parent(seen)
    patches = model_hooks.install(StepClock(lambda rec: None)) if hooked else None
    try:
        model(torch.zeros(1, 2))
        model(torch.zeros(1, 2))
    finally:
        if patches is not None:
            patches.uninstall()
    depth = dict(seen[-2:])
    return depth["child"] - depth["parent"]


def test_a_submodule_call_takes_no_more_frames_than_without_the_hooks():
    # the hook replaces torch's own dispatcher frame for submodules of a forward
    assert _frames_between(hooked=True) == _frames_between(hooked=False)
