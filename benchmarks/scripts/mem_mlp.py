"""A plain MLP (1024-4096-4096-10, Adam) fed batches made by hand: no DataLoader.
Options: --batch N --steps N"""
import argparse

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=256)
ap.add_argument("--steps", type=int, default=15)
args = ap.parse_args()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                      nn.Linear(4096, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(args.steps):
    x, y = torch.randn(args.batch, 1024), torch.randint(0, 10, (args.batch,))
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
