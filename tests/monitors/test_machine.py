"""The machine's facts: the cores a run may use, capped by a container's CPU quota."""
from __future__ import annotations

import os

import pytest

from nnprof.monitors.machine import cgroup_cpu_quota, usable_cores


def affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("files,quota", [
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
    ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
     None),
    ({"cpu.max": "garbage\n"}, None),
    ({}, None),
])
def test_the_quota_is_read_from_cgroup_v2_or_v1(tmp_path, files, quota):
    for name, text in files.items():
        write(tmp_path / name, text)
    assert cgroup_cpu_quota(str(tmp_path)) == quota


def test_a_quota_caps_the_cores_and_none_leaves_the_affinity(tmp_path):
    assert usable_cores(str(tmp_path)) == affinity()
    write(tmp_path / "cpu.max", "100000 100000\n")
    assert usable_cores(str(tmp_path)) == 1
    write(tmp_path / "cpu.max", "25000 100000\n")  # a quarter of a core: still one
    assert usable_cores(str(tmp_path)) == 1
    write(tmp_path / "cpu.max", f"{(affinity() + 8) * 100000} 100000\n")
    assert usable_cores(str(tmp_path)) == affinity()  # a quota above the affinity
