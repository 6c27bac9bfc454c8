"""An IterableDataset (sharded over workers) that sleeps per item.

Options: --items N --batch-size N --item-sleep S --forward S --workers N
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

ap = argparse.ArgumentParser()
ap.add_argument("--items", type=int, default=24)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--item-sleep", type=float, default=0.0)
ap.add_argument("--forward", type=float, default=0.0)
ap.add_argument("--workers", type=int, default=0)
args = ap.parse_args()


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        for i in range(start, self.n, step):
            time.sleep(args.item_sleep)
            yield torch.full((8,), float(i)), torch.tensor(float(i % 2))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        time.sleep(args.forward)
        return self.lin(x).squeeze(-1)


def main():
    torch.manual_seed(0)
    loader = DataLoader(Stream(args.items), batch_size=args.batch_size,
                        num_workers=args.workers)
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
