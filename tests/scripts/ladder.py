"""A tiny classifier for ``nnprof check``: healthy by default, or with a planted bug.

An MLP on separable synthetic data (4 classes, 8 features), a shuffled
DataLoader, Adam at lr 1e-2, cross-entropy.

--bug dead-branch:  a submodule (``unused``) that forward() never calls
--bug detach:       forward() detaches the body's output before the head
--bug not-in-optimizer: the optimizer holds model.body.parameters() only
--bug lr0:          learning rate 0 (nothing can be learned)
--fancy:            dropout, BatchNorm, AdamW with weight decay, a StepLR scheduler
--val:              a validation pass under torch.no_grad() after each epoch
--manual:           no DataLoader: batches sliced from tensors by hand
--crash-after N:    raise RuntimeError("planted crash ...") at train step N
--assert-classes:   assert that each batch holds more than one class (true for the
                    shuffled full data, false once a loader serves a single example)
Options: --epochs N --examples N --batch-size N
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--bug", choices=("dead-branch", "detach", "not-in-optimizer", "lr0"))
ap.add_argument("--fancy", action="store_true")
ap.add_argument("--val", action="store_true")
ap.add_argument("--manual", action="store_true")
ap.add_argument("--crash-after", type=int)
ap.add_argument("--assert-classes", action="store_true")
ap.add_argument("--epochs", type=int, default=40)
ap.add_argument("--examples", type=int, default=64)
ap.add_argument("--batch-size", type=int, default=8)
args = ap.parse_args()

torch.manual_seed(0)
CLASSES, FEATURES = 4, 8
centers = torch.randn(CLASSES, FEATURES)


def make_data(n):
    y = torch.randint(0, CLASSES, (n,))
    return centers[y] + torch.randn(n, FEATURES), y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        if args.fancy:
            self.body = nn.Sequential(nn.Linear(FEATURES, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                      nn.Dropout(0.3))
        else:
            self.body = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU())
        self.head = nn.Linear(32, CLASSES)
        if args.bug == "dead-branch":
            self.unused = nn.Linear(32, 32)

    def forward(self, x):
        h = self.body(x)
        if args.bug == "detach":
            h = h.detach()
        return self.head(h)


model = Net()
lr = 0.0 if args.bug == "lr0" else 1e-2
params = model.body.parameters() if args.bug == "not-in-optimizer" else model.parameters()
if args.fancy:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
else:
    opt = torch.optim.Adam(params, lr=lr)
    sched = None

x, y = make_data(args.examples)
vx, vy = make_data(32)
train_loader = None if args.manual else DataLoader(
    TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
val_loader = DataLoader(TensorDataset(vx, vy), batch_size=16)


def batches():
    if train_loader is not None:
        yield from train_loader
    else:
        perm = torch.randperm(len(x))
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            yield x[idx], y[idx]


step = 0
for epoch in range(args.epochs):
    model.train()
    for xb, yb in batches():
        if args.crash_after is not None and step >= args.crash_after:
            raise RuntimeError(f"planted crash at step {step}")
        if args.assert_classes:
            assert yb.unique().numel() > 1, "a batch holds a single class"
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    if sched is not None:
        sched.step()
    if args.val:
        model.eval()
        with torch.no_grad():
            total = sum(F.cross_entropy(model(a), b).item() * len(b)
                        for a, b in val_loader)
        print(f"epoch {epoch} val {total / len(vx):.4f}")
print("done", step)
