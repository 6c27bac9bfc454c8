"""Wiring: does every trainable parameter get a gradient and get updated?"""
from __future__ import annotations

from typing import Optional

from . import Finding

CATEGORIES = ("no_grad", "zero_grad", "not_in_optimizer", "unchanged")  # faults
NOTED = ("frozen", "below_resolution", "unjudged", "unfrozen_later")  # told, not faults
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
UNCHANGED = {  # the cause of an unchanged parameter, from what the optimizer asked for
    "lr0": ("{n} got a non-zero gradient yet did not change: {names}. Their param group's "
            "learning rate was 0 at every step looked at (lr=0): nothing can be learned."),
    "lost": ("{n} got a non-zero gradient and the optimizer asked for an update up to "
             "{ratio:.3g}x their float resolution (lr {lr:.3g}), yet did not change: {names}. "
             "Likely causes: an optimizer that skips them, or a step that is undone inside "
             "it."),
    "none_asked": ("{n} got a non-zero gradient and a learning rate of {lr:.3g}, yet the "
                   "optimizer asked for no update: {names}."),
}


def name_list(names: list, limit: int = MAX_NAMED) -> str:
    """``a, b, c and 4 more``."""
    shown = ", ".join(str(n) for n in names[:limit])
    rest = len(names) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown


def _count(n: int) -> str:
    return f"{n} parameter{'s' if n != 1 else ''}"


def _unchanged_advice(names: list, causes: list) -> list:
    """The unchanged parameters, one line per cause (the generic line for records that
    carry no cause)."""
    by = {}
    for c in causes or []:
        if c.get("name") in names and c.get("cause") in UNCHANGED:
            by.setdefault(c["cause"], []).append(c)
    told = {c["name"] for cs in by.values() for c in cs}
    out = []
    for cause, cs in by.items():
        lrs = [c["lr"] for c in cs if isinstance(c.get("lr"), (int, float))]
        ratios = [c["ratio"] for c in cs if isinstance(c.get("ratio"), (int, float))]
        out.append(UNCHANGED[cause].format(
            n=_count(len(cs)), names=name_list([c["name"] for c in cs]),
            lr=max(lrs) if lrs else 0.0, ratio=max(ratios) if ratios else 0.0))
    rest = [n for n in names if n not in told]
    if rest:
        out.append(CAUSES["unchanged"].format(n=_count(len(rest)), names=name_list(rest)))
    return out


def _lr_words(grp: dict) -> str:
    lrs = [v for v in grp.get("lr") or [] if isinstance(v, (int, float))]
    if not lrs:
        return "a learning rate nnprof could not read"
    lo, hi = min(lrs), max(lrs)
    text = f"lr {hi:.3g}" if lo == hi else f"lr {lo:.3g} to {hi:.3g}"
    init = grp.get("initial_lr")
    if grp.get("warmup"):
        text += (f" (in warm-up: the scheduler holds it below its initial {init:.3g})"
                 if init and hi < init else " (in warm-up: rising)")
    return text


def resolution_advice(grp: dict, window) -> str:
    """One group of parameters whose updates rounded away: which, the lr in force, the
    dtype and its resolution, when they move, and what would move them sooner."""
    n = len(grp.get("names") or [])
    dtype = grp.get("dtype") or "?"
    text = (f"{_count(n)} of {grp.get('optimizer', '?')} group {grp.get('group', 0)} did not "
            f"change in the first {window} optimizer steps because every update was below "
            f"their {dtype} resolution: {_lr_words(grp)} x the update asked for stayed within "
            f"{grp.get('ratio', 0):.2g}x eps·|w| (eps {grp.get('eps', 0):.3g}, the spacing of "
            f"{dtype} near each weight): {name_list(grp.get('names') or [])}. Not a wiring "
            "fault.")
    moves = grp.get("moves_at_lr")
    if grp.get("moved_by_step"):
        text += f" They changed by optimizer step {grp['moved_by_step']}" + (
            f", the lr then {grp['moved_lr']:.3g}." if grp.get("moved_lr") else ".")
    elif moves:
        text += (f" With the gradients of these steps they would move at an lr of about "
                 f"{moves:.2g}.")
    fixes = []
    if grp.get("warmup"):
        fixes.append("a larger warm-up start lr")
    if dtype in ("bfloat16", "float16"):
        fixes.append("float32 (master) weights, with autocast for the compute")
    if fixes:
        text += " To move them sooner: " + " or ".join(fixes) + "."
    return text


