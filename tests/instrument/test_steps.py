"""The step state machine with a fake clock: boundaries and phase arithmetic."""
import pytest

from nnprof.instrument.cuda import EventPool, GpuTimeline, PendingSteps
from nnprof.instrument.steps import (BACKWARD, DATA, FORWARD, LOSS, OPTIMIZER, OTHER, PHASES,
                                     PREP, StepClock, StopRun)


class FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t

    def adv(self, ms):
        self.t += int(ms * 1e6)


def make():
    fc = FakeClock()
    out = []
    clock = StepClock(out.append, clock=fc, thread_id=0)
    return clock, fc, out


def ms(rec, phase):
    return rec.phases[PHASES.index(phase)] / 1e6


def loader_step(clock, fc, data=5, prep=1, fwd=10, loss=2, bwd=20, opt=3, other=4, lid="L0"):
    clock.loader_next(lid)
    fc.adv(data)
    clock.loader_got()
    fc.adv(prep)
    clock.forward_enter(True)
    fc.adv(fwd)
    clock.forward_exit()
    clock.push(LOSS)
    fc.adv(loss)
    clock.pop()
    clock.backward_enter()
    fc.adv(bwd)
    clock.pop()
    clock.push(OPTIMIZER)
    fc.adv(opt)
    clock.optimizer_step_exit(1)
    fc.adv(other)


def test_loader_step_phases_sum_to_wall():
    clock, fc, out = make()
    loader_step(clock, fc)
    loader_step(clock, fc)
    clock.finish()
    assert len(out) == 2
    rec = out[0]
    assert rec.kind == "train"
    assert [ms(rec, p) for p in PHASES] == [5, 1, 10, 2, 20, 3, 4]
    assert sum(rec.phases) == rec.wall == 45 * 10**6


def test_step_ends_when_the_loop_asks_again_and_exhaustion_voids_the_last_call():
    clock, fc, out = make()
    loader_step(clock, fc)
    clock.loader_next("L0")
    fc.adv(7)  # the failing call: not part of any step
    clock.loader_exhausted()
    fc.adv(100)  # end-of-epoch work outside steps
    clock.finish()
    assert len(out) == 1
    assert out[0].wall == 45 * 10**6


def test_eval_steps_have_no_backward():
    clock, fc, out = make()
    for _ in range(3):
        clock.loader_next("V")
        fc.adv(2)
        clock.loader_got()
        clock.forward_enter(False)
        fc.adv(5)
        clock.forward_exit()
    clock.finish()
    assert [r.kind for r in out] == ["eval"] * 3
    assert all(ms(r, "forward") == 5 for r in out)


def test_zip_of_two_loaders_is_one_step():
    clock, fc, out = make()
    for _ in range(2):
        clock.loader_next("A")
        fc.adv(2)
        clock.loader_got()
        clock.loader_next("B")
        fc.adv(3)
        clock.loader_got()
        clock.forward_enter(True)
        fc.adv(1)
        clock.forward_exit()
        clock.backward_enter()
        fc.adv(1)
        clock.pop()
    clock.finish()
    assert len(out) == 2
    assert ms(out[0], "data") == 5


def test_free_steps_end_at_optimizer_step():
    clock, fc, out = make()
    for _ in range(3):
        fc.adv(1)  # slicing the batch before the forward pass: prep
        clock.forward_enter(True)
        fc.adv(10)
        clock.forward_exit()
        clock.backward_enter()
        fc.adv(10)
        clock.pop()
        clock.push(OPTIMIZER)
        fc.adv(2)
        clock.optimizer_step_exit(1)
    clock.finish()
    assert len(out) == 3
    assert all(r.kind == "train" and r.n_optimizer == 1 for r in out)
    assert ms(out[1], "prep") == 1 and ms(out[1], "optimizer") == 2


