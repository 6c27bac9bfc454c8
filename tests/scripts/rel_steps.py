"""A free training loop (no DataLoader) for reliability tests.

--steps N (0: forever)  --sleep S (after each step)
--side FILE     append "<step>\n" to FILE after each step (raw os.write: survives kill -9)
--exit-at K --exit-code N   call os._exit(N) right after step K
--chdir DIR --chdir-at K    os.chdir(DIR) after step K, then write "cwd.txt" (relative)
--rss-at LIST   print "rss STEP BYTES" (VmRSS from /proc/self/status) at these steps
                and at the end
--code N        end with sys.exit(N)
--val-every K   a classifier (cross-entropy) with a validation pass under no_grad every
                K steps (the evaluation metrics nnprof records are written then)
Prints "step N done" every --print-every steps (flushed) and "finished".
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--sleep", type=float, default=0.0)
ap.add_argument("--side", default=None)
ap.add_argument("--exit-at", type=int, default=0)
ap.add_argument("--exit-code", type=int, default=5)
ap.add_argument("--chdir", default=None)
ap.add_argument("--chdir-at", type=int, default=3)
ap.add_argument("--rss-at", default="")
ap.add_argument("--print-every", type=int, default=1)
ap.add_argument("--code", type=int, default=0)
ap.add_argument("--val-every", type=int, default=0)
args = ap.parse_args()


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    classify = args.val_every > 0
    model = nn.Linear(4, 3 if classify else 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    y = torch.randint(0, 3, (8,)) if classify else torch.randn(8, 1)
    loss_fn = nn.functional.cross_entropy if classify else nn.functional.mse_loss
    side = os.open(args.side, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if args.side else None
    rss_at = {int(s) for s in args.rss_at.split(",") if s}
    step = 0
    while args.steps == 0 or step < args.steps:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if side is not None:
            os.write(side, b"%d\n" % step)
        if step % args.print_every == 0:
            print(f"step {step} done", flush=True)
        if classify and step % args.val_every == 0:
            with torch.no_grad():
                loss_fn(model(x), y)
        if step in rss_at:
            print(f"rss {step} {rss_bytes()}", flush=True)
        if args.chdir and step == args.chdir_at:
            os.chdir(args.chdir)
            with open("cwd.txt", "w") as fh:
                fh.write(os.getcwd())
        if args.exit_at and step == args.exit_at:
            sys.stdout.flush()
            os._exit(args.exit_code)
        if args.sleep:
            time.sleep(args.sleep)
    if rss_at:
        print(f"rss end {rss_bytes()}", flush=True)
    print("finished")
    sys.exit(args.code)


if __name__ == "__main__":
    main()
