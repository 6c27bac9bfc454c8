"""Hotspot rules on hand-written collapsed stacks (see the docstring of hotspots.py)."""
import pytest

from nnprof.analyses.hotspots import (hotspots, input_advice, is_user, parse_collapsed,
                                      classify, Frame)

SP = "/venv/lib/python3.11/site-packages"
STD = "/usr/lib/python3.11"
NN = SP + "/nnprof"           # nnprof as installed elsewhere (not this checkout)
USER = "/home/me/proj"
MAIN = 'process 100:"python train.py"'
T_MAIN = "thread (100): MainThread"


def fr(func, path, line):
    return f"{func} ({path}:{line})"


BASE = [MAIN, T_MAIN, fr("<module>", f"{USER}/train.py", 1), fr("train", f"{USER}/train.py", 20)]
WORKER_BASE = [MAIN, 'process 101:"python train.py"', "thread (101): MainThread",
               fr("<module>", f"{USER}/train.py", 1), fr("train", f"{USER}/train.py", 20),
               fr("install.<locals>.loader_iter", f"{NN}/instrument/loader.py", 352),
               fr("BaseProcess._bootstrap", f"{STD}/multiprocessing/process.py", 300),
               fr("_worker_loop", f"{SP}/torch/utils/data/_utils/worker.py", 240),
               fr("_timed_fetch.<locals>.fetch", f"{NN}/instrument/loader.py", 75),
               fr("_MapDatasetFetcher.fetch", f"{SP}/torch/utils/data/_utils/fetch.py", 46),
               fr("Images.__getitem__", f"{USER}/data.py", 30)]


def line(frames, count):
    return ";".join(frames) + f" {count}"


def wrap(wrapper, *inner):
    return BASE + [wrapper] + list(inner)


MODULE_CALL = fr("install.<locals>.module_call", f"{NN}/instrument/model.py", 120)
CALL_LOSS = fr("install.<locals>.call_loss", f"{NN}/instrument/model.py", 106)
BACKWARD = fr("install.<locals>.tensor_backward", f"{NN}/instrument/autograd.py", 27)
ZERO_GRAD = fr("in_phase.<locals>.wrapper", f"{NN}/instrument/steps.py", 104)
OPT_STEP = fr("Optimizer.profile_hook_step.<locals>.wrapper", f"{SP}/torch/optim/optimizer.py",
              510)
ITER_NEXT = fr("install.<locals>.iter_next", f"{NN}/instrument/loader.py", 368)
LINEAR = fr("Linear.forward", f"{SP}/torch/nn/modules/linear.py", 124)


STACKS = "\n".join([
    # workers: 71 in decode (user), 9 in PIL under decode, 20 in collate (torch only)
    line(WORKER_BASE + [fr("decode", f"{USER}/data.py", 12)], 71),
    line(WORKER_BASE + [fr("decode", f"{USER}/data.py", 12),
                        fr("Image.resize", f"{SP}/PIL/Image.py", 2100)], 9),
    line(WORKER_BASE[:8] + [fr("default_collate", f"{SP}/torch/utils/data/_utils/collate.py",
                                300)], 20),
    # main thread, one stack per phase
    line(wrap(MODULE_CALL, fr("Net.forward", f"{USER}/model.py", 8), MODULE_CALL, LINEAR), 40),
    line(wrap(MODULE_CALL, fr("Net.forward", f"{USER}/model.py", 8), CALL_LOSS,
              fr("CrossEntropyLoss.forward", f"{SP}/torch/nn/modules/loss.py", 1290)), 10),
    line(wrap(BACKWARD, fr("_engine_run_backward", f"{SP}/torch/autograd/graph.py", 966)), 25),
    line(wrap(ZERO_GRAD, fr("Optimizer.zero_grad", f"{SP}/torch/optim/optimizer.py", 990)), 2),
    line(wrap(OPT_STEP, fr("SGD.step", f"{SP}/torch/optim/sgd.py", 80)), 3),
    line(wrap(ITER_NEXT, fr("recvfds", f"{STD}/multiprocessing/reduction.py", 153)), 5),
    line(BASE + [fr("log_metrics", f"{USER}/train.py", 50)], 15),
    # a thread of the main process, and a child that is no loader worker
    line([MAIN, "thread (105): pin_memory", fr("_pin_memory_loop",
          f"{SP}/torch/utils/data/_utils/pin_memory.py", 40)], 4),
    line([MAIN, 'process 200:"sh -c ls"', "thread (200): MainThread",
          fr("<module>", f"{USER}/helper.py", 1)], 3),
    "garbage line without count",
    "",
])


def test_parse_lines_processes_threads_frames():
    samples = parse_collapsed(STACKS)
    assert len(samples) == 12
    s = samples[0]
    assert s.count == 71 and s.pids == (100, 101) and s.thread_id == "101"
    assert s.thread_name == "MainThread"
    assert s.frames[-1] == Frame("decode", f"{USER}/data.py", 12)
    assert parse_collapsed(STACKS.splitlines()) == samples  # lines work as well as text


def test_command_line_with_semicolons_and_spaces():
    text = 'process 7:"python -c import a; a.run()";thread (7): MainThread;f (/x/y.py:3) 2\n'
    (s,) = parse_collapsed(text)
    assert s.pids == (7,) and s.frames == (Frame("f", "/x/y.py", 3),) and s.count == 2


