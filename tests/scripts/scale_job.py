"""A job to project from: an MLP with tens of MB of gradients fed by a DataLoader whose
items cost real CPU work (not sleeps: they compete for cores as real transforms do).
Run plain, or under torchrun (DDP over gloo, a DistributedSampler).

Options: --workers K (default 0) --steps N (default 40 train steps per rank) --batch B
(default 32) --width W (default 1536: three W x W layers and a head, 28 MB of
gradients) --item-work N --item-reps R (default 40 and 150: R products of N x N
matrices per item, about 2 ms; 70 ms per batch of 32 against 25 ms of model work).
Prints ``loss <i> <repr>`` per step on rank 0.
"""
import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--steps", type=int, default=40)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--width", type=int, default=1536)
ap.add_argument("--item-work", type=int, default=40)
ap.add_argument("--item-reps", type=int, default=150)
args = ap.parse_args()


class Items(Dataset):
    def __init__(self, n, width):
        self.n, self.width = n, width

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        a = torch.randn(args.item_work, args.item_work, generator=g)
        for _ in range(args.item_reps):  # CPU work standing for decoding and augmenting
            a = torch.tanh(a @ a.T / args.item_work)
        x = torch.randn(self.width, generator=g) + a.mean()
        return x, int(i % 10)


def main():
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    w = args.width
    model = nn.Sequential(nn.Linear(w, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(),
                          nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10))
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = Items(args.steps * args.batch * world, w)
    sampler = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(data, shuffle=False)
    loader = DataLoader(data, batch_size=args.batch, num_workers=args.workers,
                        sampler=sampler, persistent_workers=False)
    for i, (x, y) in enumerate(loader):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rank == 0:
            print(f"loss {i} {loss.item()!r}")
    if world > 1:
        import torch.distributed as dist
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
