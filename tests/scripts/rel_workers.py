"""A DataLoader with worker processes that fail as told, for reliability tests.

--fail raise|exit|kill|none   --at I (the dataset index that fails)   --workers N
--items N --epochs N --sleep S (per item) --side FILE (append the step count per step)
raise: ``__getitem__`` raises ValueError in a worker (the DataLoader re-raises it in
the main process); exit: the worker calls ``os._exit(7)``; kill: the worker sends
itself SIGKILL. Prints "step N done" (flushed) after each optimizer step.
"""
import argparse
import os
import signal
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--fail", default="none", choices=("raise", "exit", "kill", "none"))
ap.add_argument("--at", type=int, default=40)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--items", type=int, default=96)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--sleep", type=float, default=0.0)
ap.add_argument("--side", default=None, help="append the step count here after each step")
args = ap.parse_args()


class Fragile(Dataset):
    def __len__(self):
        return args.items

    def __getitem__(self, i):
        if args.sleep:
            time.sleep(args.sleep)
        if i == args.at:
            if args.fail == "raise":
                raise ValueError(f"bad sample {i}")
            if args.fail == "exit":
                os._exit(7)
            if args.fail == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        return torch.full((4,), float(i % 5)), torch.tensor(float(i % 3))


def main():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(Fragile(), batch_size=4, num_workers=args.workers)
    side = os.open(args.side, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if args.side else None
    step = 0
    for epoch in range(args.epochs):
        for x, y in loader:
            loss = ((model(x).squeeze(-1) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if side is not None:
                os.write(side, f"{step}\n".encode())
            print(f"step {step} done", flush=True)
    print("finished")


if __name__ == "__main__":
    main()
