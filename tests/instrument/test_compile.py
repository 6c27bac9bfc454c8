"""torch.compile under nnprof's hooks: the same graph breaks, graphs and compilations as
without them (Dynamo's own counters, and a counting backend), no extra warning, and
the steps still measured: the outermost call of a compiled module is the forward, a
loss computed outside the compiled region is the loss phase, backward and optimizer
steps called from the eager remainder of a compiled train step are seen.

Dynamo is imported before the hooks are installed (as a framework that imports it
does): it then traces the patched ``Module.__call__`` of every submodule.
"""
import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

dynamo = pytest.importorskip("torch._dynamo")
from torch._dynamo.testing import CompileCounter  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

import nnprof  # noqa: E402

STEPS = 4


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x, y=None):
        out = self.body(x)
        return out if y is None else self.criterion(out, y)


def module_loss_outside(model, opt, backend, x, y):
    compiled = torch.compile(model, backend=backend)
    for _ in range(STEPS):
        opt.zero_grad()
        F.cross_entropy(compiled(x), y).backward()
        opt.step()
        with torch.no_grad():
            # an eval call: grad mode is guarded, as without nnprof
            F.cross_entropy(compiled(x), y)


def method_loss_inside(model, opt, backend, x, y):
    model.compile(backend=backend)
    for _ in range(STEPS):
        opt.zero_grad()
        model(x, y).backward()
        opt.step()


def compiled_function(model, opt, backend, x, y):
    @torch.compile(backend=backend)
    def loss_of(x, y):
        return F.cross_entropy(model(x), y)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(x, y).backward()
        opt.step()


def compiled_train_step(model, opt, backend, x, y):
    @torch.compile(backend=backend)
    def step(x, y):  # Dynamo breaks the graph at backward(), with or without nnprof
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    # the optimizer step is inside the graph: a DataLoader marks the steps
    loader = DataLoader(TensorDataset(x.repeat(STEPS, 1), y.repeat(STEPS)), batch_size=len(x))
    for xb, yb in loader:
        step(xb, yb)


WORKLOADS = {"module": module_loss_outside, "method": method_loss_inside,
             "function": compiled_function, "train_step": compiled_train_step}


def run(workload, profile_dir=None):
    """Dynamo's counts for ``workload`` from a cold cache, under nnprof when
    ``profile_dir``; (counts, warnings shown, run steps or None)."""
    dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
    backend = CompileCounter()
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        if profile_dir is None:
            workload(model, opt, backend, x, y)
            steps = None
        else:
            with nnprof.profile(out=str(profile_dir), monitors=[]):
                workload(model, opt, backend, x, y)
            steps = nnprof.load_run(str(profile_dir)).steps
    counts = {"graph_breaks": sum(counters["graph_break"].values()),
              "unique_graphs": counters["stats"]["unique_graphs"],
              "compilations": backend.frame_count, "ops": backend.op_count,
              "weights": [p.detach().clone() for p in model.parameters()]}
    dynamo.reset()
    return counts, {str(w.message) for w in shown}, steps


@pytest.fixture(scope="module", autouse=True)
def fresh_dynamo():
    yield
    dynamo.reset()


def test_compiled_modules_make_no_submodule_calls():
    from nnprof.instrument.model import eager_submodules
    model = Net()
    assert eager_submodules(model) == 5  # body, its three layers, criterion
    assert eager_submodules(torch.compile(model, backend="eager")) == 0
    model.compile(backend="eager")
    assert eager_submodules(model) == 0


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_no_graph_break_or_recompile_of_ours(tmp_path, name):
    bare, bare_warnings, _ = run(WORKLOADS[name])
    got, got_warnings, steps = run(WORKLOADS[name], tmp_path / "run")
    for key in ("graph_breaks", "unique_graphs", "compilations", "ops"):
        assert got[key] == bare[key], (key, got, bare)
    for a, b in zip(got["weights"], bare["weights"]):
        assert torch.equal(a, b)
    assert got_warnings <= bare_warnings, got_warnings - bare_warnings

    train = steps[steps["kind"] == "train"]
    assert len(train) == STEPS
    assert (train["n_backward"] == 1).all()
    assert train["loss"].notna().all()
    if name in ("module", "method"):
        # the outermost call of the compiled module is the forward phase
        assert (train["n_forward"] == 1).all()
        assert train["forward_s"].gt(0).all()
    if name == "module":
        assert train["loss_s"].gt(0).all()  # computed outside the compiled region
        assert len(steps[steps["kind"] == "eval"]) == STEPS
    if name in ("module", "method"):
        # the submodules run inside the graph: the overhead estimate counts no call of
        # them; torch.compile's wrapper calls the model it wraps through Module.__call__,
        # one call of the hook a forward (counted in the first forwards)
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["overhead"]["calls_per_step"]["submodule"] == \
            (1 if name == "module" else 0)
        assert [m["class"] for m in summary["models"]] == ["Net"]  # not torch's wrapper
    if name == "train_step":
        # backward() and opt.step() run eagerly after Dynamo's own graph break
        assert train["backward_s"].gt(0).all()


def test_non_strict_export_runs_no_step_of_its_own(tmp_path):
    """Non-strict ``torch.export`` runs the module's Python for real (with
    ``torch.compiler``'s flag set, which Dynamo's own check does not read): its traced
    forward is no step, and the real step after it is measured as usual."""
    export = getattr(torch, "export", None)
    if export is None or not hasattr(export, "export"):
        pytest.skip("this torch has no torch.export")
    import nnprof
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    x = torch.randn(2, 4)
    with nnprof.profile(out=str(tmp_path / "run"), monitors=[], progress=False) as p:
        try:
            export.export(model, (x,), strict=False)
        except TypeError:  # a torch whose export has no strict flag
            pytest.skip("this torch.export has no non-strict mode")
        model(x).sum().backward()
    steps = p.run.steps
    assert list(steps["kind"]) == ["train"]
    assert int(steps["n_forward"].iloc[0]) == 1
