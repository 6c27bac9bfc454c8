"""A hand-written training loop: a small MLP, DataLoader, CrossEntropy, AdamW.

    nnprof sweep --trials 6 --parallel 2 -p lr=loguniform:1e-4:1 -p weight-decay=loguniform:1e-4:0.1 \
        examples/sweep/plain_loop.py

Plain runs: lr 3e-4..1e-3 is best (val loss ~0.42 after 5 epochs); 1e-4 gives ~0.57, 1e-2 ~0.53,
0.1 ~0.75.
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)
    w = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
    y = (x @ w + 1.0 * torch.randn(n, 10, generator=g)).argmax(1)
    return TensorDataset(x, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    train_loader = DataLoader(make_data(50000, 1), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(make_data(1000, 2), batch_size=128)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr,
                                  weight_decay=args.weight_decay)
    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for x, y in val_loader:
                out = model(x)
                total += criterion(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                n += len(y)
        print(f"epoch {epoch} val_loss {total / n:.6f} val_acc {correct / n:.4f}")


if __name__ == "__main__":
    main()
