"""A compiled model called with three batch sizes (backend "eager"): Dynamo recompiles
its forward, and says so under TORCH_LOGS=recompiles."""
import torch
from torch import nn
from torch._dynamo.utils import counters


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x):
        return self.body(x).relu()


torch.manual_seed(0)
model = torch.compile(Net(), backend="eager", dynamic=False)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for n in (2, 3, 4):
    loss = nn.functional.cross_entropy(model(torch.randn(n, 4)), torch.zeros(n).long())
    opt.zero_grad()
    loss.backward()
    opt.step()
print("frames", dict(counters["frames"]), "graphs", counters["stats"]["unique_graphs"])
