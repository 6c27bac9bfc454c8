"""Lightning DDP on CPU (gloo), two processes, in each of Lightning's launch modes.

``--strategy ddp``: Lightning starts rank 1 itself by running ``sys.executable`` with
``sys.argv`` again; ``--strategy ddp_spawn``: both ranks are ``multiprocessing`` spawn
children of the main process. ``--hook``: the train loader is built in the module's
``train_dataloader`` (else it is built in the script and given to ``fit``). Lightning
rebuilds the loader in each rank to add a ``DistributedSampler`` (from the signature of
``DataLoader.__init__``).

Ground truth: 64 items, batches of 4, 2 ranks: 8 batches per rank per epoch, 2 epochs:
16 train steps per rank, 32 in the job; no validation. Each rank prints
``rank <R> loss <i> <repr>`` per train step and ``done <R> <global_step>`` at the end.
"""
import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--strategy", default="ddp")
ap.add_argument("--hook", action="store_true")
ap.add_argument("--item-cost", type=float, default=0.0)
args = ap.parse_args()


class Points(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(4, (n,), generator=g)
        self.x = torch.randn(n, 16, generator=g) + 2.0 * F.one_hot(self.y, 16).float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if args.item_cost:
            time.sleep(args.item_cost)
        return self.x[i], self.y[i]


def make_loader():
    return DataLoader(Points(64, 1), batch_size=4, shuffle=True, num_workers=0)


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        self.printed = 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        print(f"rank {self.global_rank} loss {self.printed} {loss.item()!r}", flush=True)
        self.printed += 1
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class WithHook(Classifier):
    def train_dataloader(self):
        return make_loader()


def main():
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy=args.strategy,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    if args.hook:
        model = WithHook()
        trainer.fit(model)
    else:
        model = Classifier()
        trainer.fit(model, make_loader())
    print(f"done {trainer.global_rank} {trainer.global_step}", flush=True)


if __name__ == "__main__":
    main()
