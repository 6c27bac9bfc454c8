"""Train and validation loaders, or two loaders consumed together with zip().

--mode eval: each epoch trains on --train-batches batches, then validates on
--val-batches batches under model.eval() and torch.no_grad().
--mode zip:  each step takes one batch from each of two loaders (zip), the
shorter one (--val-batches) ends the epoch when --train-batches is larger.

The training dataset's transform is ``TrainJitter``, the validation one's
``ValNormalize`` (--train-transform S / --val-transform S: sleep per batch).

Options: --mode eval|zip --epochs N --train-batches N --val-batches N --workers N
--fetch S --forward S --train-transform S --val-transform S
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--mode", default="eval", choices=("eval", "zip"))
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--train-batches", type=int, default=4)
ap.add_argument("--val-batches", type=int, default=2)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--fetch", type=float, default=0.0)
ap.add_argument("--forward", type=float, default=0.0)
ap.add_argument("--train-transform", type=float, default=0.0)
ap.add_argument("--val-transform", type=float, default=0.0)
args = ap.parse_args()


class TrainJitter:
    def __call__(self, x):
        time.sleep(args.train_transform / args.batch_size)
        return x + 0.01


class ValNormalize:
    def __call__(self, x):
        time.sleep(args.val_transform / args.batch_size)
        return x - 0.5


class Samples(Dataset):
    def __init__(self, n, transform):
        self.n = n
        self.transform = transform

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(args.fetch / args.batch_size)
        return self.transform(torch.full((8,), float(i % 5))), torch.tensor(float(i % 2))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        time.sleep(args.forward)
        return self.lin(x).squeeze(-1)


def main():
    torch.manual_seed(0)
    bs = args.batch_size
    train = DataLoader(Samples(args.train_batches * bs, TrainJitter()), batch_size=bs,
                       num_workers=args.workers)
    other = DataLoader(Samples(args.val_batches * bs, ValNormalize()), batch_size=bs,
                       num_workers=args.workers)
    model = Model()
    loss_fn = nn.MSELoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n_train = n_val = 0
    for epoch in range(args.epochs):
        model.train()
        if args.mode == "zip":
            for (xa, ya), (xb, yb) in zip(train, other):
                x, y = torch.cat([xa, xb]), torch.cat([ya, yb])
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                n_train += 1
            continue
        for x, y in train:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n_train += 1
        model.eval()
        total = 0.0
        with torch.no_grad():
            for x, y in other:
                total += loss_fn(model(x), y).item()
                n_val += 1
    print("train", n_train, "val", n_val)


if __name__ == "__main__":
    main()
