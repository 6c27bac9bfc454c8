"""Memory: growth across train steps (a leak), what the memory is made of, what fits.

**Growth.** The series is the host process's resident memory at each train step's end
(``rss_bytes``: the host sampler's latest reading, 10 per second by default) and, on
CUDA, the allocator's allocated bytes (``gpu_mem_allocated_bytes``). The first
``WARMUP_SHARE`` of the train steps (at least ``MIN_WARMUP`` steps) are left out: the
first epoch fills caches, allocator pools and pinned buffers. Over the rest (at least
``MIN_STEPS`` readings) growth is found when all of these hold:

* the Theil-Sen slope (the median of pairwise slopes: robust to single jumps) is
  positive, and it adds up over the window to at least ``MIN_RISE_BYTES`` and
  ``MIN_RISE_SHARE`` of the window's median;
* the rise is steady, not one step: the least-squares line explains at least ``MIN_R2``
  of the variance, and the last third of the window is above the middle third by at
  least ``STEADY_SHARE`` of what the slope predicts between them.

A run whose memory plateaus after its first epoch has a flat window: no finding. The
projection says when the run would reach the device's (CUDA) or the machine's (host)
total memory at that rate. Causes are the likeliest for the pattern seen, first those
nnprof saw itself: loss tensors of earlier steps still alive (kept with their graph).

**Breakdown.** Parameters, gradients (the trainable parameters that received one) and
optimizer state are the sizes of the tensors nnprof saw held by the models and
optimizers; activations and temporaries are the rest of the step's peak: on CUDA the
allocator's peak allocated bytes, on the host the peak resident memory of the first
``FIRST_STEPS`` train steps less the resident memory before the first train step (which
holds the runtime, the data and the parameters already), gradients and optimizer state.

**What fits.** Activations scale with the batch size, the rest does not: the peak at
k times the batch is ``fixed + k * activations``, and the largest batch that fits keeps
``SAFETY`` (10%) of the device's (or machine's available) memory free. An estimate,
stated with that assumption.
"""
from __future__ import annotations

import math
from typing import Optional

WARMUP_SHARE = 0.25
MIN_WARMUP = 5
MIN_STEPS = 30
MIN_RISE_BYTES = 8 * 2**20
MIN_RISE_SHARE = 0.02
MIN_R2 = 0.6
STEADY_SHARE = 0.5
SAFETY = 0.10
FIRST_STEPS = 5    # host activations: the resident peak over the first train steps
MAX_PAIRS = 4000   # Theil-Sen on at most this many points (evenly spaced)

CAUSE_KEPT = ("loss tensors of earlier steps are still alive: something keeps each step's "
              "loss, and with it its autograd graph and saved activations (a list of losses, "
              "a running total built with `total_loss += loss`): keep `loss.item()` or "
              "`loss.detach()` instead")
CAUSES_DEVICE = [
    "tensors kept across steps with their graph: `losses.append(loss)`, `total_loss += "
    "loss` (use `.item()` or `.detach()`), `backward(retain_graph=True)` where it is not "
    "needed",
    "tensors collected on the device for metrics (outputs or predictions appended every "
    "step): move them to the CPU or reduce them as you go",
    "a cache that grows (per-shape compiled graphs, a dict of tensors keyed by batch)",
]
CAUSES_HOST = [
    "Python objects kept across steps: lists of losses or metrics (as tensors, with their "
    "graph: keep `.item()`), per-step logs held in memory",
    "a cache that grows (a dataset caching samples, `functools.lru_cache` without a bound)",
    "tensors kept across steps with their graph (`total_loss += loss`, "
    "`retain_graph=True`)",
]
HOW_TO_CONFIRM = [
    "confirm: print `len(gc.get_objects())` or the number of live tensors every N steps; "
    "on CUDA, `torch.cuda.memory._record_memory_history()` and a snapshot "
    "(`torch.cuda.memory._dump_snapshot`) name the allocation sites",
]


