"""A hook of the script's own raises mid-run: --where forward|optimizer|collate|backward.

forward: a forward hook on the model; optimizer: a step post-hook on the optimizer;
backward: a tensor hook on the model output's gradient; collate: the DataLoader's
collate_fn (--workers N: in a worker). The hook raises HookError at step --at.
Prints "step N done" (flushed) after each step.
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

ap = argparse.ArgumentParser()
ap.add_argument("--where", required=True,
                choices=("forward", "optimizer", "collate", "backward"))
ap.add_argument("--at", type=int, default=5)
ap.add_argument("--workers", type=int, default=0)
args = ap.parse_args()


class HookError(Exception):
    pass


calls = {"n": 0}


def maybe_raise(what):
    calls["n"] += 1
    if calls["n"] == args.at:
        raise HookError(f"{what} hook failed at call {calls['n']}")


def collate(batch):
    maybe_raise("collate")
    return default_collate(batch)


def main():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if args.where == "forward":
        model.register_forward_hook(lambda m, i, o: maybe_raise("forward"))
    if args.where == "optimizer":
        opt.register_step_post_hook(lambda o, a, k: maybe_raise("optimizer"))
    ds = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
    loader = DataLoader(ds, batch_size=4, num_workers=args.workers,
                        collate_fn=collate if args.where == "collate" else None)
    step = 0
    for x, y in loader:
        out = model(x)
        if args.where == "backward":
            out.register_hook(lambda g: maybe_raise("backward"))
        loss = nn.functional.mse_loss(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        print(f"step {step} done", flush=True)
    print("finished")


if __name__ == "__main__":
    main()
