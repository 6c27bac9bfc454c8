"""Datasets nested in Subset / ConcatDataset, with a Compose-like transform.

The base dataset has a ``transform`` attribute holding a tiny ``Compose`` (no
torchvision) of three members; ``SlowJitter`` is the slow one. Sleeps are per
batch (divided over its items), so they are the ground truth per batch.

Options: --wrap plain|subset|concat --shared --steps N --batch-size N --workers N
--start-method fork|spawn --fetch S --fast S --slow S --forward S
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

ap = argparse.ArgumentParser()
ap.add_argument("--wrap", default="plain", choices=("plain", "subset", "concat"))
ap.add_argument("--shared", action="store_true",
                help="concat: both parts share one Compose object")
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--start-method", default=None)
ap.add_argument("--fetch", type=float, default=0.0)
ap.add_argument("--fast", type=float, default=0.0)
ap.add_argument("--slow", type=float, default=0.0)
ap.add_argument("--forward", type=float, default=0.0)
args = ap.parse_args()


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Scale:
    def __call__(self, x):
        time.sleep(args.fast / args.batch_size)
        return x * 0.5


class SlowJitter:
    def __call__(self, x):
        time.sleep(args.slow / args.batch_size)
        return x + 0.01


class Center:
    def __call__(self, x):
        return x - x.mean()


class Samples(Dataset):
    def __init__(self, n, transform=None):
        self.n = n
        self.transform = transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(args.fetch / args.batch_size)
        x = torch.arange(8, dtype=torch.float32) + i
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(float(i % 2))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        time.sleep(args.forward)
        return self.lin(x).squeeze(-1)


def build():
    n = args.steps * args.batch_size
    if args.wrap == "plain":
        return Samples(n, Compose([Scale(), SlowJitter(), Center()]))
    if args.wrap == "subset":
        base = Samples(2 * n, Compose([Scale(), SlowJitter(), Center()]))
        return Subset(base, list(range(0, 2 * n, 2)))
    half = n // 2
    if args.shared:
        tf = Compose([Scale(), SlowJitter(), Center()])
        return ConcatDataset([Samples(half, tf), Samples(n - half, tf)])
    return ConcatDataset([Samples(half, Compose([Scale(), SlowJitter(), Center()])),
                          Samples(n - half, Compose([Scale(), SlowJitter(), Center()]))])


def main():
    torch.manual_seed(0)
    ds = build()
    kw = {"num_workers": args.workers}
    if args.workers and args.start_method:
        kw["multiprocessing_context"] = args.start_method
    loader = DataLoader(ds, batch_size=args.batch_size, **kw)
    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = 0
    for x, y in loader:
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
    print("batches", n)


if __name__ == "__main__":
    main()
