"""The overfit ladder (``nnprof check``), rung by rung.

A probe run (the script under ``nnprof profile`` for ``--probe-steps`` train
steps) records what the script builds (``probe.json``); three rungs are judged
from it: ``simplicity``, ``wiring`` and ``loss-at-init``. Then, for each N of
``--examples``, an ``overfit-N`` run in which the training DataLoader serves
only N examples (spread over the classes when its labels can be read), or, for a
script that makes its batches by hand, the first N rows of its first batch are
replayed (``instrument/replay.py``), with dropout, weight decay and LR schedules
switched off (``NNPROF_RUNG``, see docs/check-contract.md); it passes when the
loss falls to ``ratio`` x its first value (:func:`analyses.overfit.overfit`).
Last, ``generalize``: the script as it is, on its full data, for ``max_steps``
train steps; it passes when its validation loss falls
(:func:`analyses.generalize.generalize`).

Each sub-run is its own ``python -m nnprof profile`` process (:mod:`.subrun`),
so that a crash or state left behind by one cannot touch the next; each is an
ordinary run directory inside the check directory, with the script's output
in ``output.log``. ``check.json`` and ``curves.csv`` sit next to them.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

from ..analyses.generalize import ends, generalize
from ..analyses.loader import training_loader
from ..analyses.metrics import classification_metrics, validation_passes
from ..analyses.overfit import adversarial, converged_at, loss_at_init, overfit
from ..analyses.simplicity import simplicity
from ..analyses.wiring import wiring
from ..rundir import write_json
from .subrun import OUTPUT_LOG, SubRun, sub_run, train_losses

SCHEMA_VERSION = 1
EXIT_FAILED, EXIT_INCONCLUSIVE = 3, 4
WIRING_KEYS = ("no_grad", "zero_grad", "not_in_optimizer", "unchanged", "frozen",
               "below_resolution", "unjudged", "unfrozen_later")


@dataclass(frozen=True)
class Settings:
    examples: tuple = (1, 10)
    max_steps: int = 300
    ratio: float = 0.1
    patience: int = 5
    probe_steps: int = 20
    as_is: bool = False
    generalize: bool = True
    max_time: Optional[float] = None  # seconds per training rung's run

    def to_dict(self) -> dict:
        return dict(asdict(self), examples=list(self.examples))


def parse_examples(text: str) -> tuple:
    """``"10,1"`` -> ``(1, 10)``: positive integers, sorted, without duplicates."""
    out = set()
    for item in text.split(","):
        item = item.strip()
        try:
            n = int(item)
        except ValueError:
            raise ValueError(f"not an integer: {item!r} in {text!r}") from None
        if n <= 0:
            raise ValueError(f"example counts must be positive, got {item!r}")
        out.add(n)
    return tuple(sorted(out))


# -- rungs ------------------------------------------------------------------

def rung_dict(finding, **extra) -> dict:
    d = finding.to_dict()
    return {"name": d["name"], "status": d["verdict"],
            "evidence": dict(d["evidence"], **extra), "advice": d["advice"]}


def skipped(name: str, reason: str) -> dict:
    return {"name": name, "status": "skip", "evidence": {"reason": reason},
            "advice": [f"Not checked: {reason}."]}


def probe_rungs(probe: Optional[dict], loaders: list) -> list:
    w = (probe or {}).get("wiring")
    return [rung_dict(simplicity(probe, loaders)), rung_dict(wiring(w)),
            rung_dict(loss_at_init((probe or {}).get("loss_at_init")))]


def _site_of(sub: SubRun, lid: str) -> dict:
    return (sub.run.loaders.get(lid) or {}).get("site") or {}


NO_TRAIN = "the probe run saw no train step (no backward pass)"
MANUAL = "no DataLoader fed the train steps (batches made by hand)"
ADVERSARIAL = ("two models are trained against each other (in {turns} of {steps} train "
               "steps, {opts:.0f} optimizers step in turn, each after its own backward: "
               "adversarial training, as in a GAN); their losses are not meant to fall "
               "to zero, so a loss that does not fall says nothing about the wiring")
ADVERSARIAL_ADVICE = (
    "Judge adversarial training by what it makes (samples from the generator) and by "
    "the discriminator's accuracy on real and generated batches, not by a loss falling "
    "to zero; the probe's rungs above (simplicity, wiring, and loss-at-init where it "
    "applies) still hold.")
RUNNABLE_ADVICE = (
    "For the overfit rungs to run, the training batches must come from a DataLoader, "
    "or, made by hand, reach the model as tensors with a batch dimension and meet a "
    "torch loss function (F.cross_entropy, nn.MSELoss, ...) rather than a loss "
    "computed by hand; docs/check.md says what each rung needs.")


def adversarial_reason(sub: SubRun) -> Optional[str]:
    """Why the overfit rungs cannot judge this script's adversarial training, or None."""
    steps = sub.run.steps if sub.run is not None else None
    if steps is None or not len(steps):
        return None
    found = adversarial(steps[steps["kind"] == "train"])
    if found is None:
        return None
    return ADVERSARIAL.format(turns=found["steps_with_turns"], steps=found["steps"],
                              opts=found["optimizer_steps_per_step"])


