"""A plain loop made device-agnostic with accelerate, as its quick tour shows:
``Accelerator(gradient_accumulation_steps=N)``, ``accelerator.prepare(model, optimizer,
loaders)``, ``with accelerator.accumulate(model)``, ``accelerator.backward(loss)``, and an
evaluation under ``torch.no_grad()`` after each epoch.

Options: --accum N (default 2) --epochs E (default 2) --item-cost S (each
``__getitem__`` sleeps S seconds; batches of 4).

Ground truth: 8 training batches per epoch, each a train step (a forward and a
backward; the optimizer steps every N-th); 3 evaluation batches per epoch, each an eval
step. Prints ``loss <i> <repr>`` per training batch: the cross-entropy, before
``accelerator.backward`` divides it by N.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--accum", type=int, default=2)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--item-cost", type=float, default=0.0)
args = ap.parse_args()


class Points(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(3, (n,), generator=g)
        self.x = torch.randn(n, 8, generator=g) + 2.0 * F.one_hot(self.y, 8).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(args.item_cost)
        return self.x[i], self.y[i]


def main():
    accelerator = Accelerator(gradient_accumulation_steps=args.accum, cpu=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train_loader = DataLoader(Points(32, 1), batch_size=4, shuffle=True)
    val_loader = DataLoader(Points(12, 2), batch_size=4)
    model, optimizer, train_loader, val_loader = accelerator.prepare(
        model, optimizer, train_loader, val_loader)
    printed = 0
    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            with accelerator.accumulate(model):
                loss = F.cross_entropy(model(x), y)
                print(f"loss {printed} {loss.item()!r}")
                printed += 1
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                preds = model(x).argmax(-1)
                correct += accelerator.gather_for_metrics((preds == y).sum()).sum().item()
                total += len(y)
        accelerator.print(f"epoch {epoch} accuracy {correct / total:.4f}")
    print(f"done {printed}")


if __name__ == "__main__":
    main()
