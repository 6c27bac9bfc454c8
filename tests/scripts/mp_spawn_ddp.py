"""DDP started with ``torch.multiprocessing.spawn`` (gloo, CPU), as the PyTorch DDP
tutorials write it: each spawned process joins the process group itself.

Ground truth: 48 items, batches of 4, a ``DistributedSampler`` over ``--nprocs`` (2)
ranks: 6 batches per rank per epoch, 2 epochs: 12 train steps per rank, 24 in the job.
Each rank prints ``rank <R> loss <i> <repr>``; the main process prints ``joined``.
"""
import argparse
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def worker(rank, world, port):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 8, generator=g), torch.randint(3, (48,), generator=g)
    sampler = DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, sampler=sampler)
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    i = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            print(f"rank {rank} loss {i} {loss.item()!r}", flush=True)
            i += 1
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--port", type=int, default=29531)
    args = ap.parse_args()
    mp.spawn(worker, args=(args.nprocs, args.port), nprocs=args.nprocs, join=True)
    print("joined", flush=True)
