"""A 2-rank DDP training script (gloo, CPU) with an optional injected straggler.

--straggler R --delay S: rank R sleeps S seconds in its collate_fn (an input straggler);
--slow-forward S: rank R sleeps in its model's forward instead (a compute straggler);
--eval {all,rank0,none}: every rank evaluates its shard, only rank 0, or no evaluation;
--crash-rank R: rank R raises at its 5th step;
--backend nccl: one CUDA device per rank (LOCAL_RANK).
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--steps", type=int, default=10, help="batches per epoch per rank")
ap.add_argument("--straggler", type=int, default=-1)
ap.add_argument("--delay", type=float, default=0.0)
ap.add_argument("--slow-forward", type=float, default=0.0)
ap.add_argument("--eval", choices=("all", "rank0", "none"), default="none")
ap.add_argument("--crash-rank", type=int, default=-1)
ap.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
args = ap.parse_args()

dist.init_process_group(args.backend)
device = torch.device("cpu")
if args.backend == "nccl":
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    torch.cuda.set_device(device)
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
bs = 16
n = bs * args.steps * world
x = torch.randn(n, 32)
y = (x[:, :4].sum(1) > 0).long()
xv = torch.randn(64 * world, 32)
yv = (xv[:, :4].sum(1) > 0).long()


def collate(batch):
    if rank == args.straggler and args.delay:
        time.sleep(args.delay)
    xs, ys = zip(*batch)
    return torch.stack(xs), torch.stack(ys)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, inp):
        if rank == args.straggler and args.slow_forward:
            time.sleep(args.slow_forward)
        return self.body(inp)


ds = TensorDataset(x, y)
sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
loader = DataLoader(ds, batch_size=bs, sampler=sampler, collate_fn=collate)
vds = TensorDataset(xv, yv)
vloader = DataLoader(vds, batch_size=32, sampler=DistributedSampler(vds, world, rank, shuffle=False)
                     if args.eval == "all" else None)
model = DDP(Net().to(device), device_ids=[device.index] if device.type == "cuda" else None)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
step = 0
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    model.train()
    for xb, yb in loader:
        step += 1
        if rank == args.crash_rank and step == 5:
            raise RuntimeError(f"rank {rank} failed on purpose")
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if args.eval == "all" or (args.eval == "rank0" and rank == 0):
        model.eval()
        with torch.no_grad():
            tot, correct, count = 0.0, 0, 0
            for xb, yb in vloader:
                xb, yb = xb.to(device), yb.to(device)
                out = model.module(xb)
                tot += loss_fn(out, yb).item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                count += len(yb)
        print(f"epoch {epoch} rank {rank} val_loss {tot / count:.4f} acc {correct / count:.3f}",
              flush=True)
    dist.barrier()
if rank == 0:
    print("done", step)
dist.destroy_process_group()
