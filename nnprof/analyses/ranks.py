"""Ranks of one distributed launch: train steps aligned by index, skew and stragglers.

Synchronous data-parallel training makes every rank wait for the slowest at each
gradient all-reduce, so the ranks' step times come out about equal and the slow rank
hides in plain timings: the others' ``backward`` grows by what they wait
(``comm_wait``). Each rank's **own work** in a step is what it did itself:

    own = data + prep + compute + optimizer,   compute = forward + loss + backward - comm_wait

Per aligned train step (the k-th train step of every rank), the slowest rank is the
one with the most own work, and its **gap** is its own work less the median of the
other ranks' (what they waited for it). Over the steady steps (the first
``WARMUP_STEPS`` aligned steps are left out when enough remain):

* the straggler is the rank slowest in the most steps;
* its gap is the mean of (its own work - the median of the others') over the steady
  steps, and ``gap_share`` that gap over the job's mean step (each step's slowest wall
  time across ranks);
* its cause is the category (``input`` = data, ``prep``, ``compute``, ``optimizer``)
  whose own share of the difference is largest.

A straggler is named only when it is one consistently, never by chance on a balanced
job, where each rank is the slowest of a step about one time in N and the gaps are the
step-to-step noise. All of these must hold:

* at least ``MIN_STEPS`` (5) steady aligned steps were compared;
* the rank was the slowest in at least ``MIN_SLOWEST`` (60%) of them;
* its per-step gap (own work less the median of the others') is positive in the median,
  and its mean is at least ``MIN_T`` (3) standard errors above zero;
* that count of slowest steps is improbable for N equally fast ranks (its binomial tail
  probability, each rank slowest with probability 1/N, is under ``MAX_CHANCE``, 0.001),
  or, on a run too short for that test, the gap is at least ``STRONG_T`` (6) standard
  errors above zero;
* the mean gap is at least the step-to-step noise of the job's step time (its robust
  standard deviation, 1.4826 x the median absolute deviation, over the steady steps):
  a rank slower by less than the steps vary among themselves costs nothing worth a
  change (on a shared machine one rank can be systematically a fraction slower);
* the mean gap is at least ``MINOR`` (5%) of the job's mean step.

Severity follows the gap's share of the step: ``info`` from 5%, a warning from ``WARN``
(10%), ``critical`` from ``CRITICAL`` (20%). Advice follows the cause.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

WARMUP_STEPS = 2
MINOR, WARN, CRITICAL = 0.05, 0.10, 0.20
MIN_STEPS, MIN_SLOWEST, MAX_CHANCE, MIN_T, STRONG_T = 5, 0.60, 1e-3, 3.0, 6.0
CAUSES = ("input", "prep", "compute", "optimizer")

ADVICE = {
    "input": ["rank {r} waits for its data: give its DataLoader more workers "
              "(num_workers), pin_memory=True and persistent_workers=True, and check that "
              "its shard is not larger or slower to read than the others' (the sampler, "
              "files on a slower disk)",
              "move per-sample work out of collate_fn/transforms, or precompute it"],
    "prep": ["rank {r} is slow between receiving its batch and its forward (device "
             "copies, reshaping): use pin_memory=True with .to(device, non_blocking=True), "
             "and check that its device is not shared with another process"],
    "compute": ["rank {r} computes more slowly: check for uneven batches (variable "
                "sequence lengths: bucket them), another process on its device or CPU "
                "cores, a slower or throttled device, or rank-specific work in forward "
                "(logging, metrics only on that rank)"],
    "optimizer": ["rank {r} spends longer in the optimizer step: check for rank-specific "
                  "work there (gradient clipping with a sync, logging norms), or uneven "
                  "parameter shards with a ZeRO-style optimizer"],
}


def own_work(steps):
    """Per-step own work and its categories (seconds), from one rank's train steps."""
    comm = steps["comm_wait_s"].fillna(0.0) if "comm_wait_s" in steps else 0.0
    compute = steps["forward_s"] + steps["loss_s"] + (steps["backward_s"] - comm).clip(lower=0)
    parts = {"input": steps["data_s"], "prep": steps["prep_s"], "compute": compute,
             "optimizer": steps["optimizer_s"]}
    own = parts["input"] + parts["prep"] + parts["compute"] + parts["optimizer"]
    return own, parts


def align(rank_steps: dict):
    """A frame of the train steps every rank ran, by train index.

    ``rank_steps``: {rank: that rank's steps frame}. Columns: ``train_index``, and per
    rank R: ``wall_R``, ``own_R``, ``comm_R``, and ``<cause>_R`` for each cause.
    """
    import pandas as pd
    frames = []
    for r, steps in sorted(rank_steps.items()):
        train = steps[steps["kind"] == "train"].dropna(subset=["train_index"])
        own, parts = own_work(train)
        cols = {"train_index": train["train_index"].astype(int), f"wall_{r}": train["wall_s"],
                f"own_{r}": own,
                f"comm_{r}": train["comm_wait_s"].fillna(0.0) if "comm_wait_s" in train
                else train["wall_s"] * 0}
        for c in CAUSES:
            cols[f"{c}_{r}"] = parts[c]
        frames.append(pd.DataFrame(cols).drop_duplicates("train_index").set_index("train_index"))
    if not frames:
        return pd.DataFrame()
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f, how="inner")
    return out.sort_index().reset_index()


