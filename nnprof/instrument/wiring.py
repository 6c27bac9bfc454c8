"""The wiring probe: gradients and updates of every parameter over each optimizer's
first ``window`` steps, and what explains a parameter that did not move.

A parameter that got a non-zero gradient and did not change is a wiring fault only
when the optimizer asked for an update its float format can show (the arithmetic is in
:mod:`nnprof.instrument.updates`). So at each window step, for each parameter that is
still equal to its value before the first step, the probe reads the element-wise
update the optimizer asked for (``lr`` times the direction read from its state, see
:func:`asked_update`) and keeps the largest ratio ``|u| / (eps·|w|)``. A parameter
whose every asked update stayed within ``RESOLUTION_SLACK`` of its resolution is
``below_resolution``, not a fault. Flagged parameters are looked at again at
doubling optimizer steps after the window and at the end of the run: one that later
gets a gradient or changes was in a phase (a frozen-then-unfrozen layer, a warm-up, a
loss term scheduled off), and is reported as such.

Runs during the window only and at the sparse looks after it; never changes what
the script computes.
"""
from __future__ import annotations

from typing import Optional

import torch

from .updates import (RESOLUTION_SLACK, asked_update, fingerprint, group_lr,
                      resolution_ratio, same, to_float)

class WiringProbe:
    """Gradients and updates of every parameter over each optimizer's first steps."""

    def __init__(self, window: int = 3) -> None:
        self.window = window
        self.models: list = []
        self.optimizers: list = []
        self.steps: dict = {}      # id(opt) -> optimizer steps seen
        self.saw_grad: dict = {}   # id(param) -> bool
        self.saw_nonzero: dict = {}
        # id(param) -> while unmoved: its fingerprint before the first step, then a copy of
        # its value after it (only parameters the first step did not visibly move are
        # copied, after the step: the script's own peak, often the first step, holds none)
        self.snapshots: dict = {}
        self.changed: dict = {}    # id(param) -> bool, over the window
        self.stalls: dict = {}     # id(param) -> what the window's steps asked of it unmoved
        self.lrs: dict = {}        # (id(opt), group index) -> lr at each window step
        self.watch: dict = {}      # id(param) -> (category, optimizer, param) after the window
        self.later: dict = {}      # id(param) -> (category, optimizer step it resolved by)
        self.next_look: dict = {}  # id(opt) -> the optimizer step of the next look
        self.frozen_in_window: set = set()  # id(param): requires_grad=False in a window step
        self.active = True

    def add_model(self, module) -> None:
        self.models.append(module)

    def add_optimizer(self, opt) -> None:
        self.optimizers.append(opt)

    def _params(self, opt):
        for g in opt.param_groups:
            for p in g["params"]:
                yield p

    def _grouped(self, opt):
        for gi, g in enumerate(opt.param_groups):
            for p in g["params"]:
                yield gi, g, p

    def _loose_params(self):
        """Parameters of seen models that are in no optimizer."""
        owned = {id(p) for o in self.optimizers for p in self._params(o)}
        for m in self.models:
            for p in m.parameters():
                if p.requires_grad and id(p) not in owned:
                    yield p

    @staticmethod
    def _nonzero(g) -> bool:
        try:
            return bool(g.coalesce().values().any()) if g.is_sparse else bool(g.any())
        except RuntimeError:
            return True

    def _look(self, p) -> None:
        g = p.grad
        if g is None:
            self.saw_grad.setdefault(id(p), False)
            self.saw_nonzero.setdefault(id(p), False)
            return
        self.saw_grad[id(p)] = True
        if not self.saw_nonzero.get(id(p)):
            self.saw_nonzero[id(p)] = self._nonzero(g)

    def before_step(self, opt) -> None:
        n = self.steps.get(id(opt), 0)
        if n >= self.window:
            if n + 1 >= self.next_look.get(id(opt), 2 * self.window):
                self._look_again(opt, n + 1, grads=True)
            return
        with torch.no_grad():
            for gi, g in enumerate(opt.param_groups):
                self.lrs.setdefault((id(opt), gi), []).append(group_lr(g))
            for p in self._params(opt):
                if not p.requires_grad:
                    self.frozen_in_window.add(id(p))
                    continue
                self._look(p)
                if n == 0 and id(p) not in self.snapshots and id(p) not in self.changed:
                    fp = fingerprint(p)
                    if fp is not None:
                        self.snapshots[id(p)] = fp
            for p in self._loose_params():
                self._look(p)

    def after_step(self, opt) -> None:
        n = self.steps.get(id(opt), 0) + 1
        self.steps[id(opt)] = n
        if n > self.window:
            if n >= self.next_look.get(id(opt), 2 * self.window):
                self._look_again(opt, n, grads=False)
                self.next_look[id(opt)] = 2 * n
            self._settle()
            return
        self._compare(opt, n)
        if n == self.window:
            self._close_window(opt)
        self._settle()

    def _settle(self) -> None:
        """Inactive once every optimizer passed its window and nothing is watched."""
        if all(self.steps.get(id(o), 0) >= self.window for o in self.optimizers) \
                and not self.watch:
            self.active = False

    def _compare(self, opt, step: int) -> None:
        """After a window step: parameters that moved let go of their snapshot; for those
        still unmoved, how large an update the optimizer asked for."""
        with torch.no_grad():
            for gi, g, p in self._grouped(opt):
                snap = self.snapshots.get(id(p))
                if snap is None:
                    continue
                if not same(snap, p):
                    self.changed[id(p)] = True
                    del self.snapshots[id(p)]
                    self.stalls.pop(id(p), None)
                    continue
                if not isinstance(snap, torch.Tensor) and step < self.window:
                    self.snapshots[id(p)] = p.detach().clone()  # exact from here on
                st = self.stalls.setdefault(id(p), {"ratio": 0.0, "asked": 0, "unread": None,
                                                    "basis": None, "opt": id(opt), "group": gi})
                try:
                    u, basis = asked_update(opt, g, p)
                    ratio = None if u is None else resolution_ratio(u, p)
                except Exception as e:  # a parameter type the arithmetic does not take
                    ratio, basis = None, f"unreadable ({type(e).__name__})"
                if ratio is None:
                    st["unread"] = basis
                    continue
                if ratio > 0:
                    st["asked"] += 1
                    st["basis"] = basis
                if isinstance(snap, torch.Tensor) or ratio <= RESOLUTION_SLACK:
                    # a large update is evidence of a lost one only where the comparison
                    # was exact (a fingerprint may miss the smallest elements' change)
                    st["ratio"] = max(st["ratio"], ratio)

    def _close_window(self, opt) -> None:
        """The window of ``opt`` is over: its unmoved parameters are unchanged; its
        flagged ones are watched from here on."""
        for p in self._params(opt):
            pid = id(p)
            if pid in self.snapshots:
                self.changed[pid] = False
            if p.requires_grad and pid in self.saw_grad and not self.saw_nonzero.get(pid):
                self.watch[pid] = ("no_grad" if not self.saw_grad[pid] else "zero_grad", opt, p)
                self.snapshots.pop(pid, None)  # no gradient: whether it moved tells nothing
            elif pid in self.snapshots:
                self.watch[pid] = ("unchanged", opt, p)

    def _look_again(self, opt, step: int, grads: bool) -> None:
        """At a sparse step after the window: has a watched parameter of ``opt`` got a
        gradient (before the step) or moved (after it)?"""
        with torch.no_grad():
            for pid, (cat, o, p) in list(self.watch.items()):
                if o is opt:
                    self._resolve(pid, cat, p, step, grads)

    def _resolve(self, pid, cat, p, step, grads: bool) -> None:
        if cat == "unchanged" and not grads:
            snap = self.snapshots.get(pid)
            if snap is not None and not same(snap, p):
                self.later[pid] = (cat, step, self._lr_of(pid))
                self.watch.pop(pid, None)
                self.snapshots.pop(pid, None)
        elif cat != "unchanged" and grads and p.grad is not None and self._nonzero(p.grad):
            self.later[pid] = (cat, step, self._lr_of(pid))
            self.watch.pop(pid, None)

    def names(self) -> dict:
        out = {}
        models = unwrapped(self.models)
        multi = len(models) > 1
        for m in models:
            for name, p in m.named_parameters():
                out.setdefault(id(p), f"{type(m).__name__}:{name}" if multi else name)
        for o in self.optimizers:
            for gi, g in enumerate(o.param_groups):
                for pi, p in enumerate(g["params"]):
                    out.setdefault(id(p), f"{type(o).__name__}.param_groups[{gi}][{pi}]")
        return out

    def _finish(self) -> None:
        """At the end of the run: windows cut short are closed on what was seen; watched
        parameters get their last look (values and the gradients left on them)."""
        for o in self.optimizers:
            n = self.steps.get(id(o), 0)
            if 0 < n < self.window:
                self._close_window(o)
        with torch.no_grad():
            for pid, (cat, o, p) in list(self.watch.items()):
                step = self.steps.get(id(o), 0)
                if step > self.window:
                    self._resolve(pid, cat, p, step, grads=cat != "unchanged")

    def result(self) -> dict:
        """The wiring lists (see docs/check-contract.md)."""
        self._finish()
        names = self.names()
        in_opt = {id(p) for o in self.optimizers for p in self._params(o)}
        params = {}
        for m in self.models:
            for p in m.parameters():
                params[id(p)] = p
        for o in self.optimizers:
            for p in self._params(o):
                params[id(p)] = p
        out = {k: [] for k in ("no_grad", "zero_grad", "not_in_optimizer", "unchanged",
                               "frozen", "below_resolution", "unjudged", "unfrozen_later")}
        checked = 0
        seen_any = any(self.steps.values())
        unmoved, later = [], []
        for pid, p in params.items():
            name = names.get(pid, "?")
            if not p.requires_grad:
                out["frozen"].append(name)
                continue
            if pid not in in_opt:
                out["not_in_optimizer"].append(name)
            if not seen_any or pid not in self.saw_grad:
                if pid in self.frozen_in_window:  # trainable now: unfrozen after the window
                    out["unfrozen_later"].append(name)
                continue
            checked += 1
            if pid in self.later and self.later[pid][0] != "unchanged":
                later.append({"name": name, "was": self.later[pid][0],
                              "step": self.later[pid][1], "lr": self.later[pid][2]})
            elif not self.saw_grad[pid]:
                out["no_grad"].append(name)
            elif not self.saw_nonzero.get(pid):
                out["zero_grad"].append(name)
            elif pid in in_opt and self.changed.get(pid) is False:
                unmoved.append((pid, name, p))
        resolution, causes = self._judge_unmoved(unmoved, out, later)
        steps = min((min(self.steps.get(id(o), 0), self.window) for o in self.optimizers),
                    default=0)
        return dict(out, window=self.window, steps_seen=steps, checked=checked,
                    complete=bool(self.optimizers) and steps >= self.window,
                    resolution=resolution, unchanged_causes=causes, later=later)

    def _lr_of(self, pid) -> Optional[float]:
        oid, gi = self._group_of(pid)
        o = next((o for o in self.optimizers if id(o) == oid), None)
        return group_lr(o.param_groups[gi]) if o is not None and gi < len(o.param_groups) \
            else None

    def _group_of(self, pid):
        st = self.stalls.get(pid)
        if st is not None:
            return st["opt"], st["group"]
        for o in self.optimizers:
            for gi, g, p in self._grouped(o):
                if id(p) == pid:
                    return id(o), gi
        return None, None

    def _judge_unmoved(self, unmoved: list, out: dict, later: list) -> tuple:
        """Sort the unmoved parameters: ``unchanged`` (a fault: a learning rate of 0 at
        every window step, or an update above the resolution that did not land) or
        ``below_resolution`` (every asked update rounded away), with the evidence per
        param group; those that moved after the window are ``later``."""
        groups: dict = {}
        causes: list = []
        opts = {id(o): o for o in self.optimizers}
        for pid, name, p in unmoved:
            oid, gi = self._group_of(pid)
            lrs = [v for v in self.lrs.get((oid, gi), []) if v is not None]
            st = self.stalls.get(pid) or {}
            moved_at, moved_lr = self.later.get(pid, (None, None, None))[1:]
            if lrs and max(lrs) > 0 and st.get("asked") and st.get("unread") is None \
                    and st["ratio"] <= RESOLUTION_SLACK:
                key = (oid, gi, str(p.dtype).replace("torch.", ""))
                grp = groups.get(key)
                if grp is None:
                    o = opts.get(oid)
                    pg = o.param_groups[gi] if o is not None and gi < len(o.param_groups) \
                        else {}
                    grp = groups[key] = {
                        "optimizer": type(o).__name__ if o is not None else "?", "group": gi,
                        "dtype": key[2], "eps": torch.finfo(p.dtype).eps, "lr": lrs,
                        "initial_lr": to_float(pg.get("initial_lr")),
                        "ratio": 0.0, "basis": st.get("basis"), "names": [], "moved_at": [],
                        "moved_lr": None}
                grp["ratio"] = max(grp["ratio"], st["ratio"])
                grp["names"].append(name)
                grp["moved_at"].append(moved_at)
                grp["moved_lr"] = moved_lr if moved_lr is not None else grp["moved_lr"]
                out["below_resolution"].append(name)
                continue
            if moved_at is not None:
                later.append({"name": name, "was": "unchanged", "step": moved_at,
                              "lr": moved_lr})
                continue
            if not lrs or max(lrs) == 0:
                why = "lr0" if lrs else "no_lr"
            elif st.get("ratio", 0) > RESOLUTION_SLACK:
                why = "lost"
            elif st.get("unread") is not None:
                why = "unread"
            else:
                why = "none_asked"
            # a fault is said only where the arithmetic shows one; otherwise conditional
            out["unjudged" if why in ("unread", "no_lr") else "unchanged"].append(name)
            causes.append({"name": name, "cause": why, "lr": max(lrs) if lrs else None,
                           "ratio": st.get("ratio"), "basis": st.get("unread")
                           or st.get("basis")})
        resolution = []
        for grp in groups.values():
            hi = max(grp["lr"])
            grp["warmup"] = bool(grp["initial_lr"] and hi < grp["initial_lr"]) or (
                len(grp["lr"]) > 1 and grp["lr"][-1] > grp["lr"][0]) or bool(
                grp["moved_lr"] and grp["moved_lr"] > hi)
            # the ratio grows with the lr: the lr at which the largest update shows
            grp["moves_at_lr"] = hi / grp["ratio"] if grp["ratio"] > 0 else None
            seen = [s for s in grp["moved_at"] if s is not None]
            grp["moved_by_step"] = max(seen) if len(seen) == len(grp["moved_at"]) else None
            grp["moved"] = len(seen)
            del grp["moved_at"]
            resolution.append(grp)
        return resolution, causes


def unwrapped(models: list) -> list:
    """The models with data-parallel wrappers (DDP, DataParallel: a ``module`` holding all
    their parameters) replaced by the model they wrap, each once: parameter names then
    read as in the script's own model, without the wrapper's ``module.`` prefix."""
    out, seen = [], set()
    for m in models:
        inner = getattr(m, "module", None)
        if isinstance(inner, torch.nn.Module) and inner is not m:
            try:
                if sum(1 for _ in m.parameters()) == sum(1 for _ in inner.parameters()):
                    m = inner
            except Exception:
                pass
        if id(m) not in seen:
            seen.add(id(m))
            out.append(m)
    return out
