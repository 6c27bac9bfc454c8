"""Trains a few steps, forks a child that trains too and exits normally, then goes on."""
import os
import sys

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)


def steps(n):
    for _ in range(n):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


steps(3)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    steps(5)  # the child's steps are not the run's
    print("child done")
    sys.exit(0)
os.waitpid(pid, 0)
steps(3)
print("parent done")
