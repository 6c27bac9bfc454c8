"""Training loops whose backward() runs on a scaled loss, or on a sum of losses.

--mode accelerate: Accelerator(gradient_accumulation_steps=2), accelerator.backward(loss)
--mode hf:         transformers' Trainer, gradient_accumulation_steps=2, a tiny BERT
                   classifier built from a config (the loss is computed in its forward),
                   marked as taking no loss kwargs, as custom and older models are: the
                   Trainer then divides the loss by the accumulation steps
--mode hf-lm:      the same with a tiny GPT-2 language model, which sums the token
                   losses and divides by the tokens of the whole accumulation window
                   (num_items_in_batch); some labels are -100 (ignored). The loss
                   printed is the micro-batch's mean over its own tokens.
--mode div:        (loss / 2).backward(), a hand-written accumulation over 2 batches
--mode sum:        (cross_entropy + 0.5 * mse).backward(): a sum of two losses
Each backward prints "loss <i> <repr>": the loss the script computed (the loss
function's output; for --mode sum, the sum). Options: --steps N (backward
passes) --out DIR (the Trainer's output directory).
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=("accelerate", "hf", "hf-lm", "div", "sum"), required=True)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--out", default="hf-out")
args = ap.parse_args()

torch.manual_seed(0)
BATCH = 4


def plain(mode):
    x, y = torch.randn(args.steps * BATCH, 8), torch.randint(0, 3, (args.steps * BATCH,))
    model = nn.Linear(8, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH)
    if mode == "accelerate":
        from accelerate import Accelerator
        accelerator = Accelerator(gradient_accumulation_steps=2, cpu=True)
        model, opt, loader = accelerator.prepare(model, opt, loader)
    for i, (xb, yb) in enumerate(loader):
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        if mode == "accelerate":
            with accelerator.accumulate(model):
                accelerator.backward(loss)
                opt.step()
                opt.zero_grad()
        else:
            if mode == "sum":
                loss = loss + 0.5 * F.mse_loss(out, F.one_hot(yb, 3).float())
                loss.backward()
            else:
                (loss / 2).backward()
            if mode == "sum" or i % 2 == 1:
                opt.step()
                opt.zero_grad()
        print("loss", i, repr(loss.item()))


class Tokens(Dataset):
    def __init__(self, n):
        self.ids = torch.randint(0, 50, (n, 8))
        self.labels = torch.randint(0, 3, (n,))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def hf():
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=3, max_position_embeddings=16)
    model = BertForSequenceClassification(cfg)
    model.accepts_loss_kwargs = False
    seen = [0]

    def show(module, inputs, output):
        if module.training:
            print("loss", seen[0], repr(output["loss"].item()))
            seen[0] += 1

    model.register_forward_hook(show)
    targs = TrainingArguments(output_dir=args.out, per_device_train_batch_size=BATCH,
                              gradient_accumulation_steps=2, max_steps=args.steps // 2,
                              learning_rate=1e-3, report_to=[], save_strategy="no",
                              logging_strategy="no", use_cpu=True, disable_tqdm=True,
                              dataloader_num_workers=0)
    Trainer(model=model, args=targs, train_dataset=Tokens(args.steps * BATCH)).train()


class Texts(Dataset):
    def __init__(self, n):
        self.ids = torch.randint(0, 50, (n, 8))
        self.labels = self.ids.clone()
        for i in range(n):  # a different number of ignored tokens per sequence
            self.labels[i, 8 - i % 4:] = -100

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def hf_lm():
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
    cfg = GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(cfg)
    seen = [0]

    def show(module, inputs, kwargs, output):
        if not module.training:
            return
        with torch.no_grad():  # the mean over this micro-batch's own tokens, by hand
            logp = output["logits"][:, :-1].log_softmax(-1)
            y = kwargs["labels"][:, 1:]
            keep = y != -100
            nll = -logp.gather(-1, y.clamp(min=0)[..., None])[..., 0]
            print("loss", seen[0], repr((nll[keep].sum() / keep.sum()).item()))
        seen[0] += 1

    model.register_forward_hook(show, with_kwargs=True)
    targs = TrainingArguments(output_dir=args.out, per_device_train_batch_size=BATCH,
                              gradient_accumulation_steps=2, max_steps=args.steps // 2,
                              learning_rate=1e-3, report_to=[], save_strategy="no",
                              logging_strategy="no", use_cpu=True, disable_tqdm=True,
                              dataloader_num_workers=0)
    Trainer(model=model, args=targs, train_dataset=Texts(args.steps * BATCH)).train()


if args.mode == "hf":
    hf()
elif args.mode == "hf-lm":
    hf_lm()
else:
    plain(args.mode)
print("done")