def _theil_sen(x: list, y: list) -> float:
    n = len(x)
    if n > MAX_PAIRS ** 0.5 * 2:
        step = n / (MAX_PAIRS ** 0.5 * 2)
        idx = sorted({int(i * step) for i in range(int(n / step))})
        x, y = [x[i] for i in idx], [y[i] for i in idx]
        n = len(x)
    slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(n) for j in range(i + 1, n)
              if x[j] != x[i]]
    if not slopes:
        return 0.0
    slopes.sort()
    m = len(slopes)
    return slopes[m // 2] if m % 2 else 0.5 * (slopes[m // 2 - 1] + slopes[m // 2])


def _r2(x: list, y: list) -> float:
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return 0.0
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy * sxy / (sxx * syy)


def _median(v: list) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def growth(index: list, values: list) -> Optional[dict]:
    """The growth finding's numbers for one series (train index, bytes), or None."""
    pts = [(float(i), float(v)) for i, v in zip(index, values)
           if v is not None and not math.isnan(float(v))]
    if len(pts) < MIN_STEPS + MIN_WARMUP:
        return None
    skip = max(MIN_WARMUP, int(len(pts) * WARMUP_SHARE))
    window = pts[skip:]
    if len(window) < MIN_STEPS:
        return None
    x, y = [p[0] for p in window], [p[1] for p in window]
    slope = _theil_sen(x, y)
    span = x[-1] - x[0]
    rise = slope * span
    if slope <= 0 or rise < max(MIN_RISE_BYTES, MIN_RISE_SHARE * _median(y)):
        return None
    r2 = _r2(x, y)
    third = len(window) // 3
    mid, last = window[third:2 * third], window[2 * third:]
    gain = _median([p[1] for p in last]) - _median([p[1] for p in mid])
    expected = slope * (_median([p[0] for p in last]) - _median([p[0] for p in mid]))
    if r2 < MIN_R2 or expected <= 0 or gain < STEADY_SHARE * expected:
        return None
    return {"bytes_per_step": slope, "r_squared": r2, "from_step": int(x[0]),
            "to_step": int(x[-1]), "last_bytes": y[-1], "rise_bytes": rise}


def _projection(g: dict, total: Optional[float], what: str) -> Optional[dict]:
    if not total or g["bytes_per_step"] <= 0:
        return None
    left = total - g["last_bytes"]
    steps = left / g["bytes_per_step"] if left > 0 else 0.0
    return {"target_bytes": int(total), "target": what,
            "reaches_at_step": int(g["to_step"] + steps)}


def _fmt_bytes(b: Optional[float]) -> str:
    if b is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


def memory_summary(steps, meta: dict, probe: dict, samples=None,
                   batch_size: Optional[int] = None) -> dict:
    """``summary.json["memory"]`` (see docs/verdicts.md#memory). ``probe``: probe.json
    (``memory``: the bytes held by parameters, gradients and optimizer state;
    ``kept_losses``); ``batch_size``: the train loader's, for ``fits``."""
    train = steps[steps["kind"] == "train"] if len(steps) else steps
    out = {"host": None, "cuda": None, "growth": None, "breakdown": None, "fits": None}
    rss = train["rss_bytes"].dropna() if "rss_bytes" in train else []
    if samples is not None and len(samples):
        host_s = samples[(samples["source"] == "host") &
                         (samples["metric"] == "process_rss_bytes")]["value"]
    else:
        host_s = []
    if len(host_s):
        out["host"] = {"rss_start_bytes": int(host_s.iloc[0]),
                       "rss_end_bytes": int(host_s.iloc[-1]),
                       "rss_peak_bytes": int(host_s.max())}
        workers = samples[(samples["source"] == "host") &
                          (samples["metric"] == "workers_rss_bytes")]["value"]
        if len(workers) and workers.max() > 0:
            out["host"]["workers_rss_peak_bytes"] = int(workers.max())
    alloc = train["gpu_mem_allocated_bytes"].dropna() \
        if "gpu_mem_allocated_bytes" in train else []
    if len(alloc):
        reserved = train["gpu_mem_reserved_bytes"].dropna()
        peak = train["gpu_mem_peak_bytes"].dropna() if "gpu_mem_peak_bytes" in train else []
        out["cuda"] = {"allocated_end_bytes": int(alloc.iloc[-1]),
                       "allocated_max_bytes": int(alloc.max()),
                       "reserved_max_bytes": int(reserved.max()) if len(reserved) else None,
                       "peak_bytes": int(peak.max()) if len(peak) else None,
                       "total_bytes": meta.get("gpu_total_memory_bytes")}
    found = None
    if len(alloc):
        g = growth(train.loc[alloc.index, "train_index"].tolist(), alloc.tolist())
        if g:
            found = dict(g, source="cuda",
                         projection=_projection(g, meta.get("gpu_total_memory_bytes"),
                                                "device memory"))
    if found is None and len(rss):
        g = growth(train.loc[rss.index, "train_index"].tolist(), rss.tolist())
        if g:
            found = dict(g, source="host",
                         projection=_projection(g, meta.get("host_memory_bytes"),
                                                "host memory"))
    if found:
        kept = (probe or {}).get("kept_losses") or {}
        causes = ([CAUSE_KEPT] if (kept.get("alive") or 0) >= 2 else []) + (
            CAUSES_DEVICE if found["source"] == "cuda" else CAUSES_HOST)
        proj = found.get("projection")
        verdict = (f"memory grows by {_fmt_bytes(found['bytes_per_step'])} per train step "
                   f"({found['source']}, from step {found['from_step']})")
        if proj:
            verdict += (f"; at this rate the run reaches {_fmt_bytes(proj['target_bytes'])} "
                        f"({proj['target']}) at step {proj['reaches_at_step']:,}")
        found.update({"kept_losses": kept or None, "causes": causes,
                      "advice": causes[:2] + HOW_TO_CONFIRM, "verdict": verdict,
                      "severity": "warn"})
    out["growth"] = found
    before = None
    if len(host_s) and len(train):
        first = float(train["start_s"].min())
        host_t = samples[(samples["source"] == "host") &
                         (samples["metric"] == "process_rss_bytes")]
        earlier = host_t[host_t["t_s"] <= first]["value"]
        before = float(earlier.iloc[-1]) if len(earlier) else float(host_t["value"].iloc[0])
    out["breakdown"] = _breakdown(probe, out, train, before, batch_size)
    out["fits"] = _fits(out, meta)
    return out


HOST_CAVEAT = ("the projection is the live memory; the host allocator (glibc) keeps freed "
               "blocks resident, so the process's peak can grow faster with the batch")
TEMP_LARGEST = 2  # host: backward temporaries ~ this many of the largest saved tensor
BASIS_SAVED = ("measured: the tensors autograd saved for the backward, read from the graph "
               "at the start of the backward of train steps 0-2, once per storage, "
               "parameters excluded")
BASIS_TEMP_CUDA = ("measured: the allocator's peak less parameters, gradients, optimizer "
                   "state and activations")
BASIS_TEMP_HOST = (f"estimated: {TEMP_LARGEST}x the largest tensor saved by the 3 graph nodes "
                   "nearest the loss that save one (the backward starts there with the "
                   "gradients of their output "
                   "and input, and frees each node's saved tensors as it goes); the host "
                   "allocator has no peak counter")
BASIS_INFERRED = ("inferred: the resident memory of the first train steps less what was "
                  "resident before training, gradients and optimizer state (allocator "
                  "caches and libraries included: not activations alone)")


def _breakdown(probe: dict, out: dict, train, rss_before: Optional[float],
               batch_size: Optional[int]) -> Optional[dict]:
    """The step's memory by part, each with its basis (measured, estimated, inferred)."""
    held = (probe or {}).get("memory") or {}
    if not held:
        return None
    acts = (probe or {}).get("activations") or {}
    proc = (probe or {}).get("process") or {}
    params, grads, state = (int(held.get(k) or 0) for k in
                            ("parameters", "gradients", "optimizer_state"))
    fixed = params + grads + state
    own = proc.get("nnprof_bytes") or 0
    cuda = out.get("cuda") or {}
    b = {"parameters": params, "gradients": grads, "optimizer_state": state,
         "activations": None, "activations_basis": None, "outputs_held": None,
         "temporaries": None,
         "temporaries_basis": None, "activations_and_temporaries": None, "basis": None,
         "rss_before_train_bytes": int(rss_before) if rss_before else None,
         "nnprof_bytes": int(own) if own else None,
         "batch_size": batch_size, "batch_from": "the train DataLoader's batch_size"
         if batch_size else None, "per_sample_activation_bytes": None,
         "device": "cuda" if cuda.get("peak_bytes") else "host",
         "peak_bytes": None, "other_bytes": None}
    if not batch_size and acts.get("batch_size"):
        b["batch_size"], b["batch_from"] = int(acts["batch_size"]), acts.get("batch_from")
    if acts.get("saved_bytes") is not None:
        act = int(acts["saved_bytes"])
        b["activations"], b["activations_basis"] = act, BASIS_SAVED
        held_out = int(acts.get("outputs_held_bytes") or 0)
        b["outputs_held"] = held_out
        if cuda.get("peak_bytes"):
            b["temporaries"] = max(0, int(cuda["peak_bytes"]) - fixed - act - held_out)
            b["temporaries_basis"] = BASIS_TEMP_CUDA
        else:
            near = acts.get("near_loss_bytes")
            b["temporaries"] = TEMP_LARGEST * int(near if near is not None
                                                  else acts.get("largest_bytes") or 0)
            b["temporaries_basis"] = BASIS_TEMP_HOST
        b["activations_and_temporaries"] = act + held_out + b["temporaries"]
        b["basis"] = "measured activations"
        if b["batch_size"]:
            b["per_sample_activation_bytes"] = act / b["batch_size"]
    elif cuda.get("peak_bytes"):
        b["activations_and_temporaries"] = max(0, cuda["peak_bytes"] - fixed)
        b["basis"] = "cuda peak allocated"
    elif "rss_bytes" in train and train["rss_bytes"].notna().sum() >= 2 and rss_before:
        peak = float(train["rss_bytes"].dropna().iloc[:FIRST_STEPS].max())
        b["activations_and_temporaries"] = max(0, int(peak - rss_before - grads - state))
        b["basis"] = "host resident memory"
        b["activations_basis"] = BASIS_INFERRED
    if b["device"] == "cuda":
        b["peak_bytes"] = int(cuda["peak_bytes"])
    else:
        peaks = [v for v in (proc.get("peak_rss_bytes"),
                             (out.get("host") or {}).get("rss_peak_bytes")) if v]
        if peaks:  # the script's own: nnprof's bytes left out
            b["peak_bytes"] = int(max(peaks) - own)
    if b["peak_bytes"] and b["activations_and_temporaries"] is not None:
        # what the parts do not name: the runtime, the data, allocator caches
        b["other_bytes"] = max(0, b["peak_bytes"] - fixed - b["activations_and_temporaries"])
        b["shares"] = {k: round(v / b["peak_bytes"], 4) for k, v in (
            ("parameters", params), ("gradients", grads), ("optimizer_state", state),
            ("activations", b["activations"] or 0), ("outputs_held", b["outputs_held"] or 0),
            ("temporaries", b["temporaries"] or 0),
            ("other", b["other_bytes"])) if b["peak_bytes"] > 0}
    return b


def _fits(out: dict, meta: dict) -> Optional[dict]:
    """The peak at k times the batch: the measured peak, plus (k - 1) times what scales
    with the batch (activations and backward temporaries); the largest batch keeping
    ``SAFETY`` of the device's (or the host's available) memory free."""
    b = out.get("breakdown") or {}
    scaling = b.get("activations_and_temporaries")
    if not scaling:
        return None
    fixed = b["parameters"] + b["gradients"] + b["optimizer_state"]
    if b.get("device") == "cuda" or b.get("basis") == "cuda peak allocated":
        total, what = meta.get("gpu_total_memory_bytes"), "device memory"
    else:
        total, what = meta.get("host_available_bytes"), "available host memory"
    peak = b.get("peak_bytes")
    if peak:
        base = max(0, peak - scaling)
    elif what == "device memory":
        base = fixed
    else:  # the process holds its runtime and data besides
        base = int(b.get("rss_before_train_bytes") or 0) + b["gradients"] \
            + b["optimizer_state"]
    if not total:
        return None
    room = total * (1 - SAFETY) - base
    k_max = room / scaling if scaling > 0 else None
    bs = b.get("batch_size")
    return {"assumption": "activations, the forward's outputs and the backward's temporaries "
                          "scale with the batch size; parameters, gradients, optimizer state "
                          "and the runtime do not",
            "against": what, "total_bytes": int(total), "base_bytes": int(base),
            "scaling_bytes": int(scaling), "peak_at_1x_bytes": int(base + scaling),
            "peak_at_2x_bytes": int(base + 2 * scaling),
            "peak_at_4x_bytes": int(base + 4 * scaling),
            "max_batch_factor": round(k_max, 2) if k_max is not None else None,
            "batch_size": bs, "batch_from": b.get("batch_from"),
            "max_batch_size": int(bs * k_max) if bs and k_max and k_max > 0 else None,
            "caveat": HOST_CAVEAT if what == "available host memory" else None}


def breakdown_text(b: dict) -> str:
    """The breakdown in one line, each part with its basis and share of the peak."""
    shares = b.get("shares") or {}

    def part(name, key, value, basis=None):
        share = shares.get(key)
        text = f"{name} {_fmt_bytes(value)}" + (f" ({share * 100:.0f}%)" if share is not None else "")
        return text + (f" [{basis}]" if basis else "")
    parts = [part("parameters", "parameters", b.get("parameters")),
             part("gradients", "gradients", b.get("gradients")),
             part("optimizer state", "optimizer_state", b.get("optimizer_state"))]
    if b.get("activations") is not None:
        per = b.get("per_sample_activation_bytes")
        per_text = (f", {_fmt_bytes(per)} per sample x batch {b['batch_size']} ({b.get('batch_from')})"
                    if per else "")
        parts.append(part("activations", "activations", b["activations"],
                          "measured: saved for the backward" + per_text))
        if b.get("outputs_held"):
            parts.append(part("forward outputs held", "outputs_held", b["outputs_held"],
                              "measured: not saved by autograd, held by the script"))
        parts.append(part("backward temporaries", "temporaries", b.get("temporaries"),
                          str(b.get("temporaries_basis") or "").split(":")[0]))
    elif b.get("activations_and_temporaries") is not None:
        basis = "inferred" if b.get("basis") == "host resident memory" \
            else f"from the {b.get('basis')}"
        parts.append(f"activations and temporaries "
                     f"~{_fmt_bytes(b['activations_and_temporaries'])} [{basis}]")
    if b.get("other_bytes") is not None:
        parts.append(part("other (runtime, data, allocator caches, optimizer-step "
                          "temporaries)", "other", b["other_bytes"]))
    head = ""
    if b.get("peak_bytes"):
        where = "the device allocator's" if b.get("device") == "cuda" else \
            "the script's resident peak, nnprof's memory left out"
        head = (f"peak {_fmt_bytes(b['peak_bytes'])} ({where}"
                + (f"; nnprof's own {_fmt_bytes(b['nnprof_bytes'])} reported apart"
                   if b.get("nnprof_bytes") else "") + "): ")
    return head + ", ".join(parts)


def fits_text(fits: dict) -> str:
    """What fits, in one line."""
    text = (f"at 2x the batch ~{_fmt_bytes(fits.get('peak_at_2x_bytes'))}, at 4x "
            f"~{_fmt_bytes(fits.get('peak_at_4x_bytes'))} of {_fmt_bytes(fits.get('total_bytes'))} "
            f"{fits.get('against')}")
    if fits.get("max_batch_factor") is not None:
        text += (f"; fits up to ~{fits['max_batch_factor']:.3g}x the batch"
                 + (f" (batch size {fits['max_batch_size']:,})"
                    if fits.get("max_batch_size") else "") + " with 10% to spare")
    text += f" (the peak plus (k-1) x what scales: {fits.get('assumption')})"
    return text + (f"; {fits['caveat']}" if fits.get("caveat") else "")


FULL_SHARE = 0.90


def near_full(memory: Optional[dict]) -> Optional[dict]:
    """A finding when the run's peak came within 10% of the device's memory (CUDA: the
    allocator's reserved bytes) or of what the host process could reach."""
    memory = memory or {}
    cuda, host, fits = memory.get("cuda") or {}, memory.get("host") or {}, memory.get("fits")
    checks = []
    if cuda.get("total_bytes") and cuda.get("reserved_max_bytes"):
        checks.append(("device", cuda["reserved_max_bytes"], cuda["total_bytes"]))
    if host.get("rss_peak_bytes") and (fits or {}).get("against") == "available host memory":
        checks.append(("host", host["rss_peak_bytes"], fits["total_bytes"]))
    for where, peak, total in checks:
        if peak >= FULL_SHARE * total:
            return {"name": "memory-full", "verdict": "memory nearly full", "severity": "warn",
                    "evidence": {"where": where, "peak_bytes": peak, "total_bytes": total},
                    "advice": [f"the {where} memory peaked at {_fmt_bytes(peak)} of "
                               f"{_fmt_bytes(total)} ({peak / total * 100:.0f}%): a larger "
                               "batch or model will not fit; see memory.fits for the batch "
                               "size that would"]}
    return None
