"""Activation bytes read from the autograd graph against the arithmetic of known models:
linear layers, a conv net, checkpointed blocks (reentrant and not), a compiled model."""
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nnprof.instrument.activations import ActivationMeter, _leading_dim

F32 = 4


def measured(models, forward, x):
    meter = ActivationMeter(list(models))
    meter.forward_start(0, (x,), {})
    out = forward(x)
    loss = out.float().pow(2).mean()
    meter.backward_start(0, loss)
    loss.backward()
    r = meter.result()
    assert r["samples"][0]["step"] == 0 and "error" not in r["samples"][0]
    return r


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 10))


def test_linear_layers_save_their_inputs_once_per_storage():
    model, b = mlp(), 64
    r = measured([model], model, torch.randn(b, 256))
    # each Linear saves its input; each ReLU its output, which is the next Linear's input
    # (one storage); the loss's pow saves the logits; parameters are not counted
    arith = b * (256 + 1024 + 1024 + 10) * F32
    assert r["saved_bytes"] == pytest.approx(arith, rel=0.10)
    assert r["largest_bytes"] == b * 1024 * F32
    assert r["batch_size"] == b


def test_conv_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(32, 10))
    b, hw = 16, 32 * 32
    r = measured([model], model, torch.randn(b, 3, 32, 32))
    # conv1's input, batch norm's input, ReLU 1's output (conv2's input), ReLU 2's output
    # (the pool's input), the Linear's input, the logits
    arith = b * (3 * hw + 16 * hw + 16 * hw + 32 * hw + 32 + 10) * F32
    assert r["saved_bytes"] == pytest.approx(arith, rel=0.10)


class Blocks(nn.Module):
    def __init__(self, reentrant=None):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(128, 128)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(128, 512), nn.ReLU(),
                                                  nn.Linear(512, 128)) for _ in range(4))
        self.reentrant = reentrant

    def forward(self, x):
        x = self.inp(x)
        for blk in self.blocks:
            x = blk(x) if self.reentrant is None else checkpoint(
                blk, x, use_reentrant=self.reentrant)
        return x


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointed_blocks_keep_only_their_inputs(reentrant):
    b = 64
    model = Blocks()
    plain = measured([model], model, torch.randn(b, 128))
    # without checkpointing: inp's input, and per block its input, the ReLU's output
    arith_plain = b * (128 + 4 * (128 + 512) + 128) * F32
    assert plain["saved_bytes"] == pytest.approx(arith_plain, rel=0.10)
    model = Blocks(reentrant)
    r = measured([model], model, torch.randn(b, 128))
    # checkpointed: inp's input, the four blocks' inputs (kept for the recompute), the
    # output the loss saves; the blocks' insides are recomputed
    arith = b * (128 + 4 * 128 + 128) * F32
    assert r["saved_bytes"] == pytest.approx(arith, rel=0.10)
    if not reentrant:
        assert r["recomputed_saved"] > 0 and r["checkpoint_inputs_bytes"] > 0


def test_a_compiled_model_is_read_from_its_compiled_graph():
    try:
        import torch._dynamo  # noqa: F401
        model = mlp()
        compiled = torch.compile(model)
        r = measured([model], compiled, torch.randn(32, 256))
    except Exception as exc:  # no compiler on this machine
        pytest.skip(f"torch.compile unavailable: {type(exc).__name__}: {exc}")
    assert r["saved_bytes"] == pytest.approx(32 * (256 + 1024 + 1024 + 10) * F32, rel=0.10)


def test_only_the_sampled_steps_are_walked_and_a_step_once():
    model = mlp()
    meter = ActivationMeter([model])
    for step in range(5):
        for _ in range(2):  # two backwards in a step: the first is measured
            loss = model(torch.randn(8, 256)).sum()
            meter.backward_start(step, loss)
            loss.backward()
    assert [s["step"] for s in meter.samples] == [0, 1, 2] and meter.done


def _walked_steps(forward_s: float) -> list:
    """Five train steps whose forward takes about ``forward_s`` (a sleep)."""
    import time
    model = mlp()
    meter = ActivationMeter([model])
    for step in range(5):
        if meter.done:
            break
        x = torch.randn(8, 256)
        meter.forward_start(step, (x,), {})
        loss = model(x).sum()
        time.sleep(forward_s)
        meter.backward_start(step, loss)
        loss.backward()
    assert all(s["walk_ms"] >= 0 for s in meter.samples)
    return [s["step"] for s in meter.samples]


def test_a_walk_dearer_than_its_share_of_the_step_is_not_repeated():
    # the walk's time falls in its step: past the first (warm-up) step, only where it is
    # under WALK_SHARE of the time from the step's first forward to its backward
    assert _walked_steps(0.0) == [0]      # a walk of a few nodes: far over 1% of no time
    assert _walked_steps(0.3) == [0, 1, 2]  # the same walk under 1% of 0.3 s


def test_leading_dimension_of_the_first_tensor_input():
    assert _leading_dim((torch.zeros(7, 3),), {}) == 7
    assert _leading_dim(([torch.zeros(5, 2)],), {}) == 5
    assert _leading_dim((), {"input_ids": torch.zeros(9, 4, dtype=torch.long)}) == 9
    assert _leading_dim((3,), {}) is None


def test_batch_of_a_sequence_first_model_is_dimension_1():
    lstm = nn.LSTM(8, 16)  # batch_first=False: (sequence, batch, features)
    meter = ActivationMeter([lstm])
    meter.forward_start(0, (torch.zeros(35, 20, 8),), {}, lstm)
    assert meter.batch == 20 and "sequence-first" in meter.batch_from
    first = nn.LSTM(8, 16, batch_first=True)
    meter = ActivationMeter([first])
    meter.forward_start(0, (torch.zeros(20, 35, 8),), {}, first)
    assert meter.batch == 20 and meter.batch_from.startswith("leading")
