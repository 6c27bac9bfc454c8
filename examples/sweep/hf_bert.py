"""A tiny BERT classifier under the transformers Trainer, on synthetic token data.

    nnprof sweep --trials 6 --parallel 2 -p lr=loguniform:1e-4:1 -p weight-decay=uniform:0:0.1 \
        examples/sweep/hf_bert.py

Plain runs: lr 3e-3..2e-2 is best (eval loss < 1e-3 after 3 epochs); 1e-4 stays near 0.69
(chance), and so does anything from 5e-2 up.

The label is whether token 5 appears in the first half of the sequence. The Trainer
evaluates each epoch; this prints the eval loss it reports.
"""
import argparse
import tempfile

import torch
from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,
                          TrainingArguments)


class TokenData(torch.utils.data.Dataset):
    def __init__(self, n, seed, seq=16, vocab=50):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(6, vocab, (n, seq), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)
        pos = torch.randint(0, seq // 2, (n,), generator=g)
        self.ids[self.labels == 1, pos[self.labels == 1]] = 5

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]),
                "labels": self.labels[i]}


class PrintEval(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        print(f"epoch {state.epoch:.0f} val_loss {metrics['eval_loss']:.6f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(config)
    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hf_bert-"), learning_rate=args.lr,
        weight_decay=args.weight_decay, num_train_epochs=args.epochs,
        per_device_train_batch_size=32, per_device_eval_batch_size=64,
        eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], disable_tqdm=True, use_cpu=True, seed=0)
    trainer = Trainer(model=model, args=training_args, train_dataset=TokenData(4800, 1),
                      eval_dataset=TokenData(400, 2), callbacks=[PrintEval()])
    trainer.train()


if __name__ == "__main__":
    main()
