"""A GAN-like loop without a DataLoader: a critic D and a generator G, each with its own
optimizer; D steps --n-critic times per G step (WGAN style when > 1).

Options: --iters N (generator iterations) --n-critic K --forward S (each model
forward sleeps S) --optimizer S (each optimizer step sleeps S) --print-loss
--loader (real batches from a DataLoader, one per iteration, as pytorch/examples'
dcgan does: D steps then G steps on each batch, --n-critic 1, binary cross-entropy
losses as dcgan's).
"""
import argparse
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--iters", type=int, default=4)
ap.add_argument("--n-critic", type=int, default=1)
ap.add_argument("--forward", type=float, default=0.0)
ap.add_argument("--optimizer", type=float, default=0.0)
ap.add_argument("--print-loss", action="store_true")
ap.add_argument("--loader", action="store_true")
args = ap.parse_args()


class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, x):
        time.sleep(args.forward)
        return self.lin(x)


class SleepyAdam(torch.optim.Adam):
    def step(self, closure=None):
        time.sleep(args.optimizer)
        return super().step(closure)


def main():
    torch.manual_seed(0)
    G, D = Net(4, 8), Net(8, 1)
    opt_g = SleepyAdam(G.parameters(), lr=1e-3)
    opt_d = SleepyAdam(D.parameters(), lr=1e-3)
    real = torch.randn(64, 8)
    if args.loader:
        from torch.utils.data import DataLoader, TensorDataset
        batches = DataLoader(TensorDataset(real), batch_size=8)
        it = 0
        while it < args.iters:
            for (x,) in batches:
                if it == args.iters:
                    break
                bce = nn.functional.binary_cross_entropy_with_logits
                fake = G(torch.randn(8, 4))
                d_real, d_fake = D(x), D(fake.detach())
                d_loss = bce(d_real, torch.ones_like(d_real)) + \
                    bce(d_fake, torch.zeros_like(d_fake))
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                d_fake = D(fake)
                g_loss = bce(d_fake, torch.ones_like(d_fake))
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
                if args.print_loss:
                    print("d_loss", it, 0, repr(d_loss.item()))
                    print("g_loss", it, repr(g_loss.item()))
                it += 1
        print("done", args.iters)
        return
    for it in range(args.iters):
        for k in range(args.n_critic):
            z = torch.randn(8, 4)
            x = real[(8 * (it + k)) % 56:][:8]
            fake = G(z).detach()
            d_loss = D(fake).mean() - D(x).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            if args.print_loss:
                print("d_loss", it, k, repr(d_loss.item()))
        z = torch.randn(8, 4)
        g_loss = -D(G(z)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if args.print_loss:
            print("g_loss", it, repr(g_loss.item()))
    print("done", args.iters)


if __name__ == "__main__":
    main()