def find_training_loader(sub: SubRun):
    """(loader dict, None) for the DataLoader the probe trained from, or (None,
    the reason there is none).

    That is the loader that fed the most train steps, or, when others built on
    its line fed train steps too (a loader built anew each epoch), the first
    of those: the rung restricts it, and the later ones over its dataset."""
    stats = (sub.summary or {}).get("loader") or []
    tl = training_loader(stats)
    if tl is None:
        if not (sub.summary or {}).get("steps", {}).get("train"):
            return None, NO_TRAIN
        return None, MANUAL
    site = _site_of(sub, tl["id"])
    if not site.get("file") or site.get("file") == "?" or not site.get("line"):
        return None, f"the training DataLoader {tl['id']} has no known construction site"
    trained = [d for d in stats if d["steps"]["train"] > 0
               and (_site_of(sub, d["id"]).get("file"), _site_of(sub, d["id"]).get("line"))
               == (site["file"], site["line"])]
    tl = min(trained, key=lambda d: int(_site_of(sub, d["id"]).get("index") or 0))
    meta = sub.run.loaders.get(tl["id"]) or {}
    site = meta.get("site") or {}
    same = [lid for lid, m in sub.run.loaders.items() if lid != tl["id"]
            and (m.get("site") or {}).get("file") == site["file"]
            and (m.get("site") or {}).get("line") == site["line"]]
    # several loaders built on one line (one function for all, a framework's call): the rung
    # finds this one again by its rank among them
    return {"id": tl["id"], "file": site["file"], "line": site["line"],
            "index": int(site.get("index") or 0),
            "dataset": meta.get("dataset"), "dataset_len": meta.get("dataset_len"),
            "train_steps": tl["steps"]["train"], "also_built_there": same}, None


def _restricted(sub: SubRun) -> list:
    return [ev for ev in sub.run.loader_events if ev.get("event") == "restricted"]


def example_classes(sub: SubRun, restricted: list) -> Optional[int]:
    """How many classes the rung's examples hold: read from the dataset's labels
    when the loader was restricted, else from the targets the classification
    loss received in the first train steps; None when neither is known."""
    known = [ev["classes"] for ev in restricted if isinstance(ev.get("classes"), int)]
    if known:
        return max(known)
    seen = ((sub.run.probe or {}).get("targets") or {}).get("classes")
    return int(seen) if isinstance(seen, int) else None


def val_curve(sub: SubRun) -> list:
    """``[after_train_steps, loss]`` of each validation pass that recorded a loss."""
    passes = validation_passes(sub.run.steps) if sub.run is not None else []
    return [[p["after_train_steps"], p["loss"]] for p in passes if p["loss"] is not None]


