"""A small conv classifier trained the way image-training scripts start: SGD with
Nesterov momentum and a per-epoch learning-rate warm-up from 1e-5, over a DataLoader of
synthetic images. With lr 1e-5 some updates are below the float32 spacing of the
weights they would change (a conv bias before a batch norm gets a gradient of rounding
noise), so those weights do not move: rounding, not a wiring fault.

Options: --epochs N --batches N --bf16 (bfloat16 parameters, AdamW at lr 1e-4: a norm
weight of 1.0 plus 1e-4 is 1.0 in bfloat16) --detach (the features' output detached
before the head: a real wiring fault). Prints ``loss <i> <value>`` per update, then
``lr <epoch> <value>`` per epoch.
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--batches", type=int, default=4)
ap.add_argument("--bf16", action="store_true")
ap.add_argument("--detach", action="store_true")
args = ap.parse_args()
torch.manual_seed(0)
dtype = torch.bfloat16 if args.bf16 else torch.float32


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = self.features(x)
        return self.head(h.detach() if args.detach else h)


n = args.batches * 8
labels = torch.arange(n) % 4
images = torch.randn(n, 3, 16, 16) * 0.5 + labels.view(-1, 1, 1, 1) * 0.25
loader = DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=True)
model = Net().to(dtype)
if args.bf16:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    warmup_lr, base_lr, warmup_epochs = 1e-4, 1e-4, 0
else:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=2e-5)
    warmup_lr, base_lr, warmup_epochs = 1e-5, 0.1, 5
i = 0
for epoch in range(args.epochs):
    lr = (warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
          if epoch < warmup_epochs else base_lr)
    for g in opt.param_groups:  # set per epoch, as timm's and many scripts' schedulers do
        g["lr"] = lr
    model.train()
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x.to(dtype)).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"loss {i} {loss.item()!r}")
        i += 1
    print(f"lr {epoch} {lr!r}")
