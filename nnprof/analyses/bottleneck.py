"""The bottleneck verdict: what limits the speed of a train step."""
from __future__ import annotations

from typing import Optional

from . import Finding

HIGH_INPUT = 0.20      # TensorFlow's input-pipeline analyser: highly input-bound
MODERATE_INPUT = 0.05  # ... moderately input-bound
OPTIMIZER_SHARE = 0.30
OVERHEAD_SHARE = 0.30
COMPUTE_SHARE = 0.50
DOMINANT_PART = 0.50   # a part of loading that takes this share of it is named
MIN_BATCH_FOR_WORKERS = 0.002  # below this, worker IPC costs about what it saves
MANY_FORWARDS = 4      # forwards per train step from which one backward serves a rollout


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _ms(x: Optional[float]) -> str:
    return "?" if x is None else f"{1e3 * x:.1f} ms"


def bottleneck(shares: dict, means: dict, loader: Optional[dict], device: str,
               cores: int, source: str = "host", unseen: tuple = ()) -> Finding:
    """Rule, on the shares of train-step wall time (``shares[phase]``, summing to 1):

    1. input = data + prep >= 20%                     -> ``input-bound`` (highly)
    2. optimizer >= 30% and above every other group   -> ``optimizer-bound``
    3. other >= 30% and above compute                  -> ``host-overhead-bound``
    4. compute = forward + loss + backward >= 50%     -> ``compute-bound``
    5. otherwise                                      -> ``balanced``

    Input between 5% and 20% adds a "moderately input-bound" note to whichever
    verdict applies. ``source`` says whether the shares are host times or
    device (CUDA event) times. ``loader`` is the training loader's stats from
    :func:`nnprof.analyses.loader.loader_stats` (None without a DataLoader).
    ``means["forwards"]``: the mean number of forward passes per train step. From
    MANY_FORWARDS on (a rollout: one backward over an episode of small forwards),
    the advice speaks of that shape: ``other`` is the work between the forwards,
    and backward is compared with all of them together.
    ``unseen``: classes whose ``forward`` the script calls directly (``m.forward(x)``):
    that work lands before the first seen forward (``prep``) or after it
    (``other``), so ``prep`` is read as ``other`` (not input) and the advice says why.
    """
    if unseen:
        shares = dict(shares, prep=0.0, other=shares.get("other", 0) + shares.get("prep", 0))
    inp = shares.get("data", 0) + shares.get("prep", 0)
    compute = shares.get("forward", 0) + shares.get("loss", 0) + shares.get("backward", 0)
    opt = shares.get("optimizer", 0)
    other = shares.get("other", 0)
    evidence = {
        "source": source,
        "input_share": inp,
        "compute_share": compute,
        "optimizer_share": opt,
        "other_share": other,
        "shares": {k: v for k, v in shares.items()},
        "mean_step_s": means.get("wall"),
    }
    advice: list = []
    if unseen:
        evidence["forward_called_directly"] = list(unseen)
        names = ", ".join(f"{n}.forward" for n in unseen)
        advice.append(f"{names} is called directly (module.forward(x), not module(x)): a "
                      "module's forward is seen only through its call, so its work is "
                      "counted in prep and other, not forward, and is read here as other. "
                      "Call the module itself (which also runs its hooks) to have it "
                      "measured.")
    if inp >= HIGH_INPUT:
        verdict, severity = "input-bound", "warn"
        evidence["level"] = "high"
        advice += input_advice(shares, means, loader, device, cores)
    elif opt >= OPTIMIZER_SHARE and opt >= max(compute, other, inp):
        verdict, severity = "optimizer-bound", "warn"
        advice += optimizer_advice(opt, device)
    elif other >= OVERHEAD_SHARE and other > compute:
        verdict, severity = "host-overhead-bound", "warn"
        if not unseen:  # else that forward is the likeliest part of other (said above)
            advice += overhead_advice(other, device, means.get("forwards"))
    elif compute >= COMPUTE_SHARE:
        verdict, severity = "compute-bound", "info"
        # a forward not seen whole cannot be compared with its backward
        advice += compute_advice(shares, device, means.get("forwards"), compare=not unseen)
    else:
        verdict, severity = "balanced", "info"
        advice.append("No single part dominates the step: "
                      f"input {_pct(inp)}, compute {_pct(compute)}, optimizer {_pct(opt)}, "
                      f"other {_pct(other)}.")
    if verdict != "input-bound" and inp >= MODERATE_INPUT:
        evidence["level"] = "moderate"
        advice.append(f"Moderately input-bound: waiting for input (data + prep) takes {_pct(inp)} "
                      "of each step.")
        advice += input_advice(shares, means, loader, device, cores)[:2]
    return Finding("bottleneck", verdict, evidence, tuple(advice), severity)