def test_two_optimizers_in_turn_make_one_step():
    clock, fc, out = make()
    for _ in range(3):
        for opt in (1, 2):  # D then G
            clock.forward_enter(True)
            fc.adv(4)
            clock.forward_exit()
            clock.backward_enter()
            fc.adv(4)
            clock.pop()
            clock.push(OPTIMIZER)
            fc.adv(1)
            clock.optimizer_step_exit(opt)
    clock.finish()
    assert len(out) == 3
    assert all(r.n_optimizer == 2 and r.n_backward == 2 for r in out)
    assert all(r.wall == 18 * 10**6 for r in out)
    assert clock.train_steps == 3


def _train_step(clock, fc):
    clock.forward_enter(True)
    fc.adv(5)
    clock.forward_exit()
    clock.backward_enter()
    fc.adv(5)
    clock.pop()
    clock.push(OPTIMIZER)
    clock.optimizer_step_exit(1)


def _eval_forward(clock, fc, key=0, loss=False):
    clock.forward_enter(False, key)
    fc.adv(3)
    clock.forward_exit()
    if loss:
        clock.loss_enter()
        fc.adv(1)
        clock.pop()


def test_gradient_free_forwards_with_a_loss_form_eval_steps_without_loader():
    clock, fc, out = make()
    _train_step(clock, fc)
    for _ in range(3):  # validation: three no-grad batches, each with its loss
        _eval_forward(clock, fc, loss=True)
    clock.finish()
    assert [r.kind for r in out] == ["train", "eval", "eval", "eval"]
    assert [r.n_loss for r in out[1:]] == [1, 1, 1]


def test_a_sample_without_loss_after_training_is_no_step():
    """``model.decode(torch.randn(64, 20))`` under no_grad after an epoch: two
    submodules called in a row, no loss, no loader: not an eval step."""
    clock, fc, out = make()
    _train_step(clock, fc)
    _eval_forward(clock, fc, key=1)
    _eval_forward(clock, fc, key=2)
    _train_step(clock, fc)
    _eval_forward(clock, fc, key=1)   # the same sample after the last epoch
    _eval_forward(clock, fc, key=2)
    clock.finish()
    assert [r.kind for r in out] == ["train", "train"]
    # the next epoch's first step: a frozen-encoder-like pass joins the train step
    assert out[1].n_forward == 3 and out[1].n_backward == 1


def test_a_target_computed_without_gradients_joins_the_train_step():
    """DQN without a target network: ``net(s2)`` under no_grad, then ``net(s)``."""
    clock, fc, out = make()
    for _ in range(3):
        _eval_forward(clock, fc, key=1)
        _train_step(clock, fc)
    clock.finish()
    assert [r.kind for r in out] == ["train"] * 3
    assert [r.n_forward for r in out] == [2, 2, 2]


def test_a_validation_pass_without_loss_is_no_step_once_trained():
    """Accuracy from argmax alone, 3 batches, between two epochs: no eval step."""
    clock, fc, out = make()
    _train_step(clock, fc)
    for _ in range(3):
        _eval_forward(clock, fc, key=1)
    _train_step(clock, fc)
    clock.finish()
    assert [r.kind for r in out] == ["train", "train"]
    assert out[1].n_forward <= 2  # at most the pass's last forward joins the next step


def test_gradient_free_calls_before_training_are_eval_steps_one_per_call_of_a_model():
    clock, fc, out = make()
    for _ in range(3):               # inference: the same model, batch after batch
        _eval_forward(clock, fc, key=1)
    _eval_forward(clock, fc, key=2)  # another module after it joins its step
    clock.finish()
    assert [r.kind for r in out] == ["eval"] * 3
    assert [r.n_forward for r in out] == [1, 1, 2]


def test_lbfgs_closure_phases_inside_optimizer():
    clock, fc, out = make()
    clock.push(OPTIMIZER)
    fc.adv(1)
    for _ in range(2):  # the closure, called twice by the optimizer
        clock.forward_enter(True)
        fc.adv(10)
        clock.forward_exit()
        clock.push(LOSS)
        fc.adv(2)
        clock.pop()
        clock.backward_enter()
        fc.adv(8)
        clock.pop()
    fc.adv(1)
    clock.optimizer_step_exit(1)
    clock.finish()
    (rec,) = out
    assert ms(rec, "forward") == 20 and ms(rec, "loss") == 4 and ms(rec, "backward") == 16
    assert ms(rec, "optimizer") == 2


