"""A plain loop over a DataLoader with spawn workers that are not persistent, so that
every epoch starts its workers afresh, and a ``break`` out of the last epoch.

Options: --epochs E (default 3) --items N (default 24, batches of 4) --break-after K
(default 3: the last epoch stops after K batches) --item-cost S (each ``__getitem__``
sleeps S seconds, in a worker) --init-cost S (each worker's ``worker_init_fn`` sleeps S
seconds: a known part of every epoch's worker start-up) --init-stagger S (worker k sleeps
k x S more: workers that finish starting apart) --workers W (default 2).

Ground truth: (E - 1) x N/4 + K train steps (one per batch the loop consumed); each
epoch starts W workers, worker k taking at least ``--init-cost`` + k x ``--init-stagger`` before its first item.
Prints ``loss <i> <repr>`` per step.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--items", type=int, default=24)
ap.add_argument("--break-after", type=int, default=3)
ap.add_argument("--item-cost", type=float, default=0.0)
ap.add_argument("--init-cost", type=float, default=0.0)
ap.add_argument("--init-stagger", type=float, default=0.0)
ap.add_argument("--workers", type=int, default=2)
args = ap.parse_args()


class Slow(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(args.item_cost)
        return self.x[i], self.y[i]


def init_worker(worker_id):
    time.sleep(args.init_cost + worker_id * args.init_stagger)


def main():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(Slow(args.items), batch_size=4, shuffle=True,
                        num_workers=args.workers, multiprocessing_context="spawn",
                        worker_init_fn=init_worker)
    step = 0
    for epoch in range(args.epochs):
        for i, (x, y) in enumerate(loader):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            print(f"loss {step} {loss.item()!r}")
            step += 1
            if epoch == args.epochs - 1 and i + 1 == args.break_after:
                break
        print(f"epoch {epoch} done")
    print(f"done {step}")


if __name__ == "__main__":
    main()
