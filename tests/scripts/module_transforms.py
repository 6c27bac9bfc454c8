"""A dataset whose transforms are ``nn.Module``s, the way torchvision's v2 transforms are
(``v2.Compose`` is an ``nn.Module`` holding a plain list of modules): a random flip that
sleeps --flip-cost, a jitter that sleeps --jitter-cost, per item, in the main process
(or in --workers workers).

Ground truth: --steps train steps of one forward each; the model is the only model; the
transform members take their sleeps per item, batches of 4.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=8)
ap.add_argument("--flip-cost", type=float, default=0.002)
ap.add_argument("--jitter-cost", type=float, default=0.004)
ap.add_argument("--workers", type=int, default=0)
args = ap.parse_args()


class Compose(nn.Module):
    def __init__(self, transforms):
        super().__init__()
        self.transforms = transforms

    def forward(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class RandomHorizontalFlip(nn.Module):
    def forward(self, x):
        time.sleep(args.flip_cost)
        return x.flip(-1) if torch.rand(()) < 0.5 else x


class ColorJitter(nn.Module):
    def forward(self, x):
        time.sleep(args.jitter_cost)
        return x * (1 + 0.1 * torch.rand(()))


class Normalize(nn.Module):
    def forward(self, x):
        return (x - 0.5) / 0.25


class Images(Dataset):
    def __init__(self, n, transform):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, 8, 8, generator=g)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.transform = transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


if __name__ == "__main__":
    torch.manual_seed(0)
    ds = Images(4 * args.steps, Compose([RandomHorizontalFlip(), ColorJitter(), Normalize()]))
    loader = DataLoader(ds, batch_size=4, num_workers=args.workers)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("done")
