"""A small transformer language model (4 layers, d 256, vocab 8000, context 128) over a
DataLoader of token sequences, AdamW. Options: --batch N --steps N"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=6)
args = ap.parse_args()
torch.manual_seed(0)
V, T, D = 8000, 128, 256


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.pos = nn.Embedding(V, D), nn.Parameter(torch.zeros(T, D))
        layer = nn.TransformerEncoderLayer(D, 4, 4 * D, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)
        self.head = nn.Linear(D, V)

    def forward(self, idx):
        mask = nn.Transformer.generate_square_subsequent_mask(T)
        return self.head(self.body(self.emb(idx) + self.pos, mask=mask, is_causal=True))


tokens = torch.randint(0, V, (args.batch * args.steps, T + 1))
loader = DataLoader(TensorDataset(tokens), batch_size=args.batch)
model = LM()
opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
for (seq,) in loader:
    logits = model(seq[:, :-1])
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), seq[:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
