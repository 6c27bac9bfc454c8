"""One small classification loop (no DataLoader) per way of computing the loss.

--kind: functional-ce (F.cross_entropy), functional-mse (F.mse_loss),
module-ce (nn.CrossEntropyLoss), custom (a parameter-free nn.Module named
like a loss), custom-unnamed (a parameter-free nn.Module whose name says
nothing: told apart by its scalar output), in-forward (the model calls
nn.CrossEntropyLoss inside its forward), in-forward-custom (the model calls a
custom nn.Module loss inside its forward), in-forward-functional (the model
calls F.cross_entropy inside its forward).
Options: --steps N --forward S (the model's own work) --loss S (custom losses
sleep S per call) --print-loss (one "loss <i> <repr>" line per step).
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("functional-ce", "functional-mse", "module-ce", "custom", "custom-unnamed",
         "in-forward", "in-forward-custom", "in-forward-functional")
ap = argparse.ArgumentParser()
ap.add_argument("--kind", choices=KINDS, required=True)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--forward", type=float, default=0.0)
ap.add_argument("--loss", type=float, default=0.0)
ap.add_argument("--print-loss", action="store_true")
args = ap.parse_args()


class SleepyCrossEntropyLoss(nn.Module):
    def forward(self, logits, y):
        time.sleep(args.loss)
        return F.cross_entropy(logits, y)


class Objective(nn.Module):
    """A custom loss whose class name does not say so."""

    def forward(self, logits, y):
        time.sleep(args.loss)
        return -logits.log_softmax(-1).gather(1, y[:, None]).mean()


class Classifier(nn.Module):
    def __init__(self, criterion=None):
        super().__init__()
        self.lin = nn.Linear(8, 3)
        self.criterion = criterion

    def forward(self, x, y=None):
        time.sleep(args.forward)
        logits = self.lin(x)
        if y is None:
            return logits
        if self.criterion is None:
            return F.cross_entropy(logits, y)
        return self.criterion(logits, y)


def main():
    torch.manual_seed(0)
    X, Y = torch.randn(args.steps * 4, 8), torch.randint(0, 3, (args.steps * 4,))
    inside = args.kind.startswith("in-forward")
    criterion = {"in-forward": nn.CrossEntropyLoss(), "in-forward-custom":
                 SleepyCrossEntropyLoss()}.get(args.kind)
    model = Classifier(criterion if inside else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = {"functional-ce": F.cross_entropy,
               "functional-mse": lambda out, y: F.mse_loss(out, F.one_hot(y, 3).float()),
               "module-ce": nn.CrossEntropyLoss(), "custom": SleepyCrossEntropyLoss(),
               "custom-unnamed": Objective()}.get(args.kind)
    for i in range(args.steps):
        x, y = X[4 * i:4 * i + 4], Y[4 * i:4 * i + 4]
        if inside:
            loss = model(x, y)
        else:
            loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.print_loss:
            print("loss", i, repr(loss.item()))
    print("done", args.kind)


if __name__ == "__main__":
    main()
