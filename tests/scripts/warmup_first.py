"""A loop whose first forward pass is slow (as a compiled model's first call is):
--first S of extra sleep in the first forward, --forward S in every forward.

Prints ``steps N``. Options: --steps N --first S --forward S
"""
import argparse
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--first", type=float, default=0.3)
ap.add_argument("--forward", type=float, default=0.005)
args = ap.parse_args()


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(args.forward + (args.first if self.calls == 1 else 0.0))
        return self.lin(x)


def main():
    torch.manual_seed(0)
    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for _ in range(args.steps):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("steps", args.steps)


if __name__ == "__main__":
    main()