def input_advice(shares: dict, means: dict, loader: Optional[dict], device: str,
                 cores: int) -> list:
    data, prep = shares.get("data", 0), shares.get("prep", 0)
    out = []
    if loader is None:
        out.append(f"There is no DataLoader: batches are prepared in the loop "
                   f"({_pct(data + prep)} of each step before the forward pass). Move that work "
                   "into a Dataset served by a DataLoader with workers, or precompute it.")
        return out
    if prep > data:
        out.append(f"Preparing the batch after it arrives takes {_pct(prep)} of each step "
                   f"({_ms(means.get('prep'))}): "
                   + ("use pin_memory=True and .to(device, non_blocking=True), and move "
                      "reshaping and normalisation onto the GPU." if device != "cpu" else
                      "move that work (reshaping, normalisation, conversions) into the "
                      "Dataset so that loader workers do it in parallel."))
        return out
    name = f"loader {loader['id']} ({loader['site']})"
    parts = {p: loader.get(f"{p}_s") or 0.0 for p in ("fetch", "transform", "collate")}
    batch_s = loader.get("batch_s")
    workers = loader.get("num_workers") or 0
    usable = loader.get("usable_workers") or max(1, cores - 1)
    needed = loader.get("workers_needed")
    cap, dem = loader.get("capacity_bps"), loader.get("demand_bps")
    if workers == 0:
        msg = (f"Waiting for data takes {_pct(data)} of each step: {name} loads in the main "
               f"process with num_workers=0 ({_ms(batch_s)} per batch, while the rest of the "
               f"step takes {_ms(loader.get('loop_s'))}).")
        out.append(msg)
        if batch_s is not None and batch_s < MIN_BATCH_FOR_WORKERS:
            out.append(f"Making a batch takes only {_ms(batch_s)}: workers would cost about "
                       "as much in inter-process transfer as they save; the wait is the "
                       "loader's own per-batch overhead (sampler, collate, conversions).")
            needed = None
        if needed is not None:
            if needed <= usable:
                out.append(f"Set num_workers={needed} (of {usable} usable: {cores} cores, one "
                           f"kept for the training loop): {needed} worker{'s' if needed > 1 else ''} make{'' if needed > 1 else 's'} "
                           f"{needed / batch_s:.1f} batches/s against the "
                           f"{dem:.1f} the loop consumes.")
            else:
                out.append(f"Even num_workers={usable} (all cores but one) would make only "
                           f"{usable / batch_s:.1f} batches/s against the {dem:.1f} needed "
                           f"({needed} workers would): make loading cheaper as well.")
    else:
        startup = loader.get("startup_s") or 0.0
        if cap is not None and dem is not None and cap < dem:
            msg = (f"The {workers} workers of {name} cannot keep up: they make "
                   f"{cap:.1f} batches/s ({_ms(batch_s)} per batch each) while the loop "
                   f"consumes {dem:.1f}.")
            out.append(msg)
            if needed is not None and needed <= usable:
                out.append(f"Set num_workers={needed} ({cores} cores available).")
            else:
                out.append(f"{needed} workers would be needed but only {usable} "
                           f"core{'s are' if usable > 1 else ' is'} free for them ({cores} in "
                           "all): make each batch cheaper.")
        elif not loader.get("persistent_workers") and loader.get("iter_calls", 0) > 1 \
                and startup > 0.1 * (means.get("data", 0) * max(1, loader["steps"]["train"])):
            out.append(f"Workers are restarted at every epoch ({loader['iter_calls']} starts, "
                       f"{startup:.2f} s in all): set persistent_workers=True.")
        elif batch_s is not None and batch_s < MIN_BATCH_FOR_WORKERS:
            out.append(f"Workers of {name} make a batch in only {_ms(batch_s)}, yet the loop "
                       f"waits {_pct(data)} of each step: passing batches between processes "
                       "costs more than making them. Use num_workers=0, or larger batches.")
        else:
            out.append(f"Workers of {name} should keep up ({cap or 0:.1f} batches/s made, "
                       f"{dem or 0:.1f} needed) yet the loop waits {_pct(data)} of each step: "
                       "raise prefetch_factor, check that workers are not starved of CPU "
                       f"({workers} workers + the loop on {cores} cores).")
        if workers + 1 > cores:
            out.append(f"{workers} workers and the training loop share {cores} cores: "
                       "they compete for CPU.")
    total = sum(parts.values())
    if total > 0 and (batch_s or 0) >= MIN_BATCH_FOR_WORKERS:
        top = max(parts, key=parts.get)
        share = parts[top] / total
        if share >= DOMINANT_PART:
            if top == "transform":
                out.append(transform_advice(loader, parts))
            elif top == "fetch":
                reading = (f"Iterating {loader.get('dataset')}" if loader.get("iterable")
                           else f"Dataset.__getitem__ of {loader.get('dataset')}")
                out.append(f"{reading} takes {_pct(share)} of "
                           f"loading time ({_ms(parts['fetch'])} per batch): cache or preload "
                           "samples, use a faster format or storage.")
            else:
                out.append(f"collate_fn takes {_pct(share)} of loading time "
                           f"({_ms(parts['collate'])} per batch): return tensors from the "
                           "Dataset, not many small Python objects.")
    return out


