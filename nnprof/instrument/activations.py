"""Activation memory: the bytes autograd keeps for the backward, measured on a few train
steps by reading the autograd graph at the start of their backward.

From the tensor ``backward()`` is called on, the graph is walked through
``next_functions``; every node's saved tensors (``_raw_saved_*`` of built-in nodes, the
``saved_tensors`` of custom functions and of compiled graphs) are counted once per
storage, parameters (and views of them) excluded. Reading is passive: no hook is
installed, no saved tensor is unpacked through a hook (a tensor saved under
``saved_tensors_hooks`` is not read: activation checkpointing's are recomputed, and what
its frames keep for the recompute, the checkpointed segments' inputs, is counted from
the frames instead). It never changes what the script computes.

On CUDA the allocator's counters are read as well: the bytes allocated when the step's
outermost forward began and when its backward began (what the forward left for the
backward, with the loss and outputs). The batch is the leading dimension of the
outermost forward's first tensor input.
"""
from __future__ import annotations

import time
import weakref
from collections import deque
from typing import Optional

import torch

SAMPLED_STEPS = (0, 1, 2)  # train steps measured (indices of train steps) ...
WALK_SHARE = 0.01          # ... unless a walk took more than this share of the time from
#                            its step's first forward to its backward: the walk's time is
#                            in its step, so later steps (the warm-up's is left out of the
#                            statistics) are not walked then
NEAR_LOSS = 3              # the nodes nearest the loss that save a tensor: they size the
#                            backward's first gradients (its temporaries)
MAX_FORWARDS = 1000        # grad forwards seen with no backward: stop looking
MAX_NODES = 50_000         # nodes walked per step at most (a larger graph: "truncated")
_CLOSURE_DEPTH = 4         # how deep a checkpoint frame is searched for the inputs it keeps


def _storage_key(t) -> Optional[tuple]:
    try:
        st = t.untyped_storage()
        return (t.device.type, t.device.index, st.data_ptr()), int(st.nbytes())
    except Exception:
        return None


