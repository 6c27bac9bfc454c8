"""Seeded training with shuffling, random augmentation in workers, and a checksum.

Prints per-epoch losses and the final weights' checksum: the same under
``nnprof profile`` as under plain python. Asserts that the dataset's transform
attribute is the very object the script set, before, during and after iteration.

Options: --workers N --epochs N --start-method fork|spawn --persistent
"""
import argparse
import random

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--start-method", default=None)
ap.add_argument("--persistent", action="store_true")
args = ap.parse_args()


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Noise:
    def __call__(self, x):
        return x + 0.1 * torch.randn_like(x)


class RandomFlip:
    def __call__(self, x):
        return x.flip(0) if random.random() < 0.5 else x


class Samples(Dataset):
    def __init__(self, n, transform):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 6, generator=g)
        self.y = self.x.sum(1)
        self.transform = transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def main():
    torch.manual_seed(0)
    random.seed(0)
    tf = Compose([Noise(), RandomFlip()])
    members = tf.transforms
    ds = Samples(48, tf)
    kw = {"num_workers": args.workers}
    if args.workers and args.start_method:
        kw["multiprocessing_context"] = args.start_method
    if args.workers and args.persistent:
        kw["persistent_workers"] = True
    loader = DataLoader(ds, batch_size=8, shuffle=True, **kw)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    assert ds.transform is tf
    for epoch in range(args.epochs):
        total = 0.0
        for x, y in loader:
            assert ds.transform is tf and tf.transforms is members
            loss = nn.functional.mse_loss(model(x).squeeze(-1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        print(f"epoch {epoch} loss {total:.6f}")
    assert ds.transform is tf, "dataset.transform was replaced"
    assert tf.transforms is members, "Compose.transforms was replaced"
    assert type(tf.transforms[0]) is Noise and type(tf.transforms[1]) is RandomFlip
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    print(f"checksum {checksum:.10f}")
    print(f"rng {torch.rand(1).item():.10f} {random.random():.10f}")


if __name__ == "__main__":
    main()
