"""A LightningModule trained by ``lightning.Trainer`` as its documentation shows: a
``training_step`` and a ``validation_step``, train and validation DataLoaders in the
main process, the Trainer's own loop.

Ground truth: ``Trainer(max_epochs=2, limit_train_batches=6, limit_val_batches=3)`` with
the default sanity check (2 validation batches before training) gives 12 train steps
and 2 + 2 x 3 = 8 eval steps; every ``Dataset.__getitem__`` sleeps ``--item-cost``
seconds (batches of 4). Prints ``loss <i> <repr>`` per training step (the
cross-entropy the step returns, which Lightning calls ``backward()`` on).
"""
import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--item-cost", type=float, default=0.0)
ap.add_argument("--epochs", type=int, default=2)
args = ap.parse_args()


class Points(Dataset):
    """Four Gaussian blobs in 16 dimensions."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(4, (n,), generator=g)
        self.x = torch.randn(n, 16, generator=g) + 2.0 * F.one_hot(self.y, 16).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        time.sleep(args.item_cost)
        return self.x[i], self.y[i]


class Classifier(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        self.printed = 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        print(f"loss {self.printed} {loss.item()!r}")
        self.printed += 1
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(0)
    train_loader = DataLoader(Points(32, 1), batch_size=4, shuffle=True, num_workers=0)
    val_loader = DataLoader(Points(16, 2), batch_size=4, num_workers=0)
    trainer = L.Trainer(max_epochs=args.epochs, limit_train_batches=6, limit_val_batches=3,
                        accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    model = Classifier()
    trainer.fit(model, train_loader, val_loader)
    print(f"done {trainer.global_step} val_loss {trainer.callback_metrics['val_loss'].item():.6f}")


if __name__ == "__main__":
    main()
