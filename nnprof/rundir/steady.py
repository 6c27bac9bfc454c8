"""The steady-step basis: which steps the timing statistics are made of.

One definition, used by the phase table, the step time, the bottleneck verdict, the
loader's and the comparison's figures alike.
"""
from __future__ import annotations

WARMUP_STEPS = 1
MIN_STEPS_FOR_WARMUP = 5


def steady_steps(steps):
    """The steps that timing statistics are made of, from the steps of one kind
    (train steps, or all steps when none ran a backward pass), in order.

    Left out, once there are at least ``MIN_STEPS_FOR_WARMUP`` steps: the first
    ``WARMUP_STEPS`` (imports, allocator, lazy initialisation, compilation), and
    the first step of every pass that started loader workers (``pass_start``:
    the step after their start-up), unless too few steps would be left. The
    phase table, the step time and the bottleneck verdict are all over these rows.
    """
    if len(steps) < MIN_STEPS_FOR_WARMUP:
        return steps
    steady = steps.iloc[WARMUP_STEPS:]
    if "pass_start" in steady.columns:
        later = steady[steady["pass_start"].fillna(0) == 0]
        if len(later) >= MIN_STEPS_FOR_WARMUP - WARMUP_STEPS:
            steady = later
    return steady


def describe_basis(over: str, steps, steady) -> dict:
    """What the timing statistics are over (``steady`` rows of ``steps``), in words
    for the report and in numbers: N of M steps of their kind, those left out."""
    n, m = int(len(steady)), int(len(steps))
    gone = steps.index.difference(steady.index)
    leading = list(gone) == list(steps.index[:len(gone)])
    indices = [int(i) for i in steps.loc[gone[:20], "index"]] if "index" in steps else []
    kind = "train steps" if over == "train" else "steps (no train step ran)"
    if not m:
        text = "no steps measured"
    elif not len(gone):
        text = f"{kind}: all {m} (none left out as warm-up)"
    else:
        text = f"steady {kind}: {n} of {m} " + (
            f"(first {len(gone)} left out as warm-up)" if leading else
            f"({len(gone)} left out as warm-up or start-up)")
    return {"over": over, "steps": n, "of": m, "left_out": int(len(gone)),
            "left_out_steps": indices, "text": text}