def test_custom_loss_moves_forward_time_to_loss():
    clock, fc, out = make()
    clock.loader_next("L0")
    clock.loader_got()
    clock.forward_enter(True)
    fc.adv(10)
    clock.forward_exit()
    clock.forward_enter(True)  # decided only after its output: a loss
    fc.adv(3)
    clock.forward_exit(as_loss=True)
    clock.finish()
    (rec,) = out
    assert ms(rec, "forward") == 10 and ms(rec, "loss") == 3 and rec.n_forward == 1


def test_main_process_loader_time_is_a_slice_of_data():
    clock, fc, out = make()
    clock.loader_next("L0")
    fc.adv(9)
    clock.add_loader_time(0, 5 * 10**6)
    clock.add_loader_time(1, 3 * 10**6)
    clock.loader_got()
    clock.finish()
    (rec,) = out
    assert rec.loader_phases == [5 * 10**6, 3 * 10**6, 0]
    assert ms(rec, "data") == 9


def test_max_steps_stops_before_the_next_batch_is_fetched():
    clock, fc, out = make()
    clock.max_train_steps = 2
    loader_step(clock, fc)
    loader_step(clock, fc)
    with pytest.raises(StopRun):
        clock.loader_next("L0")
    clock.finish()
    assert len(out) == 2 and clock.train_steps == 2


def test_max_time_in_free_mode_stops_at_the_next_step():
    clock, fc, out = make()
    clock.deadline = int(15e6)
    clock.forward_enter(True)
    fc.adv(10)
    clock.forward_exit()
    clock.backward_enter()
    fc.adv(10)
    clock.pop()  # past the deadline, but mid-step: no stop here
    clock.push(OPTIMIZER)
    clock.optimizer_step_exit(1)
    with pytest.raises(StopRun):
        clock.forward_enter(True)
    clock.finish()
    assert len(out) == 1


class FakeEvent:
    def __init__(self, fc, gpu_lag):
        self.fc, self.lag, self.t = fc, gpu_lag, None

    def query(self):
        return self.fc.t >= self.t

    def elapsed_time(self, other):
        return (other.t - self.t) / 1e6


def test_gpu_timeline_charges_device_time_to_phases_without_blocking():
    """The device runs behind the host: events complete later, and a step is
    written only once its last event has completed."""
    fc = FakeClock()
    lag = {"ns": 0}

    def record(ev):
        # the GPU reaches this point of the stream 'lag' after the host
        ev.t = fc.t + lag["ns"]

    pool = EventPool(lambda: FakeEvent(fc, 0), record)
    written = []
    pending = PendingSteps(written.append)
    clock = StepClock(pending.add, clock=fc, gpu_factory=lambda: GpuTimeline(pool), thread_id=0)
    clock.loader_next("L0")
    fc.adv(1)
    clock.loader_got()
    clock.forward_enter(True)
    lag["ns"] = int(30e6)  # kernels queued: the device finishes 30 ms later
    fc.adv(2)
    clock.forward_exit()
    clock.loader_next("L0")  # closes the first step; its events are not done yet
    assert written == []
    fc.adv(40)
    lag["ns"] = 0
    clock.loader_got()
    clock.finish()
    pending.poll()
    assert len(written) == 2
    gpu = written[0].gpu_phases
    assert gpu[FORWARD] == pytest.approx(0.032)  # 2 ms of host enqueue + 30 ms of device work
    assert gpu[DATA] == pytest.approx(0.001)
    assert written[0].phases[FORWARD] == 2 * 10**6
    assert gpu[PREP] == 0 and gpu[OTHER] == 0
