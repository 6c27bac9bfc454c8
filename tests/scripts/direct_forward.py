"""A layer trained through its own ``forward`` called directly (``self.forward(x)``, as
pytorch/examples' forward-forward does): nnprof sees only the submodule calls made
inside it. The forward sleeps --forward seconds.

Options: --steps N --forward S. Prints "loss <i> <repr>" per update.
"""
import argparse
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=8)
ap.add_argument("--forward", type=float, default=0.02)
args = ap.parse_args()


class Layer(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out)
        self.relu = nn.ReLU()

    def forward(self, x):
        time.sleep(args.forward)
        return self.relu(super().forward(x))

    def train_step(self, x, opt):
        loss = self.forward(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss


torch.manual_seed(0)
layer = Layer(8, 8)
opt = torch.optim.SGD(layer.parameters(), lr=0.1)
x = torch.randn(4, 8)
for i in range(args.steps):
    print("loss", i, repr(layer.train_step(x, opt).item()))
