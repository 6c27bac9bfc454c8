"""Replay (overfit rungs without a DataLoader): what is kept, what is fed again, and
each reason it refuses, on the hooks directly."""
import torch
from torch import nn

from nnprof.instrument.replay import Replay


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x, mask=None):
        return self.fc(x)


def batch(b, seed, width=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, width, generator=g), torch.randint(0, 2, (b,), generator=g)


def step(replay, model, x, y, loss_inside=False):
    """One train step as the hooks see it: the forward's inputs, its output, then a
    loss call outside the model (unless the model computed its own)."""
    args, kwargs = replay.inputs(model, (x,), {})
    out = model(*args, **kwargs)
    replay.output(out)
    if loss_inside:
        return args, None
    largs, _ = replay.loss_call((out, y), {}, inside=False)
    return args, largs


def test_first_rows_of_the_first_batch_are_fed_again():
    stops = []
    r = Replay(3, stop=lambda: stops.append(1))
    model = Net()
    x0, y0 = batch(8, 0)
    args, largs = step(r, model, x0, y0)
    assert torch.equal(args[0], x0[:3]) and torch.equal(largs[1], y0[:3])
    for seed in (1, 2):
        x, y = batch(8, seed)
        args, largs = step(r, model, x, y)
        assert torch.equal(args[0], x0[:3]), "a later batch was not replaced"
        assert torch.equal(largs[1], y0[:3])
    res = r.result()
    assert res["ok"] and not stops
    assert (res["batch_size"], res["batches"], res["rows"], res["replayed"]) == (8, 1, 3, 2)
    assert res["loss"] == "loss function" and res["target_kept"]


def test_more_examples_than_a_batch_keep_several_batches_in_turn():
    r = Replay(10)
    model = Net()
    firsts = [batch(4, s) for s in range(3)]
    kept = []
    for x, y in firsts:
        args, largs = step(r, model, x, y)
        kept.append((args[0], largs[1]))
    assert [a.shape[0] for a, _ in kept] == [4, 4, 2]  # 10 rows in all
    for i in range(6):
        x, y = batch(4, 100 + i)
        args, largs = step(r, model, x, y)
        want_x, want_y = kept[(3 + i) % 3]
        assert torch.equal(args[0], want_x) and torch.equal(largs[1], want_y)
    assert r.result()["batches"] == 3 and r.result()["batches_needed"] == 3


def test_a_flattened_target_is_cut_by_whole_rows():
    """nanoGPT-style: the target reaches the loss as (B * T,); T elements per row."""
    r = Replay(2)
    model = nn.Linear(5, 7)
    x, y = torch.randn(4, 6, 5), torch.randint(0, 7, (4, 6))
    args, _ = r.inputs(model, (x,), {})
    out = model(*args)
    largs, _ = r.loss_call((out.view(-1, 7), y.view(-1)), {}, inside=False)
    assert args[0].shape == (2, 6, 5) and torch.equal(largs[1], y[:2].reshape(-1))


def test_a_model_that_computes_its_own_loss_needs_no_target():
    r = Replay(1)
    model = Net()
    for seed in range(3):
        x, y = batch(4, seed)
        args, kwargs = r.inputs(model, (x,), {"mask": y})
        assert kwargs["mask"].shape[0] == 1  # keyword tensors are cut too
        r.loss_call((model(*args), kwargs["mask"]), {}, inside=True)
    res = r.result()
    assert res["ok"] and res["loss"] == "model" and not res["target_kept"]


def test_eval_and_other_models_keep_their_own_data():
    r = Replay(1)
    model, other = Net(), Net()
    x0, y0 = batch(4, 0)
    step(r, model, x0, y0)
    x, _ = batch(4, 1)
    assert r.inputs(other, (x,), {})[0][0] is x
    model.eval()
    assert r.inputs(model, (x,), {})[0][0] is x


def refused(examples, calls):
    stops = []
    r = Replay(examples, stop=lambda: stops.append(1))
    model = Net()
    for args, kwargs in calls:
        r.inputs(model, args, kwargs)
    assert stops == [1] and not r.result()["ok"]
    return r.result()["reason"]


def test_refusals_name_their_reason():
    x = torch.randn(4, 3)
    assert "list holding tensors" in refused(1, [(([x],), {})])
    assert "no tensor" in refused(1, [((3,), {})])
    assert "0-d tensor" in refused(1, [((torch.tensor(1.0),), {})])
    reason = refused(1, [((x,), {"mask": torch.ones(3, 3)})])
    assert "disagree on their first dimension" in reason and "'mask': 3" in reason
    reason = refused(1, [((x,), {}), ((torch.randn(4, 5),), {})])
    assert "changes shape" in reason and "(B, 3) then (B, 5)" in reason
    assert "changes structure" in refused(1, [((x,), {}), ((x, x), {})])


def test_a_smaller_last_batch_is_no_change_of_shape():
    r = Replay(1)
    model = Net()
    for b in (4, 4, 3):
        r.inputs(model, (torch.randn(b, 3),), {})
    assert r.reason is None


def test_a_loss_by_hand_cannot_be_replayed():
    """No loss function saw the output, and the model returned no loss: the target
    the script compares with is invisible."""
    stops = []
    r = Replay(1, stop=lambda: stops.append(1))
    model = Net()
    for seed in range(2):
        x, _ = batch(4, seed)
        args, _ = r.inputs(model, (x,), {})
        r.output(model(*args))
    assert stops == [1] and "computed by hand" in r.result()["reason"]


def test_a_target_that_is_no_multiple_of_the_batch():
    r = Replay(1, stop=lambda: None)
    model = Net()
    x, _ = batch(4, 0)
    args, _ = r.inputs(model, (x,), {})
    r.loss_call((model(*args), torch.zeros(6)), {}, inside=False)
    assert "no multiple" in r.result()["reason"]
