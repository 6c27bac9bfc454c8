"""A small image classifier on synthetic data (no downloads).

    python examples/train_classifier.py --epochs 2
    nnprof profile examples/train_classifier.py --epochs 2
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class SyntheticImages(Dataset):
    """Class-dependent patterns plus noise, 3x32x32, made on the fly from a seed."""

    def __init__(self, n=2048, classes=10, seed=0, transform=None):
        self.prototypes = torch.randn(classes, 3, 32, 32, generator=torch.Generator().manual_seed(1234))
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, classes, (n,), generator=g)
        self.noise = torch.randn(n, 3, 32, 32, generator=g) * 3.0
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        y = self.labels[i]
        x = self.prototypes[y] + self.noise[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, y


class Normalize:
    def __call__(self, x):
        return (x - x.mean()) / (x.std() + 1e-6)


def make_model(classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, classes),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.02)
    args = ap.parse_args()

    torch.manual_seed(0)
    train = DataLoader(SyntheticImages(2048, transform=Normalize()), batch_size=args.batch_size,
                       shuffle=True, num_workers=args.workers)
    val = DataLoader(SyntheticImages(512, seed=1, transform=Normalize()),
                     batch_size=args.batch_size)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        correct = total = 0
        val_loss = 0.0
        with torch.no_grad():
            for x, y in val:
                out = model(x)
                val_loss += loss_fn(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                total += len(y)
        print(f"epoch {epoch}: train loss {loss.item():.4f} "
              f"val loss {val_loss / total:.4f} val acc {correct / total:.3f}")


if __name__ == "__main__":
    main()