def test_groups_and_phases():
    by = {}
    for s in parse_collapsed(STACKS):
        group, phase, own = classify(s)
        by[(group, phase)] = by.get((group, phase), 0) + s.count
    assert by == {("workers", None): 100, ("main", "forward"): 40, ("main", "loss"): 10,
                  ("main", "backward"): 25, ("main", "optimizer"): 5, ("main", "data"): 5,
                  ("main", "other"): 15, ("threads", None): 4, ("other", None): 3}


def test_worker_frames_start_above_worker_loop():
    s = parse_collapsed(STACKS)[0]
    _, _, own = classify(s)
    assert own[0].function == "_timed_fetch.<locals>.fetch"
    assert all(f.function != "train" for f in own)


def test_user_frames():
    assert is_user(Frame("decode", f"{USER}/data.py", 12))
    assert not is_user(Frame("Linear.forward", f"{SP}/torch/nn/modules/linear.py", 1))
    assert not is_user(Frame("x", "/src/pytorch/torch/nn/modules/linear.py", 1))
    assert not is_user(Frame("x", f"{NN}/instrument/model.py", 1))
    assert not is_user(Frame("x", "/elsewhere/nnprof/instrument/model.py", 1))
    assert not is_user(Frame("get", f"{STD}/queue.py", 1))
    assert not is_user(Frame("_find_and_load", "<frozen importlib._bootstrap>", 1))
    assert not is_user(Frame("resize", f"{SP}/PIL/Image.py", 1))


def test_summary_numbers():
    h, findings = hotspots(STACKS, rate_hz=100)
    assert h["samples"] == {"total": 207, "main": 100, "threads": 4, "workers": 100, "other": 3}
    assert h["other_processes"] == 1
    w = h["workers"]
    assert w["processes"] == 1
    # PIL's time under decode is decode's; collate has no user frame: named itself
    assert [(t["function"], t["where"], t["samples"]) for t in w["top"]] == [
        ("decode", "data.py:12", 80), ("default_collate", "torch/utils/data/_utils/collate.py:300",
                                       20)]
    assert w["top"][0]["share"] == pytest.approx(0.8)
    assert w["top"][0]["approx_s"] == pytest.approx(0.8)
    assert w["top_self"][0]["function"] == "decode" and w["top_self"][0]["samples"] == 71
    assert {t["function"] for t in w["top_inclusive"]} == {"decode", "Images.__getitem__"}
    phases = h["main"]["phases"]
    assert list(phases) == ["data", "forward", "loss", "backward", "optimizer", "other"]
    assert phases["forward"]["share"] == pytest.approx(0.4)
    assert phases["forward"]["top"][0]["function"] == "Linear.forward"
    assert phases["loss"]["top"][0]["function"] == "CrossEntropyLoss.forward"
    assert phases["optimizer"]["samples"] == 5
    assert phases["other"]["top"][0]["function"] == "log_metrics"
    assert h["top_self"][0]["function"] == "decode"
    # inclusive: the user's functions, never <module>
    incl = {t["function"]: t["samples"] for t in h["top_inclusive"]}
    assert "<module>" not in incl and incl["train"] == 100 and incl["Net.forward"] == 50
    assert incl["Images.__getitem__"] == 80


def test_findings():
    h, findings = hotspots(STACKS)
    verdicts = {f.verdict: f for f in findings}
    worker = verdicts["hot-worker-function"]
    assert worker.advice == ("hot function in loader workers: decode in data.py:12 takes 80% "
                             "of worker time",)
    assert worker.evidence["file"] == f"{USER}/data.py" and worker.evidence["line"] == 12
    # the main thread's top self function is torch's Linear.forward (not the user's);
    # the user's log_metrics has 15% < 20%
    assert "hot-main-function" not in verdicts
    assert h["findings"][0]["verdict"] == "hot-worker-function"


def test_no_finding_below_thresholds():
    text = "\n".join([line(WORKER_BASE + [fr(f"f{i}", f"{USER}/data.py", i)], 10)
                      for i in range(10)])
    h, findings = hotspots(text)
    assert h["workers"]["top"][0]["share"] == pytest.approx(0.1)
    assert findings == [] and h["findings"] == []
    h, findings = hotspots(line(WORKER_BASE, 5))  # too few samples
    assert findings == []


def test_input_advice_names_worker_or_data_function():
    h, _ = hotspots(STACKS)
    assert "decode in data.py:12 takes 80% of loader-worker time" in input_advice(h)
    no_workers = "\n".join([line(wrap(ITER_NEXT, fr("_timed_fetch.<locals>.fetch",
                                                   f"{NN}/instrument/loader.py", 75),
                                      fr("decode", f"{USER}/data.py", 12)), 30),
                            line(BASE + [fr("log", f"{USER}/train.py", 50)], 10)])
    h, findings = hotspots(no_workers)
    assert "decode in data.py:12 takes 100% of the main thread's data-loading time" \
        in input_advice(h)
    assert findings[0].evidence["phase"] == "data"
    assert input_advice(None) is None
    assert input_advice(hotspots("")[0]) is None


def test_empty_input():
    h, findings = hotspots("")
    assert h["samples"]["total"] == 0 and findings == []
    assert h["main"]["phases"] == {} and h["workers"]["top"] == []


def test_stacks_without_threads_or_processes():
    # plain `py-spy record --format raw` of one process: all main thread
    text = f"{fr('<module>', f'{USER}/t.py', 1)};{fr('work', f'{USER}/t.py', 5)} 30\n"
    h, findings = hotspots(text)
    assert h["samples"]["main"] == 30
    assert findings[0].evidence["function"] == "work"
