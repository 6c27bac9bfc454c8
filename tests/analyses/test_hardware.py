"""Hardware rules on hand-made sample frames (see hardware_findings' docstring)."""
import pandas as pd
import pytest

from nnprof.analyses.hardware import gpu_summary, hardware_findings, host_summary

CORES = 8


def steps_frame(n=10, start=1.0, wall=0.5, gpu=False):
    rows = [{"index": i, "kind": "train", "start_s": start + i * wall, "wall_s": wall,
             "gpu_forward_s": 0.01 if gpu else None} for i in range(n)]
    return pd.DataFrame(rows)


def samples(per_tick: dict, t_from=0.0, t_to=7.0, dt=0.1, source="host"):
    """Constant values every dt seconds; a value may be a function of t."""
    rows = []
    for k in range(int(round((t_to - t_from) / dt)) + 1):
        t = round(t_from + k * dt, 4)
        for metric, v in per_tick.items():
            rows.append({"t_s": t, "source": source, "metric": metric,
                         "value": v(t) if callable(v) else v})
    return pd.DataFrame(rows)


def loader(workers=2, needed=6):
    return {"id": "L0", "num_workers": workers, "workers_needed": needed,
            "usable_workers": CORES - 1, "steps": {"train": 10, "eval": 0}}


def host_frame(cpu=90.0, w1=95.0, w2=92.0, proc=30.0):
    vals = {"cpu_percent": cpu, "process_cpu_percent": proc, "process_rss_bytes": 2e9,
            "workers": 2, "workers_cpu_percent": w1 + w2,
            "worker_101_cpu_percent": w1, "worker_102_cpu_percent": w2}
    vals.update({f"core{i}_percent": cpu for i in range(CORES)})
    return samples(vals)


def names(findings):
    return [f.name for f in findings]


def test_host_summary_numbers():
    df = host_frame(cpu=lambda t: 80.0 if 1.0 <= t <= 6.0 else 10.0)
    h = host_summary(df, steps_frame(), [loader()], CORES)
    assert h["samples"] == 71
    assert h["cpus"] == CORES
    assert h["interval_s"] == pytest.approx(0.1)
    assert h["process_rss_peak_bytes"] == 2e9
    assert h["workers_max"] == 2
    assert h["worker_cpu_percent"] == {"101": pytest.approx(95.0), "102": pytest.approx(92.0)}
    assert h["train"]["cpu_percent"] == pytest.approx(80.0)  # steps cover 1.0 .. 6.0 s
    assert h["train"]["basis"] == "train steps"
    assert h["cpu_percent"]["mean"] < 80.0
    assert h["cores_busy"] == pytest.approx(h["cpu_percent"]["mean"] * CORES / 100)


def test_no_samples():
    empty = pd.DataFrame(columns=["t_s", "source", "metric", "value"])
    assert host_summary(empty, steps_frame(), [], CORES) is None
    assert gpu_summary(empty, steps_frame()) is None
    assert hardware_findings(None, None, "input-bound", [loader()], CORES) == []


def test_workers_saturated():
    h = host_summary(host_frame(w1=95.0, w2=88.0), steps_frame(), [loader()], CORES)
    f = hardware_findings(h, None, "input-bound", [loader(workers=2, needed=6)], CORES)
    sat = [x for x in f if x.name == "workers-saturated"][0]
    assert sat.evidence["per_worker_cpu_percent"] == pytest.approx(91.5)
    assert "raise num_workers to 6" in sat.advice[0]
    assert sat.severity == "warn"


def test_workers_saturated_without_free_cores_advises_cheaper_loading():
    h = host_summary(host_frame(), steps_frame(), [loader()], 3)
    f = hardware_findings(h, None, "input-bound", [loader(workers=2, needed=6)], 3)
    sat = [x for x in f if x.name == "workers-saturated"][0]
    assert "no core is left" in sat.advice[0]
    assert "cheaper" in sat.advice[1]


@pytest.mark.parametrize("w1,w2,verdict,hit", [
    (80.0, 84.0, "input-bound", False),      # below 85% of a core
    (95.0, 95.0, "compute-bound", False),    # the loop does not wait for data
    (95.0, 86.0, "input-bound", True),
])
def test_workers_saturated_threshold(w1, w2, verdict, hit):
    h = host_summary(host_frame(w1=w1, w2=w2), steps_frame(), [loader()], CORES)
    assert ("workers-saturated" in names(hardware_findings(h, None, verdict, [loader()],
                                                            CORES))) == hit


