"""Known costs per phase, injected with sleeps: the ground truth for attribution tests.

Options: --steps N --fetch S --transform S --collate S --forward S --loss S --backward S
--optimizer S --other S --prep S --workers N --start-method fork|spawn --persistent
--epochs N --eval-every N
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

ap = argparse.ArgumentParser()
for name in ("fetch", "transform", "collate", "forward", "loss", "backward", "optimizer",
             "other", "prep"):
    ap.add_argument(f"--{name}", type=float, default=0.0)
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--start-method", default=None)
ap.add_argument("--persistent", action="store_true")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--eval-batches", type=int, default=0)
args = ap.parse_args()


class SlowTransform:
    def __call__(self, x):
        time.sleep(args.transform / args.batch_size)
        return x * 1.0


class SleepyData(Dataset):
    def __init__(self, n, transform=None):
        self.n = n
        self.transform = transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(args.fetch / args.batch_size)
        x = torch.full((8,), float(i % 7))
        if self.transform is not None:
            x = self.transform(x)
        return x, torch.tensor(float(i % 3))


def slow_collate(batch):
    time.sleep(args.collate)
    return default_collate(batch)


class SleepyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        time.sleep(args.forward)
        return self.lin(x).squeeze(-1)


class SleepyLoss(nn.Module):
    def forward(self, out, y):
        time.sleep(args.loss)
        return ((out - y) ** 2).mean()


class SleepyBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        time.sleep(args.backward)
        return g


class SleepySGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(args.optimizer)
        return super().step(closure)


def main():
    torch.manual_seed(0)
    kw = {}
    if args.workers:
        kw = {"num_workers": args.workers, "persistent_workers": args.persistent}
        if args.start_method:
            kw["multiprocessing_context"] = args.start_method
    loader = DataLoader(SleepyData(args.steps * args.batch_size, SlowTransform()),
                        batch_size=args.batch_size, collate_fn=slow_collate, **kw)
    model = SleepyModel()
    loss_fn = SleepyLoss()
    opt = SleepySGD(model.parameters(), lr=0.01)
    for epoch in range(args.epochs):
        for x, y in loader:
            time.sleep(args.prep)
            out = model(x)
            loss = loss_fn(SleepyBackward.apply(out), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            time.sleep(args.other)
        if args.eval_batches:
            with torch.no_grad():
                for i, (x, y) in enumerate(loader):
                    if i >= args.eval_batches:
                        break
                    model(x)
    print("done", loss.item())


if __name__ == "__main__":
    main()
