"""DataLoader workers that burn CPU in one named Python function (for py-spy hotspots).

Options: --items N (dataset size), --workers N, --ms M (CPU time per item, busy loop)
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--items", type=int, default=64)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--ms", type=float, default=20.0)
args = ap.parse_args()


def decode_sample(i):
    """A pure-Python busy loop: the hot function py-spy must name."""
    end = time.perf_counter() + args.ms / 1e3
    acc = i
    while time.perf_counter() < end:
        acc = (acc * 31 + 7) % 1000003
    return acc


class Burning(Dataset):
    def __len__(self):
        return args.items

    def __getitem__(self, i):
        acc = decode_sample(i)
        return torch.full((8,), float(acc % 7)), torch.tensor(i % 2)


def main():
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(Burning(), batch_size=4, num_workers=args.workers)
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("done")


if __name__ == "__main__":
    main()
