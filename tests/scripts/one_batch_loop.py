"""One batch taken from a DataLoader, then many updates on it, a model trained layer
by layer (as forward-forward training does): every optimizer step is a training step,
the loader defines none of them.

Options: --layers L (layers, each with its own optimizer, trained in turn)
--steps N (updates per layer) --updates-per-batch K (iterate the loader instead and
make K updates on each batch) --epochs E (with --updates-per-batch) --batches B.
Prints "loss <i> <repr>" for every update.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--updates-per-batch", type=int, default=0)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--batches", type=int, default=3)
args = ap.parse_args()

torch.manual_seed(0)
X, Y = torch.randn(16 * args.batches, 8), torch.randint(0, 3, (16 * args.batches,))
loader = DataLoader(TensorDataset(X, Y), batch_size=16, shuffle=True)
layers = [nn.Linear(8, 8) for _ in range(args.layers - 1)] + [nn.Linear(8, 3)]
n = 0


def loss_of(i, x, y):
    for layer in layers[:i]:
        x = torch.relu(layer(x)).detach()  # the layers below are trained already
    out = layers[i](x)
    return F.cross_entropy(out, y) if i == len(layers) - 1 else out.pow(2).mean()


def update(opt, i, x, y):
    global n
    loss = loss_of(i, x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print("loss", n, repr(loss.item()))
    n += 1


if args.updates_per_batch:
    opt = torch.optim.SGD([p for m in layers for p in m.parameters()], lr=0.05)
    for _ in range(args.epochs):
        for x, y in loader:
            for _ in range(args.updates_per_batch):
                update(opt, len(layers) - 1, x, y)
else:
    x, y = next(iter(loader))
    for i, layer in enumerate(layers):
        opt = torch.optim.Adam(layer.parameters(), lr=0.01)
        for _ in range(args.steps):
            update(opt, i, x, y)
print("done", n)