class ActivationMeter:
    """Measures the train steps in ``SAMPLED_STEPS``; ``result()`` for probe.json."""

    def __init__(self, models: list) -> None:
        self.models = models        # the probe's list of models seen (grows)
        self.samples: list = []     # per measured step
        self.batch: Optional[int] = None
        self.batch_from: Optional[str] = None
        self._fwd_alloc: Optional[int] = None
        self._step: Optional[int] = None
        self._outputs: list = []    # weak references to the step's forward outputs
        self._forwards = 0
        self._fwd_start: Optional[int] = None  # the step's first outermost forward (ns)
        self.done = False

    # -- hooks from the clock ------------------------------------------------------------
    def forward_start(self, train_index: int, args, kwargs, module=None) -> None:
        """The outermost forward of a train step: its batch, and the allocator then."""
        if train_index not in SAMPLED_STEPS:
            return
        self._forwards += 1
        if self._forwards > MAX_FORWARDS and not self.samples:  # forwards that never train
            self.done = True
            return
        if self._step != train_index:
            self._outputs = []
            self._fwd_start = time.perf_counter_ns()
        self._step = train_index
        dim = 1 if module is not None and _sequence_first(module) else 0
        size = _leading_dim(args, kwargs, dim)
        if size is not None and (self.batch is None or train_index == 0):
            self.batch = size
            self.batch_from = ("leading dimension of the model's first input" if dim == 0 else
                               "dimension 1 of the model's first input (its recurrent or "
                               "attention layers are sequence-first: batch_first=False)")
        self._fwd_alloc = _cuda_allocated()

    def forward_end(self, train_index: int, result) -> None:
        """The outermost forward's output tensors: the script holds them through the
        backward (logits), though autograd may not save them."""
        if train_index not in SAMPLED_STEPS or self._step != train_index:
            return
        for t in _tensors(result):
            try:
                self._outputs.append(weakref.ref(t))
            except TypeError:
                continue

    def backward_start(self, train_index: int, root) -> None:
        """At the start of the step's (first) backward: walk the graph from ``root``."""
        if train_index not in SAMPLED_STEPS or any(s["step"] == train_index
                                                   for s in self.samples):
            return
        t0 = time.perf_counter_ns()
        try:
            sample = self._measure(root)
        except Exception as exc:  # a graph nnprof cannot read: say so, never fail the run
            sample = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        walk = time.perf_counter_ns() - t0
        sample["step"] = train_index
        sample["walk_ms"] = round(walk / 1e6, 3)
        if self._step == train_index and self._fwd_start is not None and \
                walk > WALK_SHARE * (t0 - self._fwd_start):
            self.done = True  # dearer than its share of the step: no further step walked
        alloc = _cuda_allocated()
        if alloc is not None and self._fwd_alloc is not None and self._step == train_index:
            sample["cuda_forward_held_bytes"] = max(0, alloc - self._fwd_alloc)
        self.samples.append(sample)
        if len(self.samples) >= len(SAMPLED_STEPS):
            self.done = True

    # -- the walk ------------------------------------------------------------------------
    def _param_storages(self) -> set:
        keys = set()
        for m in self.models:
            try:
                for t in list(m.parameters()) + list(m.buffers()):
                    k = _storage_key(t)
                    if k:
                        keys.add(k[0])
            except Exception:
                continue
        return keys

    def _measure(self, root) -> dict:
        roots = [root] if isinstance(root, torch.Tensor) else [
            t for t in (root or []) if isinstance(t, torch.Tensor)]
        params = self._param_storages()
        seen_nodes: set = set()
        storages: dict = {}
        largest = 0
        hooked = 0
        kept: dict = {}  # what checkpoint frames keep for the recompute
        queue = deque(t.grad_fn for t in roots if t.grad_fn is not None)
        nodes = 0
        near, savers = 0, 0
        while queue and nodes < MAX_NODES:  # breadth first: the nodes nearest the loss first
            node = queue.popleft()
            if node is None or id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            nodes += 1
            saves = False
            for t, hook in _saved(node):
                if hook is not None:
                    hooked += 1
                    _frame_tensors(hook, kept)
                    continue
                k = _storage_key(t)
                if k is None or k[0] in params:
                    continue
                storages[k[0]] = k[1]
                largest = max(largest, k[1])
                saves = True
                if savers < NEAR_LOSS:
                    near = max(near, k[1])
            savers += saves
            for nxt, _ in getattr(node, "next_functions", ()) or ():
                if nxt is not None and id(nxt) not in seen_nodes:
                    queue.append(nxt)
        extra = 0
        for key, nbytes in kept.items():
            if key not in params and key not in storages:
                storages[key] = nbytes
                extra += nbytes
                largest = max(largest, nbytes)
        held = {}  # outputs the script still holds that autograd did not save
        for ref in self._outputs:
            t = ref()
            k = _storage_key(t) if t is not None else None
            if k and k[0] not in storages and k[0] not in params:
                held[k[0]] = k[1]
        return {"saved_bytes": int(sum(storages.values())), "storages": len(storages),
                "largest_bytes": int(largest), "near_loss_bytes": int(near), "nodes": nodes,
                "truncated": bool(queue), "recomputed_saved": hooked,
                "checkpoint_inputs_bytes": int(extra),
                "outputs_held_bytes": int(sum(held.values()))}

    def result(self) -> Optional[dict]:
        if not self.samples:
            return None
        good = [s for s in self.samples if "saved_bytes" in s]
        out = {"samples": self.samples, "batch_size": self.batch, "batch_from": self.batch_from}
        if good:
            top = max(good, key=lambda s: s["saved_bytes"])
            out.update({k: top[k] for k in (
                "saved_bytes", "largest_bytes", "near_loss_bytes", "recomputed_saved",
                "checkpoint_inputs_bytes", "outputs_held_bytes")})
            held = [s["cuda_forward_held_bytes"] for s in good if "cuda_forward_held_bytes" in s]
            if held:
                out["cuda_forward_held_bytes"] = max(held)
        return out


_SAVED_NAMES: dict = {}


