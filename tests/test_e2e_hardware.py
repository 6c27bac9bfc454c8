"""End to end: host samples and hardware findings through the real CLI."""
import pandas as pd

from conftest import SCRIPTS, read_summary, run_cli


def test_busy_workers_are_seen_and_called_saturated(tmp_path):
    out = tmp_path / "run"
    # one worker: it gets a core of its own even on a 2-core machine
    r = run_cli(["profile", "--out", out, "--no-progress", "--sample-hz", "20",
                 SCRIPTS / "cpu_loader.py", "--workers", "1", "--steps", "16", "--burn", "0.1"])
    assert r.returncode == 0, r.stderr
    samples = pd.read_csv(out / "samples.csv")
    host = samples[samples["source"] == "host"]
    assert {"cpu_percent", "process_cpu_percent", "process_rss_bytes", "workers",
            "workers_cpu_percent"} <= set(host["metric"])
    assert host["metric"].str.match(r"worker_\d+_cpu_percent").any()
    s = read_summary(out)
    assert s["bottleneck"]["verdict"] == "input-bound"
    assert s["host"]["samples"] >= 10
    assert s["host"]["workers_max"] >= 1
    found = {f["name"]: f for f in s["hardware"]}
    assert "workers-saturated" in found, s["host"]
    assert found["workers-saturated"]["evidence"]["per_worker_cpu_percent"] >= 85
    assert "machine:" in r.stderr and "workers saturated" in r.stderr
    if s["gpu"] is None:  # no NVML here: one line says so
        assert sum(n.startswith("GPU:") for n in s["notices"]) == 1


def test_no_monitors(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-monitors", "--quiet",
                 SCRIPTS / "cpu_loader.py", "--steps", "3", "--burn", "0.01"])
    assert r.returncode == 0, r.stderr
    assert not (out / "samples.csv").exists()
    s = read_summary(out)
    assert s["host"] is None and s["gpu"] is None and s["hardware"] == []
    assert not any(n.startswith("GPU:") for n in s["notices"])