COSTLIEST_IS_WHOLE = 0.9  # a member taking this much of the transform is named alone


def transform_advice(loader: dict, parts: dict) -> str:
    """Advice on a transform-dominated loader, quoting each figure for what it
    measures: the dataset's whole transform (``parts``: fetch, transform and
    collate seconds per batch), and its costliest member by class name
    (``loader["transform_by_name"]``: seconds over the ``batches_measured``
    batches). A member that takes nearly all of it is named alone."""
    total = sum(parts.values())
    whole = parts["transform"]
    fix = "cache its deterministic part, or run it on the GPU on whole batches."
    named = loader.get("transform_by_name") or []
    n = loader.get("batches_measured") or 0
    top = named[0] if named else None
    per = top.get("total_s") / n if top and n and top.get("total_s") is not None else None
    if top is None or per is None:
        who = (f", {top['name']} the costliest part" if top else "")
        return (f"The dataset's transform takes {_pct(whole / total)} of loading time "
                f"({_ms(whole)} per batch){who}: make it cheaper, " + fix)
    name = top["name"]
    if per >= COSTLIEST_IS_WHOLE * whole:
        return (f"The transform {name} takes {_pct(per / total)} of loading time "
                f"({_ms(per)} per batch): make it cheaper, " + fix)
    return (f"The dataset's transform takes {_pct(whole / total)} of loading time "
            f"({_ms(whole)} per batch); {name} alone takes {_pct(per / total)} "
            f"({_ms(per)} per batch): make {name} cheaper, " + fix)


def optimizer_advice(opt: float, device: str) -> list:
    return [f"optimizer.step() and zero_grad() take {_pct(opt)} of each step: use the "
            "multi-tensor implementations (foreach=True, or fused=True for Adam/AdamW/SGD"
            + (" on CUDA" if device != "cpu" else "") + "), keep param groups few, and avoid "
            "per-parameter Python loops in a custom optimizer."]


def _rollout(forwards: Optional[float]) -> bool:
    return forwards is not None and forwards >= MANY_FORWARDS


def overhead_advice(other: float, device: str, forwards: Optional[float] = None) -> list:
    if _rollout(forwards):
        return [f"{_pct(other)} of each step is spent outside the model's {forwards:.0f} "
                "forward passes, its backward and the optimizer: the work between the "
                "forwards (an environment stepped in Python, sampling actions, building "
                "the next input one item at a time). Batch it: step several environments "
                "or sequences at once, so that each forward serves many of them, and keep "
                "that work in tensors rather than Python loops."]
    msg = (f"{_pct(other)} of each step is spent outside data, forward, loss, backward and "
           "optimizer: logging, metrics, printing, checkpointing in the loop.")
    if device != "cpu":
        msg += (" On a GPU, .item(), .cpu() and print(tensor) wait for the GPU: log every N "
                "steps and keep running metrics on the device.")
    else:
        msg += " Log every N steps and compute metrics on accumulated values."
    return [msg]


def compute_advice(shares: dict, device: str, forwards: Optional[float] = None,
                   compare: bool = True) -> list:
    fwd, bwd = shares.get("forward", 0), shares.get("backward", 0)
    out = []
    if device == "cpu":
        out.append("The step is compute-bound on the CPU: a GPU, a smaller model or input, "
                   "or torch.compile are the levers.")
    else:
        out.append("The step is compute-bound: good for a GPU. For more speed: mixed "
                   "precision (torch.autocast), TF32 matmuls, larger batches, torch.compile.")
    if not (compare and fwd > 0 and bwd > 3 * fwd):
        return out
    if _rollout(forwards):
        out.append(f"backward takes {bwd / fwd:.1f}x the {forwards:.0f} forward passes of "
                   "each step together: one backward runs over all their graphs and over "
                   "the operations between them (sampling, log-probabilities, the loss "
                   "built item by item), each a small tensor whose cost is per-operation "
                   "overhead. Batch the forwards (several environments or sequences per "
                   "call) and build the loss from stacked tensors, so that fewer, larger "
                   "operations run.")
    else:
        several = f" {forwards:.0f} forward passes of each step" if (
            forwards is not None and forwards >= 1.5) else " forward pass"
        out.append(f"backward takes {bwd / fwd:.1f}x the{several} (about 2x is usual): "
                   "look for gradient checkpointing or costly custom autograd functions.")
    return out
