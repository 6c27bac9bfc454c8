"""End to end on the code people train with: Lightning, transformers' ``Trainer``,
accelerate, hand-written parameter updates, AMP (autocast and ``GradScaler``),
``nn.Module`` transforms in the style of torchvision's ``transforms.v2``, and spawn
workers restarted every epoch.

Each script in ``tests/scripts/fw_*.py`` states its ground truth in its docstring: how
many train and eval steps it runs, the loss it computes (it prints ``loss <i> <repr>``
per train step), and the sleeps that give a phase a known duration. Each runs once under
plain python and once under ``nnprof profile`` (module-scoped fixtures: the framework
imports are slow), and the tests assert:

- the same exit code, the same stdout, and the same stderr apart from nnprof's own
  ``nnprof: ...`` lines;
- train and eval steps counted exactly (``summary.json`` and ``steps.csv``);
- each train step's recorded loss is the loss the script printed (the loss function's
  output, not a copy divided for gradient accumulation);
- a phase with a known duration within 10% of it, plus a few ms per step for a loaded
  machine;
- the bottleneck verdict that the known durations make right: the sleeps dominate.
"""
from __future__ import annotations

import json
import statistics

import pytest

from fwruns import (ABS, Runs, assert_counts, assert_data_wait, assert_loaders_built_in,
                    assert_train_losses, assert_transparent, assert_verdict, col, strings,
                    within)

pytestmark = pytest.mark.slow

# -- hand-written updates (pytorch/examples word_language_model, regression) ------------
UPDATE_COST = 0.02


@pytest.fixture(scope="module", params=["alpha", "scaled"])
def manual(request, tmp_path_factory):
    return Runs(tmp_path_factory.mktemp(f"manual-{request.param}"), "fw_manual_update.py",
                ["--update", request.param, "--update-cost", UPDATE_COST])


def test_manual_update_transparent(manual):
    assert_transparent(manual)


def test_manual_update_one_train_step_per_iteration_and_no_grad_passes_are_eval(manual):
    assert_counts(manual, train=16, eval=6)
    for r in manual.kind("train"):
        assert (r["n_forward"], r["n_backward"], r["n_optimizer"]) == ("1", "1", "0"), r
    for r in manual.kind("eval"):
        assert (r["n_forward"], r["n_backward"]) == ("1", "0"), r


def test_manual_update_loss(manual):
    assert_train_losses(manual, 16)


def test_manual_update_is_charged_to_optimizer(manual):
    """The update (from the backward to the next forward) holds a known sleep."""
    manual.ok()
    train = manual.kind("train")
    assert train
    for r in train:
        within(float(r["optimizer_s"]), UPDATE_COST, f"train step {r['index']} optimizer")


def test_manual_update_verdict(manual):
    # the update's sleep is most of each step
    assert_verdict(manual, "optimizer-bound")


# -- Lightning ------------------------------------------------------------------
ITEM_COST = 0.005  # per item, batches of 4


@pytest.fixture(scope="module")
def lightning_runs(tmp_path_factory):
    pytest.importorskip("lightning", reason="Lightning is not installed")
    return Runs(tmp_path_factory.mktemp("lightning"), "fw_lightning.py",
                ["--item-cost", ITEM_COST])


def test_lightning_transparent(lightning_runs):
    assert_transparent(lightning_runs)


def test_lightning_steps(lightning_runs):
    # 2 epochs x 6 batches; validation: 2 sanity-check batches, then 2 x 3
    assert_counts(lightning_runs, train=12, eval=8)


def test_lightning_loss(lightning_runs):
    assert_train_losses(lightning_runs, 12)


def test_lightning_data_phase(lightning_runs):
    lightning_runs.ok()
    assert_data_wait(lightning_runs.kind("train"), 4 * ITEM_COST, "train")
    assert_data_wait(lightning_runs.kind("eval"), 4 * ITEM_COST, "eval")


def test_lightning_verdict(lightning_runs):
    assert_verdict(lightning_runs, "input-bound")


def test_lightning_loaders_built_at(lightning_runs):
    assert_loaders_built_in(lightning_runs, "fw_lightning.py")


# -- transformers' Trainer ----------------------------------------------------------
@pytest.fixture(scope="module")
def hf_plain(tmp_path_factory):
    pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="accelerate is not installed")
    return Runs(tmp_path_factory.mktemp("hf-plain"), "fw_hf_trainer.py",
                ["--item-cost", ITEM_COST])


@pytest.fixture(scope="module")
def hf_eval_accum(tmp_path_factory):
    pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="accelerate is not installed")
    return Runs(tmp_path_factory.mktemp("hf-eval-accum"), "fw_hf_trainer.py",
                ["--eval", "--accum", "2", "--item-cost", ITEM_COST])


def test_hf_trainer_transparent(hf_plain, hf_eval_accum):
    assert_transparent(hf_plain)
    assert_transparent(hf_eval_accum)


