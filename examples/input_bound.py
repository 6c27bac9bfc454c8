"""An input-bound training loop: samples are slow to read and to augment.

Each sample waits on (simulated) storage and runs a Python-level augmentation,
while the model is small: the GPU or CPU would sit idle waiting for data.

    python examples/input_bound.py --epochs 1
    nnprof profile examples/input_bound.py --epochs 1
    nnprof profile examples/input_bound.py --epochs 1 --workers 2   # compare
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class RandomJitter:
    """A deliberately slow augmentation: per-row noise in a Python loop."""

    def __call__(self, x):
        g = torch.Generator().manual_seed(int(x[0, 0].item() * 1000) % 9973)
        rows = [row + 0.01 * torch.randn(row.shape, generator=g) for row in x]
        return torch.stack(rows)


class Standardize:
    def __call__(self, x):
        return (x - x.mean()) / (x.std() + 1e-6)


class SlowStorage(Dataset):
    """Synthetic 64x64 'images' read from a slow disk (2 ms per sample)."""

    def __init__(self, n=512, transform=None, read_latency=0.002):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 64, 64, generator=g)
        self.y = (self.x.mean(dim=(1, 2)) > 0).long()
        self.transform = transform
        self.read_latency = read_latency

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(self.read_latency)
        x = self.x[i].clone()
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = SlowStorage(transform=Compose([RandomJitter(), Standardize()]))
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64 * 64, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for step, (x, y) in enumerate(loader):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
