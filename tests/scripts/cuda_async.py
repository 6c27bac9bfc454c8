"""A CUDA loop whose forward kernels run long after the host has moved on.

The forward pass queues heavy matmuls (host returns at once); the loop then
calls loss.item() in 'other', which waits for them. Host time lands in
'other', device time must land in 'forward'.
"""
import argparse

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--size", type=int, default=4096)
ap.add_argument("--repeats", type=int, default=12)
args = ap.parse_args()


class Heavy(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n, n, device="cuda") / n ** 0.5)

    def forward(self, x):
        with torch.no_grad():
            for _ in range(args.repeats):
                x = torch.tanh(x @ self.w.detach())
        return (x @ self.w).sum(dim=1)


torch.manual_seed(0)
model = Heavy(args.size)
opt = torch.optim.SGD(model.parameters(), lr=1e-6)
x = torch.randn(args.size, args.size, device="cuda")
for step in range(args.steps):
    out = model(x)
    loss = out.pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"step {step} loss {loss.item():.4f}")
