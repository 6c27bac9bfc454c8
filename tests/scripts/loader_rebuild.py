"""A DataLoader rebuilt from the signature of ``DataLoader.__init__``, as Lightning and
accelerate do to put a DistributedSampler in: every argument the loader holds as an
attribute is passed back.

Ground truth: 40 items, batches of 8 kept: 5 train steps; prints ``batch_size 8`` and
``loss <i> <repr>`` per step.
"""
import inspect

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
ds = TensorDataset(torch.randn(40, 4, generator=g), torch.randn(40, 1, generator=g))
original = DataLoader(ds, batch_size=8, shuffle=False, drop_last=True)
params = inspect.signature(DataLoader.__init__).parameters
kwargs = {name: getattr(original, name) for name in params
          if name not in ("self", "sampler", "batch_sampler") and hasattr(original, name)}
missing = [n for n in ("dataset", "batch_size", "drop_last") if n not in kwargs]
if missing:
    raise SystemExit(f"cannot rebuild the loader: {missing} not in its signature")
loader = DataLoader(**kwargs)
print(f"batch_size {loader.batch_size}")
torch.manual_seed(0)
model = nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i, (x, y) in enumerate(loader):
    loss = F.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"loss {i} {loss.item()!r}")