def test_only_the_busiest_workers_count():
    # an idle third process (an eval loader's worker) does not hide two busy ones
    df = pd.concat([host_frame(w1=95, w2=95),
                    samples({"worker_103_cpu_percent": 1.0})], ignore_index=True)
    h = host_summary(df, steps_frame(), [loader()], CORES)
    assert "workers-saturated" in names(hardware_findings(h, None, "input-bound",
                                                          [loader(workers=2)], CORES))


def test_cores_idle():
    h = host_summary(host_frame(cpu=30.0, w1=20, w2=20), steps_frame(), [loader()], CORES)
    f = hardware_findings(h, None, "input-bound", [loader(workers=2, needed=5)], CORES)
    assert names(f) == ["cores-idle"]
    assert "raise num_workers from 2 to 5" in f[0].advice[0]
    assert f[0].evidence["cpu_percent"] == pytest.approx(30.0)


def test_cores_idle_without_workers_and_limits():
    h = host_summary(host_frame(cpu=20.0, w1=0, w2=0), steps_frame(), [loader()], CORES)
    f = hardware_findings(h, None, "input-bound", [loader(workers=0, needed=40)], CORES)
    assert "raise num_workers from 0 to 7" in f[0].advice[0]  # at most cores - 1
    # not when the CPUs are busy, nor when not input-bound, nor with all cores used
    h_busy = host_summary(host_frame(cpu=60.0, w1=0, w2=0), steps_frame(), [loader()], CORES)
    assert hardware_findings(h_busy, None, "input-bound", [loader(workers=0)], CORES) == []
    assert hardware_findings(h, None, "balanced", [loader(workers=0)], CORES) == []
    assert hardware_findings(h, None, "input-bound", [loader(workers=7)], CORES) == []


def gpu_frame(util, used=10e9, total=80e9, proc=3e9):
    return samples({"gpu0_util_percent": util, "gpu0_mem_util_percent": 10,
                    "gpu0_mem_used_bytes": used, "gpu0_mem_total_bytes": total,
                    "gpu0_process_mem_bytes": proc, "gpu0_power_w": 200.0,
                    "gpu0_sm_clock_mhz": 1400}, source="gpu")


def test_gpu_summary_attributes_utilisation_to_train_steps():
    # busy inside the train steps (1.0 .. 6.0 s), idle before and after
    g = gpu_summary(gpu_frame(lambda t: 90 if 1.0 <= t <= 6.0 else 0), steps_frame())
    d = g["devices"]["0"]
    assert d["util_train_mean"] == pytest.approx(90)
    assert d["util_percent"]["mean"] < 90
    assert d["mem_peak_share"] == pytest.approx(0.125)
    assert d["power_w"]["mean"] == pytest.approx(200)
    assert g["used"] == [0]
    assert g["util_mean"] == pytest.approx(90)
    assert "1/6 s" in g["note"]


def test_gpu_under_used_and_memory_full():
    g = gpu_summary(gpu_frame(30, used=75e9), steps_frame())
    f = hardware_findings(None, g, "compute-bound", [], CORES)
    assert names(f) == ["gpu-under-used", "gpu-memory-nearly-full"]
    assert "batch size" in f[0].advice[0]
    assert f[1].evidence["mem_peak_share"] == pytest.approx(75 / 80)
    f = hardware_findings(None, g, "input-bound", [], CORES)
    assert "feed it faster" in f[0].advice[0]
    ok = gpu_summary(gpu_frame(80, used=70e9), steps_frame())
    assert hardware_findings(None, ok, "compute-bound", [], CORES) == []  # 87.5% < 90%


def test_gpu_the_script_did_not_use_is_not_judged():
    g = gpu_summary(gpu_frame(0, used=79e9, proc=0), steps_frame(gpu=False))
    assert g["used"] == []
    assert hardware_findings(None, g, "compute-bound", [], CORES) == []
    # no per-process memory (a container), but CUDA timings in the steps: all devices
    df = gpu_frame(10)
    df = df[df["metric"] != "gpu0_process_mem_bytes"]
    g = gpu_summary(df, steps_frame(gpu=True))
    assert g["used"] == [0] and "gpu-under-used" in names(
        hardware_findings(None, g, "compute-bound", [], CORES))


