"""A tiny model trained under torch.compile; prints its losses and Dynamo's own counts.

--how: ``module`` (``torch.compile(model)``), ``method`` (``model.compile()``, the loss
module called inside the compiled forward) or ``function`` (a compiled function that
runs the forward and ``F.cross_entropy``). --backend: the compile backend (``eager``
keeps the test fast; graph breaks and recompiles are decided before the backend).
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--how", choices=("module", "method", "function"), default="module")
ap.add_argument("--backend", default="eager")
ap.add_argument("--epochs", type=int, default=2)
args = ap.parse_args()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x, y=None):
        out = self.head(self.body(x))
        return out if y is None else self.criterion(out, y)


torch.manual_seed(0)
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = TensorDataset(torch.randn(24, 8), torch.randint(0, 3, (24,)))
loader = DataLoader(data, batch_size=6, shuffle=True)

if args.how == "module":
    compiled = torch.compile(model, backend=args.backend)

    def loss_of(x, y):
        return F.cross_entropy(compiled(x), y)
    predict = compiled
elif args.how == "method":
    model.compile(backend=args.backend)

    def loss_of(x, y):
        return model(x, y)
    predict = model
else:
    @torch.compile(backend=args.backend)
    def loss_of(x, y):
        return F.cross_entropy(model(x), y)
    predict = model

for epoch in range(args.epochs):
    for i, (x, y) in enumerate(loader):
        opt.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        opt.step()
        print(f"loss {epoch} {i} {loss.item():.6f}")
    with torch.no_grad():
        print(f"eval {epoch} {predict(data.tensors[0]).argmax(1).eq(data.tensors[1]).sum().item()}")

print("graph breaks", sum(counters["graph_break"].values()))
print("graphs", counters["stats"]["unique_graphs"])
print("frames", dict(counters["frames"]))
