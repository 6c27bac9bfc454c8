"""A tiny 3-class classifier whose loaders a framework builds, from one line of loader().

--framework plain:      a plain loop over the training loader, a validation pass per epoch
--framework lightning:  a LightningDataModule whose train and val loaders both come
                        from ``loader()`` (one line builds both), Trainer(max_epochs=E)
--framework accelerate: ``accelerator.prepare`` rebuilds both loaders on one line
--data sorted:          an ImageFolder-like dataset sorted by class, with ``samples``
                        as (path, class) pairs (the labels can be read)
--data hidden:          the same items, sorted, without any label attribute
--data shuffled:        the same, in random order, without any label attribute
Options: --epochs E (default 1) --lr LR (default 0.05, SGD) --rebuild (plain: both
loaders built anew at each epoch)
Prints "train loader at <line>" with the line of the DataLoader call in loader().
"""
import argparse
import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--framework", choices=("plain", "lightning", "accelerate"), default="plain")
ap.add_argument("--data", choices=("sorted", "hidden", "shuffled"), default="sorted")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--rebuild", action="store_true")
args = ap.parse_args()

torch.manual_seed(0)
CLASSES, FEATURES, PER_CLASS, BATCH = 3, 8, 16, 8
centers = 3 * torch.randn(CLASSES, FEATURES)


class Folder(Dataset):
    """Items sorted by class, as ImageFolder lists its files."""

    def __init__(self, per_class, labels_visible, shuffled=False):
        ys = [c for c in range(CLASSES) for _ in range(per_class)]
        if shuffled:
            ys = [ys[i] for i in torch.randperm(len(ys)).tolist()]
        self.x = centers[torch.tensor(ys)] + torch.randn(len(ys), FEATURES)
        self.y = ys
        if labels_visible:
            self.samples = [(f"class{c}/{i}.png", c) for i, c in enumerate(ys)]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def make(per_class):
    return Folder(per_class, args.data == "sorted", args.data == "shuffled")


def loader(ds, shuffle):
    return DataLoader(ds, batch_size=BATCH, shuffle=shuffle)


LOADER_LINE = inspect.getsourcelines(loader)[1] + 1
print("train loader at", LOADER_LINE)
train_ds, val_ds = make(PER_CLASS), make(4)


def plain():
    model = nn.Linear(FEATURES, CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    train, val = loader(train_ds, True), loader(val_ds, False)
    for epoch in range(args.epochs):
        if args.rebuild and epoch:
            train, val = loader(train_ds, True), loader(val_ds, False)
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            print("val", sum(F.cross_entropy(model(x), y).item() for x, y in val))


def accelerate():
    from accelerate import Accelerator
    acc = Accelerator(cpu=True)
    model = nn.Linear(FEATURES, CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    model, opt, train, val = acc.prepare(model, opt, loader(train_ds, True), loader(val_ds, False))
    for _ in range(args.epochs):
        for x, y in train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            acc.backward(loss)
            opt.step()
        with torch.no_grad():
            print("val", sum(F.cross_entropy(model(x), y).item() for x, y in val))


def lightning():
    import lightning as L

    class Data(L.LightningDataModule):
        def train_dataloader(self):
            return loader(train_ds, True)

        def val_dataloader(self):
            return loader(val_ds, False)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(FEATURES, CLASSES)

        def training_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self.lin(x), y)

        def validation_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self.lin(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=args.lr)

    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Module(), datamodule=Data())


{"plain": plain, "lightning": lightning, "accelerate": accelerate}[args.framework]()
print("done")
