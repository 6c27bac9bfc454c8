"""transformers' ``Trainer`` fine-tuning a tiny ``BertForSequenceClassification`` built
from a ``BertConfig`` (2 layers, hidden 32) on a torch Dataset of dicts made here.

Options: --eval (``eval_strategy="epoch"``) --accum N (``gradient_accumulation_steps``)
--item-cost S (each ``__getitem__`` sleeps S seconds; batches of 4).

Ground truth: 32 training examples, 2 epochs: 16 micro-batches, each a train step
(one forward and one backward), whatever ``--accum`` is; with ``--eval``, 12
evaluation examples per epoch: 3 batches each, 6 eval steps; without it none.
Prints ``loss <i> <repr>`` per training micro-batch: the model's own cross-entropy,
before the Trainer scales it for gradient accumulation. The Trainer's progress bars
and log printer (which print timings) are off, so that the output is reproducible.
"""
import argparse
import tempfile
import time

import torch
from torch.utils.data import Dataset
from transformers import (BertConfig, BertForSequenceClassification, PrinterCallback,
                          Trainer, TrainingArguments)

ap = argparse.ArgumentParser()
ap.add_argument("--eval", action="store_true")
ap.add_argument("--accum", type=int, default=1)
ap.add_argument("--item-cost", type=float, default=0.0)
args = ap.parse_args()

VOCAB, SEQ = 64, 8


class Sentences(Dataset):
    """Token sequences whose label is whether token 1 appears more often than token 2."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(3, VOCAB, (n, SEQ), generator=g)
        self.ids[:, 1:4] = torch.randint(1, 3, (n, 3), generator=g)
        self.labels = ((self.ids == 1).sum(1) > (self.ids == 2).sum(1)).long()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        time.sleep(args.item_cost)
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(SEQ, dtype=torch.long),
                "labels": self.labels[i]}


class LoggedTrainer(Trainer):
    printed = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            loss = out[0] if return_outputs else out
            print(f"loss {LoggedTrainer.printed} {loss.item()!r}")
            LoggedTrainer.printed += 1
        return out


def main():
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=SEQ, num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as out_dir:
        training_args = TrainingArguments(
            output_dir=out_dir, num_train_epochs=2, per_device_train_batch_size=4,
            per_device_eval_batch_size=4, gradient_accumulation_steps=args.accum,
            learning_rate=1e-3, eval_strategy="epoch" if args.eval else "no",
            save_strategy="no", logging_strategy="no", report_to=[], disable_tqdm=True,
            use_cpu=True, seed=0, dataloader_num_workers=0)
        trainer = LoggedTrainer(model=model, args=training_args,
                                train_dataset=Sentences(32, 1),
                                eval_dataset=Sentences(12, 2) if args.eval else None)
        trainer.remove_callback(PrinterCallback)
        result = trainer.train()
    print(f"done {result.global_step} micro-batches {LoggedTrainer.printed}")


if __name__ == "__main__":
    main()
