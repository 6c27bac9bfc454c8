"""Full-batch LBFGS with a closure (no DataLoader): forward, loss and backward run
inside ``optimizer.step(closure)``, several times per step.

Options: --steps N --max-iter K (closure calls per step, at most K + 1 with
the line search off) --forward S --loss S --backward S (sleeps per closure call)
--print-loss (one "loss <step> <repr>" line per step: the closure's last loss).
"""
import argparse
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--max-iter", type=int, default=3)
for name in ("forward", "loss", "backward"):
    ap.add_argument(f"--{name}", type=float, default=0.0)
ap.add_argument("--print-loss", action="store_true")
args = ap.parse_args()


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


def main():
    torch.manual_seed(0)
    X, Y = torch.randn(32, 8), torch.randn(32)
    model, loss_fn = SleepyModel(), SleepyLoss()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=args.max_iter,
                            tolerance_grad=0.0, tolerance_change=0.0)
    calls = []
    for step in range(args.steps):
        calls.append(0)

        def closure():
            calls[-1] += 1
            opt.zero_grad()
            loss = loss_fn(SleepyBackward.apply(model(X)), Y)
            loss.backward()
            closure.last = loss.item()
            return loss

        opt.step(closure)
        if args.print_loss:
            print("loss", step, repr(closure.last))
    print("calls", " ".join(str(c) for c in calls))


if __name__ == "__main__":
    main()
