"""nnprof's per-step Python work, counted (not timed): a budget that a change of the
hooks cannot pass unnoticed. On the tiny MLP loop the hooks add about 1,830 bytecodes and
43 Python calls per step (Python 3.11; benchmarks/overhead.py prints the same count for
every workload, docs/measured.md has the figures before and after the cuts)."""
from unittest import mock

import torch
from torch import nn

import nnprof
from nnprof.instrument.cost import python_work_per_step

BUDGET_BYTECODES = 2000  # per step, added by nnprof (1,825 now); 1,916 before 2026-12-07,
BUDGET_CALLS = 45        # 2,237 before 2026-12-06; Python calls (43 now; 52, 73 before)


def _per_step(fn, n=16):
    fn(4)
    return python_work_per_step(fn, n)


def test_per_step_python_work_stays_within_budget(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 32), torch.randint(0, 4, (8,))
    loss_fn = nn.CrossEntropyLoss()

    def run(n):
        for _ in range(n):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    bare = _per_step(run)
    # rows written by count alone, every 16 (a write after 0.25 s, in a slow traced step,
    # would fall in a counted window or not by chance)
    with mock.patch("nnprof.session.FLUSH_NS", 10 ** 18), \
            nnprof.profile(out=str(tmp_path / "run"), monitors=[], progress=False):
        run(12)  # past the first steps' checks (activations, wiring)
        mine = _per_step(run)
    added = (mine[0] - bare[0], mine[1] - bare[1])
    assert 0 < added[0] <= BUDGET_BYTECODES, f"nnprof adds {added[0]:.0f} bytecodes a step"
    assert 0 < added[1] <= BUDGET_CALLS, f"nnprof adds {added[1]:.0f} Python calls a step"
