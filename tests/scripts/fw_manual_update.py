"""Hand-written SGD with no DataLoader and no optimizer, in the style of pytorch/examples
``word_language_model`` (an LSTM language model, batches sliced by hand with ``bptt``,
``model.zero_grad()``, gradient clipping, ``p.data.add_(p.grad, alpha=-lr)``, an
evaluation under ``torch.no_grad()`` every epoch) and ``regression``
(``param.data.add_(-lr * param.grad)``, with ``--update scaled``).

Ground truth: ``--epochs`` x 8 train iterations (one backward each) and ``--epochs`` x 3
gradient-free evaluation batches; the manual update of each iteration takes at least
``--update-cost`` seconds (a sleep inside it). Prints ``loss <i> <repr>`` per train
iteration (the criterion's output, the scalar ``backward()`` is called on).
"""
import argparse
import math
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--update", choices=("alpha", "scaled"), default="alpha")
ap.add_argument("--update-cost", type=float, default=0.0)
ap.add_argument("--lr", type=float, default=5.0)
args = ap.parse_args()

NTOKENS, BSZ, EVAL_BSZ, BPTT = 40, 4, 4, 5


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid = nhid

    def forward(self, inp, hidden):
        output, hidden = self.rnn(self.encoder(inp), hidden)
        return self.decoder(output).view(-1, self.decoder.out_features), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(1, bsz, self.nhid), weight.new_zeros(1, bsz, self.nhid))


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(BPTT, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


torch.manual_seed(0)
train_data = batchify(torch.randint(NTOKENS, (41 * BSZ,)), BSZ)      # 8 batches of bptt 5
val_data = batchify(torch.randint(NTOKENS, (16 * EVAL_BSZ,)), EVAL_BSZ)  # 3 batches
model = RNNModel(NTOKENS, 16, 16)
criterion = nn.CrossEntropyLoss()
step = 0


def evaluate(data_source):
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(EVAL_BSZ)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, BPTT):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train(lr):
    global step
    model.train()
    hidden = model.init_hidden(BSZ)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, BPTT)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        time.sleep(args.update_cost)
        for p in model.parameters():
            if args.update == "alpha":
                p.data.add_(p.grad, alpha=-lr)
            else:
                p.data.add_(-lr * p.grad)
        print(f"loss {step} {loss.item()!r}")
        step += 1


lr = args.lr
for epoch in range(1, args.epochs + 1):
    train(lr)
    val_loss = evaluate(val_data)
    print(f"| end of epoch {epoch} | valid loss {val_loss:5.3f} | valid ppl {math.exp(val_loss):8.2f}")
    lr /= 4.0
print(f"done {step}")