def test_hf_trainer_without_evaluation_has_no_eval_steps(hf_plain):
    assert_counts(hf_plain, train=16, eval=0)


def test_hf_trainer_accumulation_micro_batches_are_train_steps(hf_eval_accum):
    # 16 micro-batches (8 optimizer steps), 2 evaluations of 3 batches
    assert_counts(hf_eval_accum, train=16, eval=6)
    assert [r["n_optimizer"] for r in hf_eval_accum.kind("train")] == ["0", "1"] * 8


def test_hf_trainer_loss(hf_plain):
    assert_train_losses(hf_plain, 16)


def test_hf_trainer_loss_is_unscaled_under_accumulation(hf_eval_accum):
    assert_train_losses(hf_eval_accum, 16)


def test_hf_trainer_data_phase(hf_plain, hf_eval_accum):
    hf_plain.ok()
    assert_data_wait(hf_plain.kind("train"), 4 * ITEM_COST, "train")
    hf_eval_accum.ok()
    # the Trainer fetches a whole accumulation window before its first micro-batch:
    # the total still holds one batch per micro-batch
    train = hf_eval_accum.kind("train")
    within(sum(col(train, "data_s")), 4 * ITEM_COST * len(train), "accum: total data wait",
           n=len(train))
    assert_data_wait(hf_eval_accum.kind("eval"), 4 * ITEM_COST, "eval")


def test_hf_trainer_verdict(hf_plain):
    assert_verdict(hf_plain, "input-bound")


def test_hf_trainer_loaders_built_at(hf_eval_accum):
    # the Trainer builds its loaders and accelerate wraps them: the user's line is
    # the trainer.train() call
    assert_loaders_built_in(hf_eval_accum, "fw_hf_trainer.py")


# -- accelerate ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def accel(tmp_path_factory):
    pytest.importorskip("accelerate", reason="accelerate is not installed")
    return Runs(tmp_path_factory.mktemp("accelerate"), "fw_accelerate.py",
                ["--accum", "2", "--item-cost", ITEM_COST])


def test_accelerate_transparent(accel):
    assert_transparent(accel)


def test_accelerate_steps(accel):
    assert_counts(accel, train=16, eval=6)
    assert [r["n_optimizer"] for r in accel.kind("train")] == ["0", "1"] * 8


def test_accelerate_loss_is_unscaled(accel):
    assert_train_losses(accel, 16)


def test_accelerate_data_phase(accel):
    accel.ok()
    assert_data_wait(accel.kind("train"), 4 * ITEM_COST, "train")
    assert_data_wait(accel.kind("eval"), 4 * ITEM_COST, "eval")


def test_accelerate_verdict(accel):
    assert_verdict(accel, "input-bound")


def test_accelerate_loaders_built_at(accel):
    # accelerator.prepare() rebuilds each loader inside accelerate
    assert_loaders_built_in(accel, "fw_accelerate.py")


# -- automatic mixed precision --------------------------------------------------------
@pytest.fixture(scope="module")
def amp(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("amp"), "fw_amp.py",
                ["--device", "cpu", "--item-cost", ITEM_COST])


def test_amp_transparent(amp):
    assert_transparent(amp)


def test_amp_steps(amp):
    assert_counts(amp, train=16, eval=6)
    assert [r["n_optimizer"] for r in amp.kind("train")] == ["1"] * 16


def test_amp_loss_is_unscaled(amp):
    """``scaler.scale(loss).backward()``: the loss is the cross-entropy, not the
    copy multiplied by the scale."""
    assert_train_losses(amp, 16)


def test_amp_data_phase_and_verdict(amp):
    amp.ok()
    assert_data_wait(amp.kind("train"), 4 * ITEM_COST, "train")
    assert_data_wait(amp.kind("eval"), 4 * ITEM_COST, "eval")
    assert_verdict(amp, "input-bound")


def test_amp_autocast_seen(amp):
    amp.ok()
    precision = json.loads((amp.out / "probe.json").read_text()).get("precision") or {}
    assert precision.get("autocast_cpu") is True, precision


# -- v2-style transforms: nn.Module transforms in the main-process fetch -----------------
JITTER, NORMALIZE = 0.004, 0.002  # per image, batches of 4


@pytest.fixture(scope="module")
def v2(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("v2"), "fw_transforms_v2.py",
                ["--jitter-cost", JITTER, "--normalize-cost", NORMALIZE])


def test_v2_transforms_transparent(v2):
    assert_transparent(v2)


def test_v2_transforms_are_not_model_forwards(v2):
    """Module calls made while a batch is fetched are loader work: one forward per
    step (the CNN), and the transforms are no model."""
    assert_counts(v2, train=16, eval=0)
    assert [r["n_forward"] for r in v2.kind("train")] == ["1"] * 16
    models = json.loads((v2.out / "probe.json").read_text())["models"]
    assert [m["class"] for m in models] == ["SmallCNN"], models
    assert statistics.median(col(v2.kind("train"), "forward_s")) < ABS


