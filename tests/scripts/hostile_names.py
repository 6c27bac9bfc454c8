"""A training script full of strings that must never run as HTML: a ModuleDict key,
a parameter left out of the optimizer, and the script's own argv."""
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EVIL = "<img src=x onerror=alert(1)>"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.parts = nn.ModuleDict({EVIL: nn.Linear(4, 2), "body": nn.Linear(4, 2)})

    def forward(self, x):
        return self.parts[EVIL](x) + self.parts["body"](x)


torch.manual_seed(0)
model = Net()
# the hostile-named layer is left out of the optimizer: the wiring verdict names it
opt = torch.optim.SGD(model.parts["body"].parameters(), lr=0.1)
data = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
for x, y in DataLoader(data, batch_size=8):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print("argv:", sys.argv[1:])
