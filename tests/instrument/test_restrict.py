"""Overfit rungs' loaders: a few examples that span the classes when labels are cheap."""
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from nnprof.instrument.restrict import read_labels, restricted_args, spread_over_classes


class SortedFolder(Dataset):
    """An ImageFolder-like dataset: ``samples`` of (path, class), sorted by class."""

    def __init__(self, classes=3, per_class=5, attr="samples"):
        labels = [c for c in range(classes) for _ in range(per_class)]
        if attr == "samples":
            self.samples = [(f"c{c}/{i}.png", c) for i, c in enumerate(labels)]
        elif attr == "targets":
            self.targets = torch.tensor(labels)
        self.n = len(labels)
        self.labels_ = labels

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.full((2,), float(i)), self.labels_[i]


def test_spread_takes_each_class_in_turn():
    labels = [0] * 5 + [1] * 5 + [2] * 5
    assert spread_over_classes(labels, 10) == [0, 5, 10, 1, 6, 11, 2, 7, 12, 3]
    assert spread_over_classes(labels, 2) == [0, 5]
    assert spread_over_classes(labels, 1) == [0]
    assert spread_over_classes([1, 1, 0], 10) == [0, 2, 1]


def test_labels_are_read_where_they_are_cheap():
    assert read_labels(SortedFolder(2, 2)) == [0, 0, 1, 1]
    assert read_labels(SortedFolder(2, 2, attr="targets")) == [0, 0, 1, 1]
    assert read_labels(SortedFolder(2, 2, attr=None)) is None
    tds = TensorDataset(torch.randn(4, 2), torch.tensor([2, 0, 1, 2]))
    assert read_labels(tds) == [2, 0, 1, 2]
    assert read_labels(Subset(tds, [3, 1])) == [2, 0]
    assert read_labels(TensorDataset(torch.randn(4, 2), torch.randn(4))) is None  # regression
    assert read_labels(TensorDataset(torch.randn(4, 2))) is None

    class Columns:  # a Hugging Face datasets.Dataset, as far as labels go
        column_names = ["input_ids", "label"]

        def __len__(self):
            return 3

        def __getitem__(self, key):
            return iter([1, 0, 1]) if key == "label" else {"input_ids": [key], "label": 0}

    assert read_labels(Columns()) == [1, 0, 1]

    class Wrapped(Dataset):  # transforms applied around a dataset, same indices
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, i):
            return self.dataset[i]

    assert read_labels(Wrapped(SortedFolder(2, 2))) == [0, 0, 1, 1]
    assert read_labels(Wrapped(SortedFolder(2, 2, attr=None))) is None
    from nnprof.instrument.restrict import RepeatFirst
    assert read_labels(RepeatFirst(SortedFolder(2, 2), 2, [0, 2])) is None  # reordered


def test_sorted_dataset_is_restricted_to_examples_of_every_class():
    ds = SortedFolder(3, 5)
    args, kwargs, how = restricted_args(DataLoader.__init__, object(), (ds,),
                                        {"batch_size": 3, "shuffle": True}, 6)
    assert how == {"selection": "classes", "classes": 3}
    loader = DataLoader(*args, **kwargs)
    seen = [int(v) for _, y in loader for v in y]
    assert len(seen) == len(ds)
    assert seen[:6] == [0, 1, 2, 0, 1, 2]
    items = {int(v) for x, _ in loader for v in x[:, 0]}
    assert sorted(items) == [0, 1, 5, 6, 10, 11]


def test_unreadable_labels_keep_the_first_examples():
    ds = SortedFolder(3, 5, attr=None)
    args, kwargs, how = restricted_args(DataLoader.__init__, object(), (ds,),
                                        {"batch_size": 3}, 6)
    assert how == {"selection": "first", "classes": None}
    loader = DataLoader(*args, **kwargs)
    assert {int(v) for _, y in loader for v in y} == {0, 1}


def test_call_site_skips_installed_packages(tmp_path):
    """A loader that a framework (here: code compiled as if installed in
    site-packages) builds for the script is named by the script's calling line."""
    import sys

    from nnprof.instrument.sites import call_site
    fake = f"{tmp_path}/lib/site-packages/framework/data.py"
    ns = {"call_site": call_site}
    exec(compile("def build():\n    return call_site()\n\n\n"
                 "def run(out):\n    out.append(build())\n", fake, "exec"), ns)
    here = sys._getframe().f_lineno + 1
    site = ns["build"]()
    assert site == (__file__, here, "test_call_site_skips_installed_packages")
    # no frame of the user's at all (a thread started by the framework, whose other
    # frames are the standard library's): the framework's own line, not "?"
    import threading
    got = []
    worker = threading.Thread(target=ns["run"], args=(got,))
    worker.start()
    worker.join()
    assert got == [(fake, 2, "build")]


def test_restriction_cuts_the_named_loader_and_its_dataset_only():
    """Three loaders on one line: validation (index 0), training (index 1), then
    validation and training again (one function called each epoch): the training
    loader of each epoch is cut, by rank first, then by its dataset."""
    from nnprof.instrument.restrict import RepeatFirst, Restriction
    events = []
    writer = type("W", (), {"loader_event": lambda self, e: events.append(e)})()
    site = ("/x/train.py", 7, "loader")
    r = Restriction({"file": "/x/train.py", "line": 7, "index": 1, "examples": 2}, writer)
    train, val = SortedFolder(2, 3), SortedFolder(2, 1)
    got = []
    for ds in (val, train, val, train):
        args, kwargs, index = r(DataLoader.__init__, object(), (ds,), {"batch_size": 2}, site)
        got.append((index, isinstance(kwargs.get("dataset"), RepeatFirst)))
    assert got == [(0, False), (1, True), (2, False), (3, True)]
    assert [(e["index"], e["classes"]) for e in events] == [(1, 2), (3, 2)]
    # another line, and no rung at all: counted, never cut
    assert r(DataLoader.__init__, object(), (train,), {}, ("/x/train.py", 8, "f"))[2] == 0
    plain = Restriction(None, writer)
    assert plain(DataLoader.__init__, object(), (train,), {}, site) == ((train,), {}, 0)
    assert len(events) == 2


def test_malformed_rung_settings_cut_nothing():
    from nnprof.instrument.restrict import Restriction
    site = ("/x/train.py", 7, "f")
    for bad in ({"file": "/x/train.py", "line": 7, "examples": "many"},
                {"file": "/x/train.py", "line": 7, "examples": 2, "index": []}, ["x"]):
        r = Restriction(bad, None)
        assert r(DataLoader.__init__, object(), (SortedFolder(),), {}, site)[2] == 0
