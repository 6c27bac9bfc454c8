"""A tiny Lightning MLP on synthetic 4-class data; prints its own val loss per epoch.

    nnprof sweep --trials 6 --parallel 2 -p lr=loguniform:1e-4:1 -p hidden=choice:32,64,128 \
        examples/sweep/lightning_mlp.py

Plain runs: lr 3e-3..1e-2 is best (val loss ~0.15 after 4 epochs), 1e-4 reaches ~1.0, 1.0 ~1.25.
"""
import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    y = (x @ w + 0.5 * torch.randn(n, 4, generator=g)).argmax(1)
    return TensorDataset(x, y)


class MLP(L.LightningModule):
    def __init__(self, lr, hidden):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 4))
        self.loss_fn = nn.CrossEntropyLoss()
        self.val_losses, self.val_sizes = [], []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self.net(x), y)
        self.val_losses.append(loss.item() * len(y))
        self.val_sizes.append(len(y))

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            print(f"epoch {self.current_epoch} val_loss {sum(self.val_losses) / sum(self.val_sizes):.6f}")
        self.val_losses, self.val_sizes = [], []

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    L.seed_everything(0, verbose=False)
    train = DataLoader(make_data(60000, 1), batch_size=64, shuffle=True)
    val = DataLoader(make_data(500, 2), batch_size=64)
    trainer = L.Trainer(max_epochs=args.epochs, enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(MLP(args.lr, args.hidden), train, val)


if __name__ == "__main__":
    main()
