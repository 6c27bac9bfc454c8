"""Timing of a dataset's transforms, swapped in for the duration of one fetch.

The dataset's ``transform`` / ``target_transform`` / ``transforms`` (and each
member of a ``Compose``) are replaced by timing wrappers while one batch is
fetched, walking nested datasets (``Subset.dataset``, ``ConcatDataset.datasets``),
then put back: outside a fetch the script sees its own objects.
"""
from __future__ import annotations

import time

import torch

TRANSFORM_ATTRS = ("transform", "target_transform", "transforms")


class _Timing:
    """Per process: nesting depth and the current batch's transform total."""
    t_depth = 0
    t_total = 0


TIMING = _Timing()


def _type_name(obj) -> str:
    """A transform's class name, or a function's qualified name."""
    name = type(obj).__name__
    if name in ("function", "builtin_function_or_method", "method"):
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", name))
    elif name == "partial":
        name = "partial(" + _type_name(obj.func) + ")"
    return name


class TimedTransform:
    """Times one transform call; the outermost adds to the batch's transform total."""

    __slots__ = ("fn", "name", "by_name")

    def __init__(self, fn, name: str, by_name: dict) -> None:
        self.fn = fn
        self.name = name
        self.by_name = by_name

    def __call__(self, *args, **kwargs):
        st = TIMING
        st.t_depth += 1
        t0 = time.perf_counter_ns()
        try:
            return self.fn(*args, **kwargs)
        finally:
            dt = time.perf_counter_ns() - t0
            st.t_depth -= 1
            if st.t_depth == 0:
                st.t_total += dt
            self.by_name[self.name] = self.by_name.get(self.name, 0) + dt

    def __getattr__(self, item):
        if item in TimedTransform.__slots__:
            raise AttributeError(item)
        return getattr(self.fn, item)


def _compose_members(fn):
    """The members of a ``Compose``: torchvision's v1 (a plain object) and v2 (an
    ``nn.Module`` holding a plain list), or a module of the script's own holding an
    ``nn.ModuleList`` / ``nn.Sequential`` in ``transforms``; None for anything else."""
    members = getattr(fn, "transforms", None)
    if isinstance(members, (torch.nn.ModuleList, torch.nn.Sequential)):
        members = list(members)
    if isinstance(members, (list, tuple)) and members and all(callable(m) for m in members):
        return members
    return None


_NAMES = frozenset(TRANSFORM_ATTRS + ("dataset", "datasets"))
_PLAIN: dict = {}  # class -> it has no class-level ``dataset`` / ``datasets``


def transform_slots(dataset, limit: int = 32) -> list:
    """(object, attribute) pairs holding transforms, through nested datasets. Asked
    once per batch: a dataset whose class and instance hold none of those names (the
    usual case) is told in a few operations, without the walk."""
    try:
        cls = type(dataset)
        plain = _PLAIN.get(cls)
        if plain is None:
            plain = _PLAIN[cls] = not (hasattr(cls, "dataset") or hasattr(cls, "datasets"))
        if plain and _NAMES.isdisjoint(dataset.__dict__):
            return []
    except Exception:  # no __dict__, or an odd one: the walk decides
        pass
    found, stack, seen = [], [dataset], set()
    while stack and len(seen) < limit:
        ds = stack.pop()
        if ds is None or id(ds) in seen:
            continue
        seen.add(id(ds))
        try:  # the instance's own dict, read once
            get = ds.__dict__.get
        except Exception:
            continue
        for attr in TRANSFORM_ATTRS:
            value = get(attr)
            if value is not None and callable(value):
                found.append((ds, attr))
        inner = getattr(ds, "dataset", None)
        if inner is not None and not isinstance(inner, (str, bytes)):
            stack.append(inner)
        many = getattr(ds, "datasets", None)
        if isinstance(many, (list, tuple)):
            stack.extend(many)
    return found


def transform_names(dataset) -> list:
    """Names of the transforms found on a dataset (for metadata and lint)."""
    names = []
    for ds, attr in transform_slots(dataset):
        fn = ds.__dict__[attr]
        members = _compose_members(fn)
        label = _type_name(fn)
        if members:
            label += "(" + ", ".join(_type_name(m) for m in members) + ")"
        names.append(f"{type(ds).__name__}.{attr}={label}")
    return names


class _Swap:
    """Swaps timing wrappers into a dataset's transform slots for one fetch."""

    def __init__(self, slots: list, by_name: dict) -> None:
        """``slots``: what :func:`transform_slots` found on the dataset."""
        self.slots = slots
        self.by_name = by_name
        self.undo: list = []

    def __enter__(self):
        for ds, attr in self.slots:
            fn = ds.__dict__.get(attr)
            if fn is None or isinstance(fn, TimedTransform):
                continue
            members = _compose_members(fn)
            # a Compose shared by several datasets (ConcatDataset parts) is
            # reached once per slot: its members are wrapped only the first time
            held = fn.__dict__.get("transforms") if hasattr(fn, "__dict__") else None
            if members is not None and type(held) is list \
                    and not any(isinstance(m, TimedTransform) for m in members):
                try:
                    fn.__dict__["transforms"] = [TimedTransform(m, _type_name(m), self.by_name)
                                                 for m in members]
                    self.undo.append((fn, "transforms", held, True))
                except Exception:
                    pass
            elif members is not None:  # an nn.ModuleList: each member's forward is timed
                for m in members:
                    if isinstance(m, torch.nn.Module) and "forward" not in m.__dict__:
                        m.__dict__["forward"] = TimedTransform(m.forward, _type_name(m),
                                                               self.by_name)
                        self.undo.append((m, "forward", None, True))
            ds.__dict__[attr] = TimedTransform(fn, _type_name(fn) if members is None
                                               else "transform total", self.by_name)
            self.undo.append((ds, attr, fn, True))
        return self

    def __exit__(self, *exc):
        while self.undo:
            obj, attr, value, in_dict = self.undo.pop()
            if value is None:
                obj.__dict__.pop(attr, None)
            elif in_dict:
                obj.__dict__[attr] = value
            else:
                obj.transforms = value
        return False