def loss_ends(losses: list, val: list, patience: int) -> dict:
    """The table's figures of a rung that trained: train loss at the start (the first)
    and at the end (the mean of the last ``patience``), validation loss of the first
    and the last pass (None where there is none)."""
    vals = [v for _, v in losses]
    first, last = ends(vals, patience)
    return {"train_loss_first": first, "train_loss_last": last,
            "val_loss_first": val[0][1] if val else None,
            "val_loss_last": val[-1][1] if val else None, "steps": len(vals)}


def _replay_problem(sub: SubRun) -> Optional[str]:
    """Why the rung's replay did not work, or None when it did."""
    info = ((sub.run.probe if sub.run is not None else None) or {}).get("replay")
    if not isinstance(info, dict):
        return "the run recorded no replay (the script ended before a train step?)"
    if info.get("reason"):
        return f"replay impossible: {info['reason']}"
    if not info.get("train_forwards"):
        return "no train forward was seen in the rung's run, so nothing could be replayed"
    return None


def failed_rung(name: str, sub: SubRun, base: dict, losses: list, settings: Settings,
                what: str, *more: str) -> dict:
    """The FAIL of a training rung whose run crashed: the error's last line, where the
    full output is, and how far it got."""
    err = sub.error_line()
    log = os.path.join(os.path.basename(sub.path), OUTPUT_LOG)
    return {"name": name, "status": "fail",
            "evidence": dict(base, exit_code=sub.exit_code, error=err, log=log,
                             **loss_ends(losses, [], settings.patience)),
            "advice": [f"{what}, after {len(losses)} train steps: {err} (full output in "
                       f"{log}).", *more]}


def judge_overfit(n: int, sub: SubRun, probe_wiring: Optional[dict],
                  settings: Settings, loader: Optional[dict], classification: bool = False,
                  method: str = "loader") -> tuple:
    """(rung dict, [(train_index, loss)]) for one overfit run; ``classification``:
    the probe saw a classification loss; ``method``: how the data was cut
    (``loader`` or ``replay``)."""
    name = f"overfit-{n}"
    losses = train_losses(sub.path)
    if sub.stop_reason == "converged":
        at = converged_at([v for _, v in losses], settings.ratio, settings.patience)
        losses = losses[:at] if at else losses
    base = {"examples": n, "method": method, "run": os.path.basename(sub.path),
            "status": sub.status}
    if sub.failed:
        rung = failed_rung(name, sub, base, losses, settings,
                           f"The script failed when trained on {n} example(s)",
                           "A script that runs on its full data but fails on a few "
                           "examples often assumes a batch size, a dataset length or "
                           "several classes per batch.")
        return dict(rung, method=method), losses
    restricted = _restricted(sub) if method == "loader" else []
    problem = None
    if method == "replay":
        problem = _replay_problem(sub)
    elif losses and not restricted:
        where = f"{os.path.basename(loader['file'])}:{loader['line']}"
        problem = (f"the training DataLoader ({where}) was not built in this run, so it "
                   "could not be restricted")
    if problem:
        rung = skipped(name, problem)
        rung["method"] = method
        rung["evidence"].update(base)
        return rung, losses
    val = val_curve(sub) or None
    # the script ran to its end before the rung's limit (its own epochs or max_steps)
    ended = settings.max_steps if (sub.status == "completed" and sub.stop_reason is None
                                   and len(losses) < settings.max_steps) else None
    classes = example_classes(sub, restricted)
    finding = overfit(name, [v for _, v in losses], settings.ratio, settings.patience,
                      wiring=probe_wiring, val_losses=val, ended_by_script=ended,
                      examples=n, classes=classes, classification=classification)
    extra = dict(base, stopped=sub.stop_reason,
                 selection=(restricted[0].get("selection") if restricted else None),
                 **loss_ends(losses, val or [], settings.patience))
    if method == "replay":
        extra["replay"] = (sub.run.probe or {}).get("replay")
    if val:
        extra["val_curve"] = val  # [after_train_steps, loss] per validation pass
    acc = []
    for m in sub.run.metrics_passes:
        a = classification_metrics(m["confusion"])["accuracy"]
        if a is not None:
            acc.append([m.get("after_train_steps"), a])
    if acc:
        extra["val_accuracy"] = acc
    return dict(rung_dict(finding, **extra), method=method), losses


