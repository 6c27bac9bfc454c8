"""A loader whose workers burn CPU (a busy loop, not a sleep): input-bound, saturated workers.

Options: --steps N --batch-size N --workers N --burn S (CPU seconds per batch, in
__getitem__) --forward S (sleep in forward)
"""
import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--batch-size", type=int, default=4)
ap.add_argument("--workers", type=int, default=0)
ap.add_argument("--burn", type=float, default=0.05)
ap.add_argument("--forward", type=float, default=0.0)
args = ap.parse_args()


def burn(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1
    return x


class BurnData(Dataset):
    def __len__(self):
        return args.steps * args.batch_size

    def __getitem__(self, i):
        burn(args.burn / args.batch_size)
        return torch.full((8,), float(i % 7)), torch.tensor(float(i % 3))


def main():
    torch.manual_seed(0)
    loader = DataLoader(BurnData(), batch_size=args.batch_size, num_workers=args.workers)
    model = nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in loader:
        out = model(x).squeeze(-1)
        time.sleep(args.forward)
        loss = ((out - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print("done", loss.item())


if __name__ == "__main__":
    main()
