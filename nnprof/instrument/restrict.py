"""Overfit rungs: a DataLoader cut down to its dataset's first examples."""
from __future__ import annotations

import torch


class RepeatFirst(torch.utils.data.Dataset):
    """The first ``n`` items of a dataset, repeated to its full length."""

    def __init__(self, dataset, n: int) -> None:
        self.dataset = dataset
        self.n = max(1, min(n, len(dataset)))
        self.length = len(dataset)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        return self.dataset[int(i) % self.n]


class RepeatFirstIterable(torch.utils.data.IterableDataset):
    """The first ``n`` items of an iterable dataset, cycled as long as the original."""

    def __init__(self, dataset, n: int) -> None:
        self.dataset = dataset
        self.n = max(1, n)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        head = []
        for item in self.dataset:
            head.append(item)
            if len(head) >= self.n:
                break
        if not head:
            return
        try:
            total = len(self.dataset)
        except TypeError:
            total = None
        i = 0
        while total is None or i < total:
            yield head[i % len(head)]
            i += 1


def restricted_args(init, loader, args, kwargs, n: int):
    """DataLoader arguments with the dataset cut to its first ``n`` items, in order."""
    import inspect
    bound = inspect.signature(init).bind(loader, *args, **kwargs)
    a = bound.arguments
    ds = a["dataset"]
    if isinstance(ds, torch.utils.data.IterableDataset):
        a["dataset"] = RepeatFirstIterable(ds, n)
    else:
        a["dataset"] = RepeatFirst(ds, n)
    bs = a.get("batch_sampler")
    if bs is not None:
        a["batch_sampler"] = None
        a["batch_size"] = getattr(bs, "batch_size", 1) or 1
        a["drop_last"] = bool(getattr(bs, "drop_last", False))
    a["sampler"] = None
    a["shuffle"] = False
    bound.arguments.pop("self", None)
    return (), dict(bound.arguments)
