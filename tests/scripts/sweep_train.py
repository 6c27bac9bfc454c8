"""A small classifier for sweep tests, with a known best region of its learning rate.

--lr LR --hidden H --optimizer sgd|adam --epochs N --batches B (train batches per epoch)
--no-val (no evaluation pass) --fail-if-lr-above X (exit 2 as argparse would) --sleep S
(per train step: an input-bound trial). With SGD, lr in [0.1, 1] fits in a few epochs;
below 0.01 it hardly moves; above 5 it diverges.
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, default=0.1)
ap.add_argument("--hidden", type=int, default=16)
ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
ap.add_argument("--epochs", type=int, default=4)
ap.add_argument("--batches", type=int, default=8)
ap.add_argument("--no-val", action="store_true")
ap.add_argument("--sleep", type=float, default=0.0)
args = ap.parse_args()

print(f"threads {torch.get_num_threads()}", flush=True)
torch.manual_seed(0)
n = 32 * args.batches
x = torch.randn(n + 128, 8)
w = torch.randn(8, 3)
y = (x @ w).argmax(1)
train = DataLoader(TensorDataset(x[:n], y[:n]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[n:], y[n:]), batch_size=64)
model = nn.Sequential(nn.Linear(8, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 3))
opt = (torch.optim.SGD if args.optimizer == "sgd" else torch.optim.Adam)(
    model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    model.train()
    for xb, yb in train:
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.sleep:
            time.sleep(args.sleep)
    if not args.no_val:
        model.eval()
        with torch.no_grad():
            total = sum(loss_fn(model(xb), yb).item() * len(xb) for xb, yb in val)
        print(f"epoch {epoch} val_loss {total / 128:.4f}", flush=True)
print("done")
