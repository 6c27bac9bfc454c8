"""Automatic mixed precision as PyTorch's AMP recipe writes it: ``torch.autocast`` around
the forward and the loss, ``GradScaler`` scaling the loss before ``backward()``,
``scaler.step(optimizer)`` and ``scaler.update()``; an evaluation under autocast and
``torch.no_grad()`` after each epoch. float16 on CUDA, bfloat16 on the CPU.

Options: --epochs E (default 2) --item-cost S (each ``__getitem__`` sleeps S seconds;
batches of 4) --device cpu|cuda (default: cuda when available).

Ground truth: 8 training batches per epoch, each a train step with one optimizer step;
3 evaluation batches per epoch, each an eval step. Prints ``loss <i> <repr>`` per
training batch: the cross-entropy, before ``scaler.scale`` multiplies it (by 65536 at
first).
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--item-cost", type=float, default=0.0)
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
args = ap.parse_args()


class Points(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(4, (n,), generator=g)
        self.x = torch.randn(n, 16, generator=g) + 2.0 * F.one_hot(self.y, 16).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(args.item_cost)
        return self.x[i], self.y[i]


def main():
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type)
    train_loader = DataLoader(Points(32, 1), batch_size=4, shuffle=True)
    val_loader = DataLoader(Points(12, 2), batch_size=4)
    printed = 0
    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=dtype):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            print(f"loss {printed} {loss.item()!r}")
            printed += 1
        model.eval()
        correct = 0
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=dtype):
            for x, y in val_loader:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(-1) == y).sum().item()
        print(f"epoch {epoch} accuracy {correct / len(val_loader.dataset):.4f} "
              f"scale {scaler.get_scale():g}")
    print(f"done {printed}")


if __name__ == "__main__":
    main()
