"""A tiny training loop that ends as told, for exit-code and signal tests.

--mode ok|exit|crash|forever  --steps N  --sleep S  --code N (for exit)
--crash-at N (for crash). Prints "step N done" (flushed) after each optimizer step.
"""
import argparse
import sys
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--mode", default="ok", choices=("ok", "exit", "crash", "forever"))
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--sleep", type=float, default=0.0)
ap.add_argument("--code", type=int, default=3)
ap.add_argument("--crash-at", type=int, default=4)
args = ap.parse_args()


def explode(step):
    raise RuntimeError(f"boom after step {step}")  # the line the traceback must show


def main():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    step = 0
    while args.mode == "forever" or step < args.steps:
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        print(f"step {step} done", flush=True)
        if args.sleep:
            time.sleep(args.sleep)
        if args.mode == "crash" and step == args.crash_at:
            explode(step)
    if args.mode == "exit":
        sys.exit(args.code)
    print("finished")


main()
