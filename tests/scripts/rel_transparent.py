"""Seeded training whose every printed number and saved byte must not change under nnprof.

A shuffled DataLoader (--workers N, default 2, the platform's start method) over a
dataset with random augmentation (torch and ``random``, drawn inside the workers),
dropout, Adam, a step LR scheduler, a validation pass (cross-entropy) under
``torch.no_grad()`` each epoch. Prints losses and accuracies with ``repr`` (every bit), and saves the model's
and the optimizer's state_dict with ``torch.save`` to --save-dir (weights.pt, optim.pt).
"""
import argparse
import os
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--save-dir", required=True)
args = ap.parse_args()


class Augmented(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(99)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, :3].sum(1) > 0).long() + (self.x[:, 3] > 1).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + 0.1 * torch.randn(8)
        if random.random() < 0.5:
            x = x.flip(0)
        return x, self.y[i]


def main():
    random.seed(3)
    torch.manual_seed(2024)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.7)
    train = DataLoader(Augmented(96), batch_size=8, shuffle=True, num_workers=args.workers)
    val = DataLoader(Augmented(32), batch_size=16, num_workers=args.workers)
    for epoch in range(args.epochs):
        model.train()
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct, total, val_loss = 0, 0, 0.0
        with torch.no_grad():
            for x, y in val:
                logits = model(x)
                val_loss += F.cross_entropy(logits, y).item()
                correct += int((logits.argmax(1) == y).sum())
                total += len(y)
        print(f"epoch {epoch} loss {loss.item()!r} val_loss {val_loss!r} "
              f"val_acc {correct / total!r} lr {sched.get_last_lr()[0]!r}")
    torch.save(model.state_dict(), os.path.join(args.save_dir, "weights.pt"))
    torch.save(opt.state_dict(), os.path.join(args.save_dir, "optim.pt"))
    print("after", repr(torch.rand(1).item()), repr(random.random()))


if __name__ == "__main__":
    main()
