"""Wiring: does every trainable parameter get a gradient and get updated?"""
from __future__ import annotations

from typing import Optional

from . import Finding

CATEGORIES = ("no_grad", "zero_grad", "not_in_optimizer", "unchanged")
MAX_NAMED = 5  # parameter names spelled out in advice before "and N more"

CAUSES = {
    "no_grad": ("{n} receive{s} no gradient (.grad stayed None): {names}. Likely causes: a "
                "branch or layer that is built but not used in forward(), an output that "
                "is detached, or .data / .detach() used in forward()."),
    "zero_grad": ("{n} receive{s} an all-zero gradient: {names}. Likely causes: a "
                  "multiplication by zero, a dead ReLU (all inputs negative), or a masked "
                  "path that never lets anything through."),
    "not_in_optimizer": ("{n} require{s} grad but {are} in no optimizer: {names}. Likely "
                         "causes: built after the optimizer was created, or left out of "
                         "parameters(), e.g. layers kept in a plain Python list or dict "
                         "instead of nn.ModuleList / nn.ModuleDict."),
    "unchanged": ("{n} got a non-zero gradient yet did not change: {names}. Likely cause: "
                  "a learning rate of 0, or a param group with lr=0."),
}


def name_list(names: list, limit: int = MAX_NAMED) -> str:
    """``a, b, c and 4 more``."""
    shown = ", ".join(str(n) for n in names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def _count(n: int) -> str:
    return f"{n} parameter{'s' if n != 1 else ''}"


def wiring(probe_wiring: Optional[dict]) -> Finding:
    """Rule, on ``probe.json``'s ``wiring`` (measured over the first ``window``
    optimizer steps):

    - ``fail`` when any of ``no_grad``, ``zero_grad``, ``not_in_optimizer``,
      ``unchanged`` lists a parameter (severity ``fail``);
    - ``pass`` otherwise (severity ``info``);
    - ``skip`` when there is no wiring record or no parameter was checked.

    ``frozen`` parameters (``requires_grad=False``) are listed for information
    only. Evidence: each list in full, its count, and the window measured.
    """
    if not probe_wiring or not probe_wiring.get("checked"):
        reason = ("no wiring probe was recorded" if not probe_wiring
                  else "no parameter was checked (no optimizer step was seen)")
        return Finding("wiring", "skip", {"reason": reason},
                       (f"Wiring not checked: {reason}.",), "info")
    lists = {k: list(probe_wiring.get(k) or []) for k in CATEGORIES + ("frozen",)}
    evidence = {
        "checked": int(probe_wiring["checked"]),
        "window": probe_wiring.get("window"),
        "steps_seen": probe_wiring.get("steps_seen"),
        "complete": probe_wiring.get("complete", True),
        "counts": {k: len(v) for k, v in lists.items()},
        **lists,
    }
    advice = []
    for cat in CATEGORIES:
        names = lists[cat]
        if names:
            n = len(names)
            advice.append(CAUSES[cat].format(n=_count(n), s="s" if n == 1 else "",
                                             are="is" if n == 1 else "are",
                                             names=name_list(names)))
    failed = bool(advice)
    if not failed:
        advice.append(f"All {_count(evidence['checked'])} checked received a non-zero "
                      "gradient, are in an optimizer and changed.")
    if lists["frozen"]:
        advice.append(f"For information: {_count(len(lists['frozen']))} frozen "
                      f"(requires_grad=False): {name_list(lists['frozen'])}.")
    if not evidence["complete"]:
        advice.append(f"The run ended after {evidence['steps_seen']} of the "
                      f"{evidence['window']} optimizer steps of the window: the check "
                      "rests on fewer steps than planned.")
    return Finding("wiring", "fail" if failed else "pass", evidence, tuple(advice),
                   "fail" if failed else "info")
