"""A user worker_init_fn that proves it ran: one marker file per call.

Options: --marker-dir DIR --workers N --start-method fork|spawn --persistent
--epochs N --steps N
"""
import argparse
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info

ap = argparse.ArgumentParser()
ap.add_argument("--marker-dir", required=True)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--start-method", default=None)
ap.add_argument("--persistent", action="store_true")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--steps", type=int, default=4)
args = ap.parse_args()


def user_worker_init(worker_id):
    info = get_worker_info()
    assert info is not None and info.id == worker_id
    path = os.path.join(args.marker_dir, f"init-{os.getpid()}-{worker_id}")
    with open(path, "w") as fh:
        fh.write(f"{worker_id} {info.num_workers}\n")


class Samples(Dataset):
    def __len__(self):
        return args.steps * 2

    def __getitem__(self, i):
        return torch.full((4,), float(i)), torch.tensor(float(i % 2))


def main():
    torch.manual_seed(0)
    kw = {"num_workers": args.workers, "persistent_workers": args.persistent,
          "worker_init_fn": user_worker_init}
    if args.start_method:
        kw["multiprocessing_context"] = args.start_method
    loader = DataLoader(Samples(), batch_size=2, **kw)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(args.epochs):
        for x, y in loader:
            assert loader.worker_init_fn is user_worker_init
            loss = ((model(x).squeeze(-1) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loader.worker_init_fn is user_worker_init
    print("done")


if __name__ == "__main__":
    main()
