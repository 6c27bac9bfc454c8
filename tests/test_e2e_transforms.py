"""``nn.Module`` transforms (torchvision v2 style) made in loader workers: timed per member
by class there too (the main-process case, where they were taken for forward passes, is
in test_e2e_frameworks.py's v2 tests)."""
import csv

import pytest

from nnprof.analyses.simplicity import random_transforms
from conftest import read_summary, run_cli

pytestmark = pytest.mark.slow


def test_module_transforms_in_workers_are_timed_by_member(tmp_path, scripts):
    workers = 2
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--quiet", "--no-progress",
                 scripts / "module_transforms.py", "--workers", workers],
                env={"OMP_NUM_THREADS": "1"})  # a tiny model: no waiting for a second thread
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "steps.csv").open()))
    assert [r["kind"] for r in rows] == ["train"] * 8
    assert all(int(r["n_forward"]) == 1 for r in rows), [r["n_forward"] for r in rows]
    s = read_summary(out)
    assert [m["class"] for m in s["models"]] == ["Sequential"]
    # the model is tiny: its forward holds none of the transforms' sleeps (12 ms a batch)
    assert s["phases"]["forward"]["mean_s"] < 0.006
    ld = s["loader"][0]
    by_name = {t["name"]: t["total_s"] for t in ld["transform_by_name"]}
    assert set(by_name) >= {"RandomHorizontalFlip", "ColorJitter", "Normalize"}, by_name
    batches = ld["batches_measured"]
    # each member's own time, at least its sleeps (more on a loaded machine)
    flip, jitter = by_name["RandomHorizontalFlip"] / batches, by_name["ColorJitter"] / batches
    assert flip >= 4 * 0.002 * 0.95 and jitter >= 4 * 0.004 * 0.95 and jitter > flip
    # the simplicity lint reads the members' names from here
    found = [n for spec in ld["transforms"] for n in random_transforms(spec)]
    assert found == ["RandomHorizontalFlip", "ColorJitter"], ld["transforms"]

