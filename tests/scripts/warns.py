"""Warnings that Python shows once per location, emitted at every step of a tiny
training loop: under nnprof, stderr must be what plain python prints.

Prints ``steps N`` on stdout. Options: --steps N
"""
import argparse
import warnings

import torch
from torch import nn

import warnlib

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=6)
args = ap.parse_args()


def main():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    for i in range(args.steps):
        warnings.warn("slow path taken")  # UserWarning, default filter: shown once
        x = warnlib.old_api(x)
        out = model(warnlib.lib_step(x))
        loss = ((out - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("steps", args.steps)


if __name__ == "__main__":
    main()
