"""Hogwild training as in pytorch/examples mnist_hogwild: one model in shared memory,
``--procs`` ``mp.Process`` workers that each train it with their own DataLoader and
optimizer, no process group; the main process then evaluates it under ``no_grad``.

Ground truth: each worker runs 2 epochs of 5 batches: 10 updates per worker, 20 in all
with 2 workers; the main process trains nothing (4 evaluation batches). Each worker
prints ``proc <k> loss <i> <repr>``; the main prints ``test <loss>``.
"""
import argparse

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 8, generator=g), torch.randint(3, (n,), generator=g))


def train(k, model):
    torch.set_num_threads(1)
    torch.manual_seed(k)
    loader = DataLoader(data(k, 20), batch_size=4, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    i = 0
    for _ in range(2):
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            print(f"proc {k} loss {i} {loss.item()!r}", flush=True)
            i += 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--start-method", default="fork")
    args = ap.parse_args()
    ctx = mp.get_context(args.start_method)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model.share_memory()
    procs = [ctx.Process(target=train, args=(k, model)) for k in range(args.procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(x), y).item()
                    for x, y in DataLoader(data(99, 16), batch_size=4))
    print(f"test {total / 4:.6f}", flush=True)
    raise SystemExit(max(p.exitcode for p in procs))
