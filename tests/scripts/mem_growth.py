"""Memory across train steps: --mode leak keeps every step's loss with its graph and saved
activations (backward with retain_graph=True, the loss appended to a list), fixed keeps
loss.item(), plateau fills a cache during the first epoch only, total builds a
running `total_loss += loss`. --report prints the resident memory this process gained per
step between its 1st-epoch end and its last step (the truth, measured by itself)."""
import argparse
import time

import psutil
import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=("leak", "fixed", "plateau", "total"), default="leak")
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--sleep", type=float, default=0.004)
ap.add_argument("--report", action="store_true")
args = ap.parse_args()

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 2048), nn.ReLU(), nn.Linear(2048, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
x = torch.randn(128, 256)
y = torch.randint(0, 10, (128,))
kept, cache, total_loss = [], {}, 0.0
proc = psutil.Process()
marks = []
for epoch in range(args.epochs):
    for i in range(args.steps):
        out = model(x)
        loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward(retain_graph=args.mode == "leak")
        opt.step()
        if args.mode == "leak":
            kept.append(loss)
        elif args.mode == "total":
            total_loss += loss
        elif args.mode == "plateau" and epoch == 0:
            cache[i] = torch.randn(128, 2048)   # 1 MB per step, first epoch only
        else:
            kept.append(loss.item())
        time.sleep(args.sleep)
        if i == args.steps - 1:
            marks.append(proc.memory_info().rss)
if args.report:
    per_step = (marks[-1] - marks[0]) / (args.steps * (args.epochs - 1))
    print(f"rss_per_step {per_step:.0f}")
print("done")
