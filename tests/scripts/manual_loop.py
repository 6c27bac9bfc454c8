"""A training loop that batches by hand from tensors (no DataLoader), with known costs.

Options: --steps N (optimizer steps) --batch-size B --accum N (micro-batches per
optimizer step) --prep S (before each forward) --forward S --backward S
--optimizer S --epochs E --val-batches N (a torch.no_grad() pass of N forwards
after each epoch, no loader)
--slow-every K --slow S --slow-phase P (in every K-th optimizer step, that is
steps K-1, 2K-1, ..., the first micro-batch's forward, backward or optimizer
step sleeps S more) --loader (feed the micro-batches from a
DataLoader instead) --print-loss (one "loss <i> <repr>" line per backward: the
loss function's output, before the division by --accum) --inplace (divide the loss
in place, ``loss /= accum``, before ``backward()``, as timm's train.py does).
The validation pass computes its loss (mse) on each batch.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
for name in ("prep", "forward", "backward", "optimizer", "slow"):
    ap.add_argument(f"--{name}", type=float, default=0.0)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--accum", type=int, default=1)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--val-batches", type=int, default=0)
ap.add_argument("--slow-every", type=int, default=0)
ap.add_argument("--slow-phase", choices=("forward", "backward", "optimizer"), default="forward")
ap.add_argument("--loader", action="store_true")
ap.add_argument("--print-loss", action="store_true")
ap.add_argument("--inplace", action="store_true")
args = ap.parse_args()

extra = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}


class SleepyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        time.sleep(args.forward + extra["forward"])
        return self.lin(x).squeeze(-1)


class SleepyBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        time.sleep(args.backward + extra["backward"])
        return g


class SleepySGD(torch.optim.SGD):
    def step(self, closure=None):
        time.sleep(args.optimizer + extra["optimizer"])
        return super().step(closure)


def main():
    torch.manual_seed(0)
    n_micro = args.steps * args.accum
    X = torch.randn(n_micro * args.batch_size, 8)
    Y = torch.randn(n_micro * args.batch_size)
    model = SleepyModel()
    opt = SleepySGD(model.parameters(), lr=0.01)
    if args.loader:
        loader = DataLoader(TensorDataset(X, Y), batch_size=args.batch_size)
    n_backward = 0
    for epoch in range(args.epochs):
        if args.loader:
            batches = loader
        else:
            batches = ((X[i * args.batch_size:(i + 1) * args.batch_size],
                        Y[i * args.batch_size:(i + 1) * args.batch_size])
                       for i in range(n_micro))
        for i, (x, y) in enumerate(batches):
            step = i // args.accum
            slow = args.slow_every and step % args.slow_every == args.slow_every - 1
            if i % args.accum == 0:
                extra[args.slow_phase] = args.slow if slow else 0.0
            time.sleep(args.prep)
            x = x.contiguous()
            out = model(x)
            loss = F.mse_loss(SleepyBackward.apply(out), y)
            value = loss.item() if args.print_loss else None
            if args.inplace:
                loss /= args.accum
                loss.backward()
            else:
                (loss / args.accum).backward()
            if args.slow_phase != "optimizer":
                extra[args.slow_phase] = 0.0
            if args.print_loss:
                print("loss", n_backward, repr(value))
            n_backward += 1
            if (i + 1) % args.accum == 0:
                opt.step()
                opt.zero_grad()
                extra[args.slow_phase] = 0.0
        if args.val_batches:
            xv, yv = torch.randn(args.batch_size, 8), torch.randn(args.batch_size)
            with torch.no_grad():
                for _ in range(args.val_batches):
                    F.mse_loss(model(xv), yv)
    print("done", n_backward)


if __name__ == "__main__":
    main()
