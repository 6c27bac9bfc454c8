"""Everything nnprof puts in place of a PyTorch callable reads, to ``inspect`` and to
libraries that introspect, as the original it replaced."""
from __future__ import annotations

import inspect
import os

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from nnprof.instrument import Instrumentation
from nnprof.instrument.patching import installed


class _Writer:
    def loader_event(self, event):
        pass

    def abandon(self):
        pass


@pytest.fixture
def instrumented(tmp_path):
    inst = Instrumentation(lambda rec: None, _Writer(), str(tmp_path), 0)
    inst.install()
    try:
        yield inst
    finally:
        inst.uninstall()


def _plain(fn):
    return fn.__func__ if isinstance(fn, (staticmethod, classmethod)) else fn


def test_every_installed_patch_reads_as_the_original(instrumented):
    patches = installed()
    # the families of hooks: modules, losses, backward, optimizer, loader, fetchers, schedulers
    names = {name for _, name, _, _ in patches}
    assert {"__call__", "backward", "grad", "zero_grad", "cross_entropy", "__init__",
            "__iter__", "__next__", "_get_iterator", "_shutdown_workers", "fetch"} <= names
    for owner, name, original, new in patches:
        original, new = _plain(original), _plain(new)
        where = f"{getattr(owner, '__name__', owner)}.{name}"
        assert new is not original, where
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            assert getattr(new, attr, None) == getattr(original, attr, None), (where, attr)
        assert getattr(new, "__wrapped__", None) is original, where
        try:
            want = inspect.signature(original)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        assert inspect.signature(new) == want, where


def test_a_loader_rebuilt_from_its_signature_gets_every_argument_back(instrumented):
    """What Lightning's and accelerate's DistributedSampler injection does."""
    ds = TensorDataset(torch.arange(40.0).unsqueeze(1))
    loader = DataLoader(ds, batch_size=16, shuffle=False, drop_last=True, num_workers=0)
    params = inspect.signature(DataLoader.__init__).parameters
    assert "batch_size" in params and "dataset" in params
    kwargs = {k: getattr(loader, k) for k in params if k != "self" and hasattr(loader, k)
              and k not in ("sampler", "batch_sampler")}
    rebuilt = DataLoader(**kwargs)
    assert rebuilt.batch_size == 16 and rebuilt.drop_last is True
    assert [b[0].shape[0] for b in rebuilt] == [16, 16]


def test_a_loader_subclass_keeps_its_own_init(instrumented):
    class MyLoader(DataLoader):
        def __init__(self, ds, size=4):
            super().__init__(ds, batch_size=size)

    assert "__init__" in MyLoader.__dict__
    assert list(inspect.signature(MyLoader.__init__).parameters) == ["self", "ds", "size"]
    ds = TensorDataset(torch.zeros(8, 1))
    assert MyLoader(ds, size=4).batch_size == 4


class _Squares(torch.utils.data.Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.tensor([float(i * i)])


@pytest.mark.parametrize("order", ["nnprof first", "lightning first"])
def test_lightnings_own_init_patch_composes_with_ours(tmp_path, order):
    """Lightning wraps ``DataLoader.__init__`` while a loader hook runs (to record the
    arguments) and rebuilds the loader with a DistributedSampler from them: the rebuilt
    loader keeps every argument whichever patch is outermost."""
    data = pytest.importorskip("lightning.fabric.utilities.data")
    from torch.utils.data import DistributedSampler

    def build_and_rebuild():
        with data._replace_dunder_methods(DataLoader, "dataset"):
            loader = DataLoader(_Squares(), batch_size=8, drop_last=True)
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=False)
        return data._update_dataloader(loader, sampler)

    inst = Instrumentation(lambda rec: None, _Writer(), str(tmp_path), 0)
    if order == "nnprof first":
        inst.install()
        try:
            rebuilt = build_and_rebuild()
        finally:
            inst.uninstall()
    else:
        with data._replace_dunder_methods(DataLoader, "dataset"):
            inst.install()
            try:
                loader = DataLoader(_Squares(), batch_size=8, drop_last=True)
            finally:
                inst.uninstall()
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=1, shuffle=False)
        rebuilt = data._update_dataloader(loader, sampler)
    assert rebuilt.batch_size == 8 and rebuilt.drop_last is True
    assert isinstance(rebuilt.sampler, DistributedSampler)
    assert [len(b) for b in rebuilt] == [8, 8]  # 20 items on rank 1 of 2
