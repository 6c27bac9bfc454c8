"""A VAE trained over a DataLoader and tested over another after each epoch; then,
under torch.no_grad(), a sample is drawn with model.decode(torch.randn(...)) (two
submodules called in a row, no loss): a sample, not an evaluation step.

Options: --epochs E --batches B (train batches) --test-batches T.
Prints "loss <i> <repr>" for every train batch (the summed loss, as pytorch/examples'
vae), "bce <epoch> <repr>" for every test batch (the summed binary cross-entropy, the
loss function's part of the test loss) and "test <epoch> <repr>".
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--batches", type=int, default=4)
ap.add_argument("--test-batches", type=int, default=2)
args = ap.parse_args()


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(16, 12), nn.Linear(12, 4), nn.Linear(12, 4)
        self.fc3, self.fc4 = nn.Linear(4, 12), nn.Linear(12, 16)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def loss_function(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()), bce


torch.manual_seed(0)
train = DataLoader(TensorDataset(torch.rand(8 * args.batches, 16)), batch_size=8, shuffle=True)
test = DataLoader(TensorDataset(torch.rand(8 * args.test_batches, 16)), batch_size=8)
model = VAE()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
n = 0
for epoch in range(args.epochs):
    model.train()
    for (x,) in train:
        opt.zero_grad()
        recon, mu, logvar = model(x)
        loss, _ = loss_function(recon, x, mu, logvar)
        loss.backward()
        opt.step()
        print("loss", n, repr(loss.item()))
        n += 1
    model.eval()
    total = 0.0
    with torch.no_grad():
        for (x,) in test:
            recon, mu, logvar = model(x)
            loss, bce = loss_function(recon, x, mu, logvar)
            total += loss.item()
            print("bce", epoch, repr(bce.item()))
        sample = model.decode(torch.randn(8, 4))
    print("test", epoch, repr(total))
print("done", n)