def wiring(probe_wiring: Optional[dict]) -> Finding:
    """Rule, on ``probe.json``'s ``wiring`` (measured over the first ``window``
    optimizer steps, flagged parameters looked at again later in the run):

    - ``fail`` when any of ``no_grad``, ``zero_grad``, ``not_in_optimizer``,
      ``unchanged`` lists a parameter (severity ``fail``); ``unchanged`` holds only
      parameters whose optimizer asked for an update above their float resolution,
      or whose learning rate was 0 at every step looked at;
    - ``warn`` otherwise when ``below_resolution`` (every update rounded away: not a
      fault, said with the lr in force and the dtype) or ``unjudged`` (unchanged under an
      update nnprof cannot read) lists a parameter;
    - ``pass`` otherwise (severity ``info``); parameters that got a gradient or changed
      later in the run (``later``) are told for information;
    - ``skip`` when there is no wiring record or no parameter was checked.

    ``frozen`` parameters (``requires_grad=False``) are listed for information
    only. Evidence: each list in full, its count, and the window measured.
    """
    if not probe_wiring or not probe_wiring.get("checked"):
        reason = ("no wiring probe was recorded" if not probe_wiring
                  else "no parameter was checked (no optimizer step was seen)")
        return Finding("wiring", "skip", {"reason": reason},
                       (f"Wiring not checked: {reason}.",), "info")
    lists = {k: list(probe_wiring.get(k) or []) for k in CATEGORIES + NOTED}
    evidence = {
        "checked": int(probe_wiring["checked"]),
        "window": probe_wiring.get("window"),
        "steps_seen": probe_wiring.get("steps_seen"),
        "complete": probe_wiring.get("complete", True),
        "counts": {k: len(v) for k, v in lists.items()},
        **lists,
        "resolution": list(probe_wiring.get("resolution") or []),
        "unchanged_causes": list(probe_wiring.get("unchanged_causes") or []),
        "later": list(probe_wiring.get("later") or []),
    }
    advice = []
    for cat in CATEGORIES:
        names = lists[cat]
        if not names:
            continue
        if cat == "unchanged":
            advice.extend(_unchanged_advice(names, evidence["unchanged_causes"]))
            continue
        n = len(names)
        advice.append(CAUSES[cat].format(n=_count(n), s="s" if n == 1 else "",
                                         are="is" if n == 1 else "are",
                                         names=name_list(names)))
    failed = bool(advice)
    warned = bool(lists["below_resolution"] or lists["unjudged"])
    if not failed:
        ok = evidence["checked"] - len(lists["below_resolution"]) - len(lists["unjudged"])
        advice.append(f"The other {_count(ok)} checked received a non-zero gradient, are in "
                      "an optimizer and changed." if warned else
                      f"All {_count(ok)} checked received a non-zero gradient, are in an "
                      "optimizer and changed.")
    for grp in evidence["resolution"]:
        advice.append(resolution_advice(grp, evidence["window"]))
    unjudged = [c for c in evidence["unchanged_causes"] if c.get("name") in lists["unjudged"]]
    if unjudged:
        basis = unjudged[0].get("basis") or "the update could not be read"
        advice.append(f"{_count(len(unjudged))} got a non-zero gradient and did not change, "
                      f"and the update asked for could not be read ({basis}): "
                      f"{name_list([c['name'] for c in unjudged])}. A wiring fault if that "
                      "update is above eps·|w| of the weights; rounding if it is below.")
    for was, words in (("no_grad", "no gradient"), ("zero_grad", "an all-zero gradient"),
                       ("unchanged", "an update that did not show")):
        items = [x for x in evidence["later"] if x.get("was") == was]
        if items:
            by = max(int(x.get("step") or 0) for x in items)
            advice.append(f"{_count(len(items))} got {words} in the first "
                          f"{evidence['window']} optimizer steps but "
                          + ("changed" if was == "unchanged" else "got a gradient")
                          + f" by step {by}: {name_list([x['name'] for x in items])}. A phase "
                          "(a layer unfrozen later, a warm-up, a loss term scheduled off at "
                          "the start), not a wiring fault.")
    if lists["frozen"]:
        advice.append(f"For information: {_count(len(lists['frozen']))} frozen "
                      f"(requires_grad=False): {name_list(lists['frozen'])}.")
    if lists["unfrozen_later"]:
        advice.append(f"For information: {_count(len(lists['unfrozen_later']))} frozen during "
                      f"the first {evidence['window']} optimizer steps and trainable at the "
                      f"end (unfrozen later), so not checked: "
                      f"{name_list(lists['unfrozen_later'])}.")
    if not evidence["complete"]:
        advice.append(f"The run ended after {evidence['steps_seen']} of the "
                      f"{evidence['window']} optimizer steps of the window: the check "
                      "rests on fewer steps than planned.")
    verdict = "fail" if failed else "warn" if warned else "pass"
    return Finding("wiring", verdict, evidence, tuple(advice),
                   {"fail": "fail", "warn": "warn"}.get(verdict, "info"))