def _saved(node):
    """``(tensor, unpack hook)`` for each tensor the node saved; a hooked one is given as
    ``(None, hook)`` and never unpacked."""
    cls = type(node)
    names = _SAVED_NAMES.get(cls)
    if names is None:
        names = _SAVED_NAMES[cls] = tuple(n for n in dir(node) if n.startswith("_raw_saved_"))
    for n in names:
        try:
            raw = getattr(node, n)
        except Exception:
            continue
        for r in (raw if isinstance(raw, (list, tuple)) else (raw,)):
            hook = getattr(r, "unpack_hook", None)
            if hook is not None:
                yield None, hook
                continue
            try:
                t = r.data
            except Exception:
                continue
            if isinstance(t, torch.Tensor):
                yield t, None
    if not names and hasattr(node, "saved_tensors"):  # custom Function, compiled graph
        raws = getattr(node, "_raw_saved_tensors", None)
        if raws is not None and any(getattr(r, "unpack_hook", None) is not None
                                    for r in raws):
            for r in raws:
                yield None, getattr(r, "unpack_hook", None)
            return
        try:
            for t in node.saved_tensors:
                if isinstance(t, torch.Tensor):
                    yield t, None
        except Exception:
            return


def _frame_tensors(hook, out: dict) -> None:
    """The tensors a saved-tensor hook's closures keep (a checkpoint frame's inputs for
    its recompute), by storage; searched a few levels deep, read only."""
    seen: set = set()
    todo = [(hook, 0)]
    while todo:
        obj, depth = todo.pop()
        if id(obj) in seen or depth > _CLOSURE_DEPTH:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):  # floating: a frame's RNG states are not activations
            if not isinstance(obj, torch.nn.Parameter) and obj.is_floating_point():
                k = _storage_key(obj)
                if k:
                    out[k[0]] = k[1]
            continue
        if isinstance(obj, (list, tuple)):
            todo.extend((v, depth + 1) for v in obj[:64])
            continue
        if isinstance(obj, (str, bytes, int, float, bool, type(None), torch.nn.Module)):
            continue
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                todo.append((cell.cell_contents, depth + 1))
            except ValueError:  # an empty cell
                continue
        if type(obj).__name__ == "SavedTensor":  # a frame's saved input, read unhooked
            if getattr(obj, "unpack_hook", None) is None:
                try:
                    todo.append((obj.data, depth + 1))
                except Exception:
                    pass
            continue
        if hasattr(obj, "_raw_saved_tensors"):  # the node that saves a frame's inputs
            for t, hook in _saved(obj):
                if t is not None:
                    todo.append((t, depth + 1))
            continue
        for attr in ("saved_args", "recompute_fn", "input_saver", "__self__", "__func__"):
            v = getattr(obj, attr, None) if not isinstance(obj, type) else None
            if v is not None:
                todo.append((v, depth + 1))


def _tensors(result, depth: int = 0):
    """The tensors of a forward's output: a tensor, or one level of a tuple, list, dict
    or dataclass-like output (``ModelOutput``)."""
    if isinstance(result, torch.Tensor):
        yield result
        return
    if depth > 1:
        return
    values = result.values() if isinstance(result, dict) else result \
        if isinstance(result, (list, tuple)) else ()
    for v in values:
        yield from _tensors(v, depth + 1)


_SEQ_FIRST: dict = {}


def _sequence_first(module) -> bool:
    """Whether the model's recurrent or attention layers take (sequence, batch, ...)
    inputs: one with ``batch_first=False`` and none with True. Decided once per model."""
    key = id(module)
    if key not in _SEQ_FIRST:
        flags = set()
        try:
            for m in module.modules():
                v = getattr(m, "batch_first", None)
                if isinstance(v, bool):
                    flags.add(v)
        except Exception:
            pass
        _SEQ_FIRST[key] = flags == {False}
    return _SEQ_FIRST[key]


def _leading_dim(args, kwargs, dim: int = 0) -> Optional[int]:
    for v in list(args) + list((kwargs or {}).values()):
        t = v if isinstance(v, torch.Tensor) else next(
            (x for x in (v.values() if isinstance(v, dict) else v
                         if isinstance(v, (list, tuple)) else ())
             if isinstance(x, torch.Tensor)), None)
        if isinstance(t, torch.Tensor) and t.dim() > dim:
            return int(t.shape[dim])
    return None


def _cuda_allocated() -> Optional[int]:
    try:
        if torch.cuda.is_initialized():
            return int(torch.cuda.memory_allocated())
    except Exception:
        return None
    return None
