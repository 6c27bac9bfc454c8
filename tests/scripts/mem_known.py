"""An MLP (256-1024-1024-10, Adam) fed batches made by hand (no DataLoader): known
activation sizes. Each Linear saves its input and each ReLU its output (the next
Linear's input): batch x (256 + 1024 + 1024) floats, plus the loss's. Options: --batch N
--steps N. Prints ``done``."""
import argparse

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--steps", type=int, default=4)
args = ap.parse_args()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                      nn.Linear(1024, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(args.steps):
    x, y = torch.randn(args.batch, 256), torch.randint(0, 10, (args.batch,))
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print("done")
