"""A small training loop with a slow step every --every train steps (a 'checkpoint' sleep).

Options: --steps N (train steps) --every K --slow S (seconds of the slow step)
--step S (sleep in every step) --no-loader (a loop without a DataLoader)
--eval-every N (a 2-batch validation pass after every N train steps)
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=40)
ap.add_argument("--every", type=int, default=4)
ap.add_argument("--slow", type=float, default=0.08)
ap.add_argument("--step", type=float, default=0.002)
ap.add_argument("--no-loader", action="store_true")
ap.add_argument("--eval-every", type=int, default=0)
args = ap.parse_args()


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # steady step times on a busy machine
    x = torch.randn(args.steps * 8, 16)
    y = torch.randint(0, 3, (args.steps * 8,))
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    if args.no_loader:
        batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, len(x), 8)]
    else:
        batches = DataLoader(TensorDataset(x, y), batch_size=8)
    val = DataLoader(TensorDataset(x[:16], y[:16]), batch_size=8)
    for i, (xb, yb) in enumerate(batches):
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        time.sleep(args.step)
        if (i + 1) % args.every == 0:
            time.sleep(args.slow)  # a checkpoint every k steps
        if args.eval_every and (i + 1) % args.eval_every == 0:
            with torch.no_grad():
                for xv, yv in val:
                    loss_fn(model(xv), yv)
    print("done", float(loss))


if __name__ == "__main__":
    main()