def judge_generalize(sub: SubRun, settings: Settings) -> tuple:
    """(rung dict, [(train_index, loss)]) for the ``generalize`` run."""
    losses = train_losses(sub.path)
    base = {"run": os.path.basename(sub.path), "status": sub.status}
    if sub.failed:
        return failed_rung("generalize", sub, base, losses, settings,
                           "The script failed on its full data"), losses
    stopped = sub.stop_reason
    if stopped and stopped.startswith("max-steps"):
        stopped = None  # the rung's own limit
    # the finding's evidence holds the ladder's figures (loss_ends) already
    finding = generalize([v for _, v in losses], val_curve(sub), settings.max_steps,
                         settings.patience, stopped_early=stopped)
    return rung_dict(finding, **base), losses


# -- the ladder ---------------------------------------------------------------

@dataclass
class Check:
    target: object
    settings: Settings
    out: str
    rungs: list = field(default_factory=list)
    runs: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    probe: Optional[dict] = None
    loader: Optional[dict] = None
    failed_run: Optional[SubRun] = None   # the probe, when the script itself failed
    status: str = "passed"
    exit_code: int = 0
    reason: Optional[str] = None   # why the check is inconclusive
    advice: list = field(default_factory=list)  # what the user can do about it

    def record(self) -> dict:
        from ..rundir.files import json_safe as _clean
        probe = self.probe or {}
        w = probe.get("wiring") or {}
        return _clean({
            "schema_version": SCHEMA_VERSION,
            "script": self.target.display,
            "argv": list(self.target.args),
            "settings": self.settings.to_dict(),
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "advice": self.advice,
            "rungs": self.rungs,
            "wiring": {k: list(w.get(k) or []) for k in WIRING_KEYS},
            "loss_at_init": probe.get("loss_at_init"),
            "training_loader": self.loader,
            "runs": self.runs,
        })

    def write(self) -> None:
        write_json(os.path.join(self.out, "check.json"), self.record())
        with open(os.path.join(self.out, "curves.csv"), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rung", "train_step", "loss"])
            for name, points in self.curves.items():
                for step, loss in points:
                    w.writerow([name, step, repr(loss) if math.isfinite(loss) else str(loss)])


def _say(text: str) -> None:
    try:
        print(f"nnprof check: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _timed(label: str, fn, *args, **kwargs):
    _say(f"{label} ...")
    t = time.perf_counter()
    sub = fn(*args, **kwargs)
    how = sub.stop_reason.split(" (")[0] if sub.stop_reason else sub.status
    if sub.returncode != 0:
        how += f", exit {sub.exit_code}"
    steps = (sub.summary or {}).get("steps", {}).get("train", 0)
    _say(f"{label}: {how}, {steps} train steps, {time.perf_counter() - t:.1f} s")
    return sub


def run_check(target, settings: Settings, out: str) -> Check:
    """Run the ladder; write ``check.json`` and ``curves.csv``; return the Check."""
    check = Check(target, settings, out)
    probe_sub = _timed(f"probe run ({settings.probe_steps} train steps)", sub_run, "probe",
                       target, os.path.join(out, "probe"), settings.probe_steps)
    check.runs["probe"] = "probe"
    check.probe = probe_sub.run.probe if probe_sub.run is not None else None
    loaders = (probe_sub.summary or {}).get("loader") or (
        list(probe_sub.run.loaders.values()) if probe_sub.run is not None else [])
    check.rungs += probe_rungs(check.probe, loaders)
    overfit_names = [f"overfit-{n}" for n in settings.examples]
    later = overfit_names + (["generalize"] if settings.generalize else [])
    if probe_sub.failed or probe_sub.interrupted:
        check.status = "interrupted" if probe_sub.interrupted else "script-failed"
        check.exit_code = probe_sub.exit_code or (130 if probe_sub.interrupted else 1)
        why = ("the probe run was interrupted" if probe_sub.interrupted else
               f"the script failed in the probe run (exit {probe_sub.exit_code}): "
               f"{probe_sub.error_line()}")
        check.rungs += [skipped(name, why) for name in later]
        check.failed_run = probe_sub
        check.write()
        return check
    check.loader, reason = find_training_loader(probe_sub)
    method = "loader" if check.loader is not None else "replay" if reason == MANUAL else None
    turns = adversarial_reason(probe_sub)
    if turns:
        method, reason = None, turns
    for i, n in enumerate(settings.examples):
        name = overfit_names[i]
        if method is None:
            check.rungs.append(skipped(name, reason))
            continue
        rung = {"examples": n, "as_is": settings.as_is, "ratio": settings.ratio,
                "patience": settings.patience}
        if method == "loader":
            rung["loader_site"] = {"file": check.loader["file"], "line": check.loader["line"],
                                   "index": check.loader["index"]}
        else:
            rung["replay"] = True
        how = "replaying its first batch, " if method == "replay" else ""
        sub = _timed(f"{name} run ({how}up to {settings.max_steps} train steps)", sub_run,
                     name, target, os.path.join(out, name), settings.max_steps, rung,
                     settings.max_time)
        check.runs[name] = name
        if sub.interrupted:
            check.status, check.exit_code = "interrupted", 130
            check.rungs += [skipped(m, "the check was interrupted") for m in later[i:]]
            break
        result, check.curves[name] = judge_overfit(
            n, sub, (check.probe or {}).get("wiring"), settings, check.loader,
            classification=bool((check.probe or {}).get("loss_at_init")), method=method)
        check.rungs.append(result)
    if settings.generalize and check.status == "passed" and turns:
        check.rungs.append(skipped("generalize", turns))
    elif settings.generalize and check.status == "passed":
        sub = _timed(f"generalize run (full data, up to {settings.max_steps} train steps)",
                     sub_run, "generalize", target, os.path.join(out, "generalize"),
                     settings.max_steps, None, settings.max_time)
        check.runs["generalize"] = "generalize"
        if sub.interrupted:
            check.status, check.exit_code = "interrupted", 130
            check.rungs.append(skipped("generalize", "the check was interrupted"))
        else:
            result, check.curves["generalize"] = judge_generalize(sub, settings)
            check.rungs.append(result)
    conclude(check, adversarial=bool(turns))
    check.write()
    return check


def conclude(check: Check, adversarial: bool = False) -> None:
    """The check's result once its rungs are judged: ``failed`` when a rung failed;
    ``inconclusive`` when no overfit rung could run (all SKIP: nothing says the model
    can learn), with the reason and what to do; else it stays ``passed``."""
    if check.status != "passed":
        return
    if any(r["status"] == "fail" for r in check.rungs):
        check.status, check.exit_code = "failed", EXIT_FAILED
        return
    overfit_rungs = [r for r in check.rungs if r["name"].startswith("overfit-")]
    if not overfit_rungs or any(r["status"] != "skip" for r in overfit_rungs):
        return
    reasons = []
    for r in overfit_rungs:
        why = (r.get("evidence") or {}).get("reason")
        if why and why not in reasons:
            reasons.append(why)
    check.status, check.exit_code = "inconclusive", EXIT_INCONCLUSIVE
    check.reason = "no overfit rung could run: " + "; ".join(reasons or ["no reason recorded"])
    check.advice = [ADVERSARIAL_ADVICE if adversarial else RUNNABLE_ADVICE]
