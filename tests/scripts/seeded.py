"""Seeded training whose printed results must not change under nnprof.

--loader: train from a shuffled DataLoader (num_workers=0) with a random
augmentation; otherwise from tensors directly. --exit N ends with sys.exit(N).
"""
import argparse
import random
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--loader", action="store_true")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--exit", type=int, default=0)
args = ap.parse_args()


class Noisy(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.05 * torch.randn_like(self.x[i]), self.y[i]


def batches(x, y):
    if args.loader:
        yield from DataLoader(Noisy(x, y), batch_size=8, shuffle=True, num_workers=0)
    else:
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 8):
            idx = perm[i:i + 8]
            yield x[idx], y[idx]


def main():
    random.seed(7)
    torch.manual_seed(1234)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in batches(x, y):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        print(f"epoch {epoch} loss {loss.item()!r} acc {acc!r} r {random.random()!r}")
    params = [p.detach().double() for p in model.parameters()]
    print("checksum", repr(sum(float(p.sum()) for p in params)))
    print("first", [repr(v) for v in params[0].flatten()[:5].tolist()])
    print("last", [repr(v) for v in params[-1].flatten().tolist()])
    print("next rand", repr(torch.rand(1).item()), "ünïcode ✓")
    sys.stdout.write("no newline at the end")
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
