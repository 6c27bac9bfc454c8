"""Trains, starts other processes that do torch work of their own, trains on.

--how fork-crash: os.fork(); the child trains 4 steps and dies of an uncaught
                  exception (exit 1, its own traceback); the parent reports it.
--how fork-exit:  os.fork(); the child trains 4 steps and calls os._exit(0).
--how mp-fork:    a multiprocessing Process (fork) and a fork Pool that train.
--how mp-spawn:   a multiprocessing Process (spawn) that trains.
The parent trains 5 steps before and 5 after (one model and optimizer; the children
build their own). Prints what each process did.
"""
import argparse
import multiprocessing as mp
import os
import sys

import torch
from torch import nn


def train(n, seed=0, parts=None):
    torch.manual_seed(seed)
    model, opt = parts or make()
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for _ in range(n):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    return round(loss.item(), 6)


def make():
    model = nn.Linear(4, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def child(q, seed):
    q.put(("child", train(4, seed)))


def crash_in_child():
    train(4, 1)
    raise RuntimeError("child fails on purpose")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--how", required=True,
                    choices=("fork-crash", "fork-exit", "mp-fork", "mp-spawn"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mine = make()  # one model and optimizer: the parent's 10 steps are 10 train steps
    print("parent before", train(5, 0, mine), flush=True)
    if args.how.startswith("fork-"):
        pid = os.fork()
        if pid == 0:
            if args.how == "fork-crash":
                crash_in_child()
            print("child", train(4, 1), flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
    else:
        ctx = mp.get_context("fork" if args.how == "mp-fork" else "spawn")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q, 1))
        p.start()
        print("from", *q.get(timeout=120), flush=True)
        p.join(timeout=120)
        print("child exit", p.exitcode, flush=True)
        if args.how == "mp-fork":
            with ctx.Pool(2) as pool:
                print("pool", pool.map(train, [2, 3, 4]), flush=True)
    print("parent after", train(5, 2, mine), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
