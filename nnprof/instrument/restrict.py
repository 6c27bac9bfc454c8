"""Overfit rungs: a DataLoader cut down to a few examples of its dataset.

The examples span the classes when the dataset's labels can be read without
loading an item (``targets``, ``labels``, ``samples`` / ``imgs`` as an
``ImageFolder`` holds them, the last tensor of a ``TensorDataset``, a ``label``
column of a Hugging Face dataset, through ``Subset`` and through a wrapper of the
same length that holds its ``dataset``): the first example of each class in turn, then the second, and so
on. Otherwise, and for iterable datasets, the first ``n`` items.
"""
from __future__ import annotations

import numbers
from typing import Optional

import torch

MAX_LABELS = 10_000_000  # labels read at most: a list this long is still cheap


class RepeatFirst(torch.utils.data.Dataset):
    """``n`` items of a dataset (the first ones, or ``indices``), repeated to its
    full length."""

    def __init__(self, dataset, n: int, indices: Optional[list] = None) -> None:
        self.dataset = dataset
        self.n = max(1, min(n, len(dataset)))
        self.indices = list(indices)[:self.n] if indices else list(range(self.n))
        self.length = len(dataset)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        return self.dataset[self.indices[int(i) % len(self.indices)]]


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


def _as_labels(values, n: int) -> Optional[list]:
    """``values`` as a list of ``n`` class labels (integers or strings), or None."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 1 or values.is_floating_point() or values.is_complex():
            return None
        values = values.tolist()
    elif hasattr(values, "dtype") and hasattr(values, "tolist"):  # a numpy array
        if getattr(values, "ndim", 1) != 1 or values.dtype.kind not in "iub":
            return None
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or len(values) != n:
        return None
    if not all(isinstance(v, (numbers.Integral, str)) for v in values[:1000]):
        return None  # regression targets, one-hot rows: no classes to spread over
    return list(values)


def read_labels(ds, depth: int = 0) -> Optional[list]:
    """Per-item class labels of a map-style dataset, when they can be read without
    loading an item; None otherwise."""
    try:
        n = len(ds)
    except TypeError:
        return None
    if n > MAX_LABELS or depth > 4:
        return None
    try:
        if isinstance(ds, torch.utils.data.Subset):
            parent = read_labels(ds.dataset, depth + 1)
            return None if parent is None else [parent[int(i)] for i in ds.indices]
        if isinstance(ds, torch.utils.data.TensorDataset):
            return _as_labels(ds.tensors[-1], n) if len(ds.tensors) > 1 else None
        for attr in ("targets", "labels"):
            got = _as_labels(getattr(ds, attr, None), n)
            if got is not None:
                return got
        columns = getattr(ds, "column_names", None)  # a Hugging Face datasets.Dataset
        if isinstance(columns, (list, tuple)):
            for col in ("label", "labels"):
                if col in columns:
                    got = _as_labels(list(ds[col]), n)
                    if got is not None:
                        return got
        for attr in ("samples", "imgs"):  # ImageFolder / DatasetFolder: (path, class)
            samples = getattr(ds, attr, None)
            if isinstance(samples, (list, tuple)) and len(samples) == n and all(
                    isinstance(s, (list, tuple)) and len(s) >= 2 for s in samples[:1000]):
                got = _as_labels([s[1] for s in samples], n)
                if got is not None:
                    return got
        inner = getattr(ds, "dataset", None)  # a wrapper (transforms) of the same length
        if inner is not None and inner is not ds and hasattr(inner, "__getitem__") \
                and not isinstance(ds, RepeatFirst) and len(inner) == n:
            return read_labels(inner, depth + 1)
    except Exception:  # a dataset attribute that misbehaves: fall back to the first items
        return None
    return None


def spread_over_classes(labels: list, n: int) -> list:
    """Indices of ``n`` examples: the first of each class (in order of first
    appearance), then the second of each, and so on."""
    by_class: dict = {}
    for i, c in enumerate(labels):
        kept = by_class.setdefault(c, [])
        if len(kept) < n:
            kept.append(i)
    picked: list = []
    rank = 0
    while len(picked) < n:
        row = [kept[rank] for kept in by_class.values() if rank < len(kept)]
        if not row:
            break
        picked.extend(row[:n - len(picked)])
        rank += 1
    return picked


def restricted_args(init, loader, args, kwargs, n: int):
    """DataLoader arguments with the dataset cut to ``n`` items, in a fixed order:
    ``(args, kwargs, how)``, ``how`` = {"selection": "classes" | "first",
    "classes": the number of classes among the chosen items, or None if unknown}."""
    import inspect
    bound = inspect.signature(init).bind(loader, *args, **kwargs)
    a = bound.arguments
    ds = a["dataset"]
    how = {"selection": "first", "classes": None}
    if isinstance(ds, torch.utils.data.IterableDataset):
        a["dataset"] = RepeatFirstIterable(ds, n)
    else:
        labels = read_labels(ds)
        indices = None
        if labels is not None and labels:
            indices = spread_over_classes(labels, n)
            how = {"selection": "classes",
                   "classes": len({labels[i] for i in indices})}
        a["dataset"] = RepeatFirst(ds, n, indices)
    bs = a.get("batch_sampler")
    if bs is not None:
        a["batch_sampler"] = None
        a["batch_size"] = getattr(bs, "batch_size", 1) or 1
        a["drop_last"] = bool(getattr(bs, "drop_last", False))
    a["sampler"] = None
    a["shuffle"] = False
    bound.arguments.pop("self", None)
    return (), dict(bound.arguments), how


class Restriction:
    """Counts the DataLoaders built on each line and, in an overfit rung, cuts
    down the one the rung names.

    ``restrict`` ({"file", "line", "index", "examples"}, or None outside a
    rung): the loader built at that site as the ``index``-th there (every one
    there without ``index``), and those built there later over the same
    dataset object (a training loader rebuilt each epoch), serve ``examples``
    items; each such cut is written as a "restricted" loader event.
    """

    def __init__(self, restrict: Optional[dict], writer) -> None:
        try:  # an internal setting, but a malformed one must not break the script
            self.examples = max(1, int((restrict or {}).get("examples") or 1))
            index = (restrict or {}).get("index")
            self.index = None if index is None else int(index)
        except (TypeError, ValueError, AttributeError):
            restrict = None
        self.restrict = restrict
        self.writer = writer
        self.built: dict = {}   # (file, line) -> loaders built there so far
        self.chosen: list = []  # datasets of the loaders cut so far

    def __call__(self, init, loader, args, kwargs, site: tuple):
        """(args, kwargs, index): the DataLoader's arguments, cut when it is the
        rung's loader, and its rank among the loaders built at ``site``."""
        key = tuple(site[:2])
        index = self.built.get(key, 0)
        self.built[key] = index + 1
        r = self.restrict
        if r is None or key != (r.get("file"), r.get("line")):
            return args, kwargs, index
        ds = args[0] if args else kwargs.get("dataset")
        want = self.index
        if want is not None and index != want and not any(ds is d for d in self.chosen):
            return args, kwargs, index
        self.chosen.append(ds)
        n = self.examples
        args, kwargs, how = restricted_args(init, loader, args, kwargs, n)
        self.writer.loader_event({"event": "restricted", "file": site[0], "line": site[1],
                                  "index": index, "examples": n, **how})
        return args, kwargs, index
