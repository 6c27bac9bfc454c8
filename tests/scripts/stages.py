"""Training in stages, each with a new optimizer over the same model (as with a
per-stage learning rate): every optimizer step is its own training step."""
import argparse

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--stages", type=int, default=3)
ap.add_argument("--steps", type=int, default=5)
args = ap.parse_args()

torch.manual_seed(0)
model = nn.Linear(4, 1)
x, y = torch.randn(8, 4), torch.randn(8, 1)
for stage in range(args.stages):
    opt = torch.optim.SGD(model.parameters(), lr=0.1 / (stage + 1))
    for _ in range(args.steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
print("done")