def test_v2_transform_phase_and_members_by_class(v2):
    v2.ok()
    train = v2.kind("train")
    per_batch = 4 * (JITTER + NORMALIZE)
    within(statistics.median(col(train, "transform_s")), per_batch, "median transform")
    within(sum(col(train, "transform_s")), per_batch * len(train), "total transform",
           n=len(train))
    by_name = {t["name"]: t["total_s"] for t in v2.summary["loader"][0]["transform_by_name"]}
    assert "ColorJitter" in by_name and "Normalize" in by_name, by_name
    within(by_name["ColorJitter"], 4 * JITTER * len(train), "ColorJitter", n=len(train))
    within(by_name["Normalize"], 4 * NORMALIZE * len(train), "Normalize", n=len(train))


def test_v2_members_listed_for_the_augmentation_lint(v2):
    v2.ok()
    described = " ".join(v2.summary["loader"][0]["transforms"])
    for name in ("RandomHorizontalFlip", "ColorJitter", "Normalize"):
        assert name in described, described


def test_v2_verdict(v2):
    # 24 ms of transforms per batch against a sub-millisecond model
    assert_verdict(v2, "input-bound")


# -- spawn workers, not persistent, and a break ---------------------------------------
# the second worker finishes starting STAGGER after the first: its first batch's wait
# is the pass's start-up too
WORKER_ITEM_COST, INIT_COST, STAGGER, BUDGET = 0.01, 0.3, 0.3, 0.25


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("workers"), "fw_workers.py",
                ["--item-cost", WORKER_ITEM_COST, "--init-cost", INIT_COST,
                 "--init-stagger", STAGGER],
                options=["--budget", BUDGET])


def test_workers_transparent(workers):
    assert_transparent(workers)


def test_workers_steps_are_batches_consumed(workers):
    # 3 epochs of 6 batches, the last one left after 3
    assert_counts(workers, train=15, eval=0)


def test_workers_loss(workers):
    assert_train_losses(workers, 15)


def test_workers_no_step_absorbs_worker_start_up_or_shutdown(workers):
    """Every epoch's workers take more than the budget to start (``--init-cost``
    sleeps in ``worker_init_fn``, after the spawn), the second one ``STAGGER`` longer
    than the first, and the ``break`` shuts them down; a step only holds its own
    batch's wait and its compute, far under the budget."""
    workers.ok()
    walls = {int(r["index"]): float(r["wall_s"]) for r in workers.kind("train")}
    over = {i: w for i, w in walls.items() if w > BUDGET}
    assert not over, f"steps over the {BUDGET} s budget: {over}"
    assert workers.summary["over_budget"]["count"] == 0


def test_workers_start_up_measured_per_epoch(workers):
    """Workers start asynchronously: a pass's start-up is its ``iter()`` plus the wait
    for its first batch (``loaders.jsonl``: ``iter`` and ``first_batch`` events). With
    spawn workers that are not persistent, one per epoch, each holding at least the
    workers' ``worker_init_fn`` sleep; the ``break`` in the last epoch shuts them down."""
    workers.ok()
    events = [json.loads(line)
              for line in (workers.out / "loaders.jsonl").read_text().splitlines()]
    assert len([e for e in events if e.get("event") == "iter"]) == 3
    assert len([e for e in events if e.get("event") == "first_batch"]) == 3
    loader = workers.summary["loader"][0]
    per_pass = loader["startup_per_pass_s"]
    assert len(per_pass) == 3
    for s in per_pass:  # until the last worker's first batch
        assert s >= (INIT_COST + STAGGER) * 0.95, f"start-up not measured: {per_pass}"
    assert len([e for e in events if e.get("event") == "fill"]) == 3  # worker 1's wait
    assert loader["startup_s"] == pytest.approx(sum(per_pass))
    # each pass's workers were shut down: at each epoch's end, and after the break
    assert all(d is not None and d >= 0 for d in loader["shutdown_per_pass_s"]), loader
    startup = workers.summary["startup"]
    assert startup["verdict"] == "restarts" and startup["severity"] == "warn"
    page = (workers.out / "report.html").read_text()
    assert "loader start-up" in page and "worker start-up ms" in page


def test_workers_worker_side_fetch(workers):
    workers.ok()
    loader = workers.summary["loader"][0]
    assert loader["num_workers"] == 2 and loader["where"] == "workers"
    within(loader["fetch_s"], 4 * WORKER_ITEM_COST, "worker fetch per batch")


def test_workers_verdict(workers):
    # two workers make 50 batches/s, the loop could take hundreds
    assert_verdict(workers, "input-bound")


def test_workers_advice_names_persistent_workers(workers):
    """Re-spawning workers every epoch is a cost that ``persistent_workers=True``
    removes; the report must say so."""
    workers.ok()
    said = [s for s in strings(workers.summary) if "persistent_workers" in s]
    assert said, "no advice mentions persistent_workers"