def per_step(aligned, ranks: list):
    """Per aligned step: the job's wall time, the slowest rank, its gap and the skew."""
    import pandas as pd
    if not len(aligned) or not ranks:
        return pd.DataFrame(columns=["train_index", "wall_s", "slowest_rank", "gap_s", "skew_s"])
    own = aligned[[f"own_{r}" for r in ranks]]
    own.columns = ranks
    slowest = own.idxmax(axis=1)
    gaps = []
    for i, r in enumerate(slowest):
        others = own.iloc[i].drop(r)
        gaps.append(float(own.iloc[i][r] - others.median()) if len(others) else 0.0)
    return pd.DataFrame({
        "train_index": aligned["train_index"],
        "wall_s": aligned[[f"wall_{r}" for r in ranks]].max(axis=1),
        "slowest_rank": slowest.astype(int),
        "gap_s": gaps,
        "skew_s": own.max(axis=1) - own.min(axis=1),
    })


def steady(frame):
    return frame.iloc[WARMUP_STEPS:] if len(frame) > 2 * WARMUP_STEPS else frame


def chance_of_slowest(count: int, steps: int, n_ranks: int) -> float:
    """P(a given rank is the slowest in ``count`` or more of ``steps`` steps) when each of
    ``n_ranks`` equally fast ranks is the slowest of a step with probability 1/N."""
    if steps <= 0 or count <= 0:
        return 1.0
    other = n_ranks - 1
    tail = sum(math.comb(steps, k) * other ** (steps - k) for k in range(count, steps + 1))
    return float(Fraction(tail, n_ranks ** steps))


def consistent_gap(d) -> Optional[float]:
    """The mean of the per-step gaps ``d`` in standard errors (None: too few steps)."""
    n = len(d)
    if n < 2:
        return None
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return math.inf if mean > 0 else 0.0
    return mean / (sd / math.sqrt(n))


def straggler(aligned, ranks: list) -> Optional[dict]:
    """The rank the others wait for (see the module's rule), or None."""
    if len(ranks) < 2 or not len(aligned):
        return None
    table = steady(per_step(aligned, ranks))
    rows = steady(aligned)
    n = len(table)
    if n < MIN_STEPS:
        return None
    counts = table["slowest_rank"].value_counts()
    r = int(counts.idxmax())
    slowest = int(counts.get(r, 0))
    others = [q for q in ranks if q != r]
    d = rows[f"own_{r}"] - rows[[f"own_{q}" for q in others]].median(axis=1)
    gap = float(d.mean())
    step = float(table["wall_s"].mean()) or 0.0
    share = gap / step if step > 0 else 0.0
    wall = table["wall_s"]
    noise = 1.4826 * float((wall - wall.median()).abs().median())
    chance = chance_of_slowest(slowest, n, len(ranks))
    t = consistent_gap(d)
    if (share < MINOR or gap <= 0 or slowest < MIN_SLOWEST * n or float(d.median()) <= 0
            or t is None or t < MIN_T or (chance >= MAX_CHANCE and t < STRONG_T)
            or gap < noise):
        return None
    diffs = {c: float((rows[f"{c}_{r}"] - rows[[f"{c}_{q}" for q in others]].median(axis=1))
                      .mean()) for c in CAUSES}
    cause = max(CAUSES, key=lambda c: diffs[c])
    severity = "critical" if share >= CRITICAL else "warn" if share >= WARN else "info"
    return {
        "rank": r, "cause": cause, "gap_s": gap, "gap_share": share,
        "steps_as_slowest": slowest, "steps_compared": int(n),
        "chance": chance, "gap_t": None if t is None or math.isinf(t) else t,
        "noise_s": noise,
        "severity": severity,
        "verdict": (f"rank {r} is a straggler: the other ranks wait {gap * 1e3:.1f} ms per "
                    f"step for it ({share * 100:.0f}% of the step), mostly for its "
                    f"{cause}"),
        "cause_gap_s": diffs,
        "advice": [a.format(r=r) for a in ADVICE[cause]],
    }


def comm_wait(rank_phases: dict) -> dict:
    """{rank: {mean_s, share}} from each rank's ``phases["comm_wait"]`` (where measured)."""
    out = {}
    for r, phases in sorted(rank_phases.items()):
        cw = (phases or {}).get("comm_wait")
        if cw:
            out[r] = {"mean_s": cw.get("mean_s"), "share": cw.get("share")}
    return out