# -- the GPU's idle share, allocator peak memory, fp32 matmuls ------------------
from nnprof.analyses.hardware import gpu_memory_summary, idle_per_step, idle_share  # noqa: E402


def test_idle_share_from_samples_inside_train_steps():
    # steps [1, 2) busy 80%, [2, 3) busy 20%, [3, 4) no sample; samples outside ignored
    steps = pd.DataFrame({"index": [0, 1, 2, 3], "kind": ["train", "train", "train", "eval"],
                          "start_s": [1.0, 2.0, 3.0, 4.0], "wall_s": [0.99, 0.99, 0.5, 1.0]})
    t = [0.5, 1.2, 1.6, 2.3, 3.7, 4.5]
    util = [0.0, 80.0, 80.0, 20.0, 0.0, 0.0]
    per = idle_per_step(t, util, steps)
    assert per.tolist() == pytest.approx([0.2, 0.8])
    idle = idle_share(t, util, steps)
    assert idle["share"] == pytest.approx(1 - 60.0 / 100)  # mean of 80, 80, 20
    assert idle["samples"] == 3 and idle["steps"] == 2
    assert idle["step_max"] == pytest.approx(0.8)
    assert idle_share([0.5, 4.5], [0.0, 0.0], steps) is None


def test_gpu_summary_reports_idle_share():
    g = gpu_summary(gpu_frame(lambda t: 90 if 1.0 <= t <= 6.0 else 0), steps_frame())
    assert g["idle_share"] == pytest.approx(0.1)
    assert g["devices"]["0"]["idle"]["share"] == pytest.approx(0.1)
    assert "1/6 s to 1 s" in g["note"]


def test_gpu_memory_summary_from_the_steps_column():
    steps = pd.DataFrame({"kind": ["train", "train", "eval"],
                          "gpu_mem_peak_bytes": [2e9, 4e9, 6e9]})
    m = gpu_memory_summary(steps, 8e9)
    assert m["peak_bytes"] == 6e9 and m["mean_step_peak_bytes"] == 3e9
    assert m["total_bytes"] == 8e9 and m["peak_share"] == 0.75
    cpu = pd.DataFrame({"kind": ["train"], "gpu_mem_peak_bytes": [float("nan")]})
    assert gpu_memory_summary(cpu, None) is None
    assert gpu_memory_summary(pd.DataFrame({"kind": ["train"]}), None) is None  # old runs
    full = gpu_memory_summary(steps, 6.5e9)
    assert names(hardware_findings(None, None, None, [], CORES, gpu_memory=full)) == [
        "gpu-memory-nearly-full"]
    assert hardware_findings(None, None, None, [], CORES, gpu_memory=m) == []


def precision(**kw):
    p = {"calls": 3, "autocast": False, "autocast_cuda": False, "autocast_cpu": False,
         "float32_matmul_precision": "highest", "allow_tf32": False, "fp32_precision": "none",
         "param_dtype": "float32", "param_device": "cuda", "device_capability": [8, 0]}
    p.update(kw)
    return p


@pytest.mark.parametrize("kw,hit", [
    ({}, True),
    ({"device_capability": [9, 0]}, True),
    ({"device_capability": [7, 5]}, False),      # no TF32 / bf16 tensor cores
    ({"device_capability": None}, False),        # CUDA not in use
    ({"autocast": True, "autocast_cuda": True}, False),
    ({"float32_matmul_precision": "high"}, False),
    ({"allow_tf32": True}, False),
    ({"fp32_precision": "tf32"}, False),
    ({"param_dtype": "bfloat16"}, False),
    ({"param_device": "cpu"}, False),
])
def test_fp32_matmuls_rule(kw, hit):
    found = hardware_findings(None, None, None, [], CORES, precision=precision(**kw))
    assert names(found) == (["fp32-matmuls"] if hit else [])
    if hit:
        f = found[0]
        assert f.severity == "warn"
        assert "set_float32_matmul_precision" in " ".join(f.advice)
        assert "torch.autocast" in " ".join(f.advice)
    assert hardware_findings(None, None, None, [], CORES, precision=None) == []
