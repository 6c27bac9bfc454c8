"""A nanoGPT-style loop: no DataLoader, batches sliced by hand from a token tensor by
``get_batch()``, the model returning ``(logits, loss)`` from ``model(x, y)``, and an
``estimate_loss()`` on the validation split under ``torch.no_grad()``.

Data: token i+1 follows token i by a fixed rule (``(3 * t + 1) % V``) with ``--noise``
of the tokens replaced at random, so that a model that learns the rule generalises.
``--memorise`` makes both splits pure noise and the training split tiny (64 tokens): the
model can only memorise it, and its validation loss rises.

Options: --iters N (default 400) --eval-every K (default 50; 0: no validation) --batch B
(12) --block T (8) --lr (3e-3) --loss-outside (the model returns logits; the loop calls
F.cross_entropy itself) --bug zero-grad (gradients zeroed between backward() and step())
--inputs list (the model takes [x] as a list: replay cannot cut it) --memorise.
Prints ``iter <i> loss <repr>`` every 50 iterations and ``val <i> <repr>`` per pass.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--iters", type=int, default=400)
ap.add_argument("--eval-every", type=int, default=50)
ap.add_argument("--eval-iters", type=int, default=16)
ap.add_argument("--batch", type=int, default=12)
ap.add_argument("--block", type=int, default=8)
ap.add_argument("--lr", type=float, default=3e-3)
ap.add_argument("--noise", type=float, default=0.1)
ap.add_argument("--loss-outside", action="store_true")
ap.add_argument("--bug", choices=["zero-grad"])
ap.add_argument("--inputs", choices=["tensor", "list"], default="tensor")
ap.add_argument("--memorise", action="store_true")
args = ap.parse_args()

V = 16
torch.manual_seed(1337)


def make_tokens(n, gen, noise):
    t = torch.empty(n, dtype=torch.long)
    t[0] = 0
    for i in range(1, n):
        t[i] = (3 * t[i - 1] + 1) % V
    flip = torch.rand(n, generator=gen) < noise
    t[flip] = torch.randint(0, V, (int(flip.sum()),), generator=gen)
    return t


g = torch.Generator().manual_seed(0)
if args.memorise:
    train_data = torch.randint(0, V, (64,), generator=g)
    val_data = torch.randint(0, V, (2000,), generator=g)
else:
    data = make_tokens(20000, g, args.noise)
    train_data, val_data = data[:18000], data[18000:]


def get_batch(split):
    d = train_data if split == "train" else val_data
    ix = torch.randint(len(d) - args.block - 1, (args.batch,))
    x = torch.stack([d[i:i + args.block] for i in ix])
    y = torch.stack([d[i + 1:i + 1 + args.block] for i in ix])
    return x, y


class TinyLM(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.tok = nn.Embedding(V, width)
        self.pos = nn.Embedding(args.block, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))
        self.head = nn.Linear(width, V)

    def forward(self, idx, targets=None):
        if isinstance(idx, list):
            idx = idx[0]
        T = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(T))
        logits = self.head(h + self.mlp(h))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = TinyLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)


def forward(x, y):
    xin = [x] if args.inputs == "list" else x
    if args.loss_outside:
        logits, _ = model(xin)
        return F.cross_entropy(logits.view(-1, V), y.view(-1))
    _, loss = model(xin, y)
    return loss


@torch.no_grad()
def estimate_loss():
    model.eval()
    losses = torch.zeros(args.eval_iters)
    for k in range(args.eval_iters):
        x, y = get_batch("val")
        losses[k] = forward(x, y).item()
    model.train()
    return losses.mean().item()


for it in range(args.iters):
    if args.eval_every and it % args.eval_every == 0:
        print(f"val {it} {estimate_loss()!r}")
    x, y = get_batch("train")
    loss = forward(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if args.bug == "zero-grad":
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
    optimizer.step()
    if it % 50 == 0:
        print(f"iter {it} loss {loss.item()!r}")
print("done")
