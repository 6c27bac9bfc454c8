"""Step boundaries of the loops people write, with a fake clock: updates by hand,
wrappers that fetch ahead or several batches per request, and the end of a loop."""
from nnprof.instrument.steps import LOSS, OPTIMIZER, PHASES, StepClock

from test_steps import FakeClock, ms


def make():
    fc = FakeClock()
    out = []
    return StepClock(out.append, clock=fc, thread_id=0), fc, out


def work(clock, fc, fwd=10, bwd=20, opt=None, grad=True, after=0, loss=False):
    clock.forward_enter(grad)
    fc.adv(fwd)
    clock.forward_exit()
    if loss:
        clock.loss_enter()
        clock.pop()
    if bwd is not None:
        clock.backward_enter()
        fc.adv(bwd)
        clock.pop()
    if opt is not None:
        clock.push(OPTIMIZER)
        fc.adv(opt)
        clock.optimizer_step_exit(1)
    fc.adv(after)


def fetch(clock, fc, data=5, wrapped=True, first=False, lid="L0"):
    joined = clock.loader_next(lid, wrapped, first)
    fc.adv(data)
    clock.loader_got()
    return joined


def test_updates_by_hand_are_one_step_per_iteration_charged_to_optimizer():
    clock, fc, out = make()
    for _ in range(4):
        fc.adv(2)                          # slicing the next batch by hand
        work(clock, fc, after=7)           # p.data.add_(p.grad, alpha=-lr): 7 ms
    for _ in range(3):                     # evaluation under no_grad
        work(clock, fc, bwd=None, grad=False, after=1, loss=True)
    work(clock, fc)                        # training again
    clock.finish()
    kinds = [r.kind for r in out]
    assert kinds == ["train"] * 4 + ["eval"] * 3 + ["train"]
    # the update, and the slicing of the next batch by hand before the next forward
    assert [ms(rec, "optimizer") for rec in out[:4]] == [9, 9, 9, 7]
    for rec in out:
        assert ms(rec, "forward") == 10 and sum(rec.phases) == rec.wall
    assert [ms(rec, "backward") for rec in out] == [20] * 4 + [0] * 3 + [20]
    assert clock.train_steps == 5


def test_accumulation_without_a_loader_stays_one_step_per_optimizer_step():
    clock, fc, out = make()
    for _ in range(3):
        work(clock, fc)
        work(clock, fc)
        work(clock, fc, opt=3)
    clock.finish()
    assert [r.kind for r in out] == ["train"] * 3
    assert [r.n_backward for r in out] == [3, 3, 3]
    assert ms(out[0], "optimizer") == 3
    assert clock.train_steps == 3


def test_a_wrapper_that_fetches_one_batch_ahead():
    """accelerate's DataLoaderShard: next(0) and next(1) for the first batch, next(k+1)
    for batch k, StopIteration for the last one, which the loop still gets."""
    clock, fc, out = make()
    clock.loader_iter()
    assert not fetch(clock, fc, first=True)
    assert fetch(clock, fc)                  # the batch held ahead: same step
    work(clock, fc, opt=3, after=1)
    for _ in range(2):
        fetch(clock, fc)
        work(clock, fc, opt=3, after=1)
    clock.loader_next("L0", True)            # the loop asks for the last batch ...
    fc.adv(1)
    clock.loader_exhausted(ahead=True)       # ... the loader has none left: the wrapper has
    work(clock, fc, opt=3, after=1)
    fc.adv(500)                              # the epoch's end: not a step's time
    clock.loader_iter()
    clock.finish()
    assert [r.kind for r in out] == ["train"] * 4
    assert ms(out[0], "data") == 10 and out[0].n_batches == 2
    assert [ms(r, "data") for r in out[1:]] == [5, 5, 1]
    # the last batch's step ends with its optimizer step: the epoch's end is no step's
    assert ms(out[-1], "other") == 0 and out[-1].wall == 34 * 10**6
    assert all(sum(r.phases) == r.wall for r in out)


def test_a_wrapper_that_fetches_an_accumulation_window_per_request():
    """HF Trainer with gradient_accumulation_steps=2 over DataLoaderShard: the first
    window asks for 3 batches (one held ahead), the next ones for 2, the last one
    ends with StopIteration; each micro-batch is a train step."""
    clock, fc, out = make()
    clock.loader_iter()
    fetch(clock, fc, first=True)
    fetch(clock, fc)
    fetch(clock, fc)
    work(clock, fc)
    work(clock, fc, opt=3)
    fetch(clock, fc)
    clock.loader_next("L0", True)
    clock.loader_exhausted(ahead=True)
    work(clock, fc)
    work(clock, fc, opt=3)
    clock.loader_iter()
    clock.finish()
    assert [r.kind for r in out] == ["train"] * 4
    assert [r.n_backward for r in out] == [1, 1, 1, 1]
    assert [r.n_optimizer for r in out] == [0, 1, 0, 1]
    assert ms(out[0], "data") == 15 and ms(out[1], "data") == 0


def test_a_wrapper_without_lookahead_ends_the_pass_at_stop_iteration():
    clock, fc, out = make()
    clock.loader_iter()
    fetch(clock, fc, first=True)
    work(clock, fc, opt=3)
    clock.loader_next("L0", True)
    clock.loader_exhausted(ahead=False)
    work(clock, fc, bwd=None, grad=False, loss=True)  # an evaluation without a loader
    clock.finish()
    assert [r.kind for r in out] == ["train", "eval"]
    assert out[1].loader is None


def test_a_break_leaves_what_follows_the_loop_to_no_step():
    clock, fc, out = make()
    clock.loader_iter()
    fetch(clock, fc, wrapped=False, first=True)
    work(clock, fc, opt=3, after=2)
    fetch(clock, fc, wrapped=False)
    work(clock, fc, opt=3)
    fc.adv(1600)                             # break: workers shut down
    clock.loader_iter()                      # the next epoch
    fetch(clock, fc, wrapped=False, first=True)
    work(clock, fc, opt=3)
    clock.finish()
    assert len(out) == 3
    assert out[1].wall == 38 * 10**6
    assert out[0].wall == 40 * 10**6        # its own tail (logging) stays with it


def test_zip_over_two_loaders_is_still_one_step():
    clock, fc, out = make()
    fetch(clock, fc, wrapped=False, first=True, lid="A")
    assert fetch(clock, fc, wrapped=False, first=True, lid="B")
    clock.push(LOSS)
    clock.pop()
    work(clock, fc, opt=3)
    clock.finish()
    assert len(out) == 1 and ms(out[0], "data") == 10
    assert [PHASES[i] for i, v in enumerate(out[0].phases) if v] == [
        "data", "forward", "backward", "optimizer"]


def test_a_wait_for_a_worker_still_starting_is_no_step():
    """The loop asks for batch 1 (worker 1's first) at ``asked``; the wait until it
    arrives is the pass's start-up: step 0 ends where the loop asked, step 1 begins
    when the batch has arrived."""
    clock, fc, out = make()
    clock.loader_iter()
    fetch(clock, fc, wrapped=False, first=True)
    work(clock, fc, opt=3, after=2)          # step 0: 5 + 10 + 20 + 3 + 2 ms
    asked = fc()
    fc.adv(300)                              # worker 1 still starting
    assert clock.loader_next("L0", False, False, asked=asked) is False
    clock.loader_got()
    work(clock, fc, opt=3)
    clock.finish()
    assert len(out) == 2
    assert out[0].wall == 40 * 10**6
    assert out[1].wall == 33 * 10**6 and out[1].phases[PHASES.index("data")] == 0
    assert out[1].start - out[0].end == 300 * 10**6
    assert not out[1].pass_start


# -- a loader that does not drive the loop, and cycles of optimizers -------------------
def update(clock, fc, opt_id, fwd=10, bwd=20, opt=3, after=0):
    clock.forward_enter(True)
    fc.adv(fwd)
    clock.forward_exit()
    clock.backward_enter()
    fc.adv(bwd)
    clock.pop()
    clock.push(OPTIMIZER)
    fc.adv(opt)
    clock.optimizer_step_exit(opt_id)
    fc.adv(after)


def test_one_batch_then_many_updates_is_one_step_per_update():
    clock, fc, out = make()
    clock.loader_iter()
    fetch(clock, fc, wrapped=False, first=True)   # next(iter(loader))
    for _ in range(5):
        update(clock, fc, 1, after=2)
    clock.finish()
    assert [r.kind for r in out] == ["train"] * 5
    assert ms(out[0], "data") == 5 and all(ms(r, "data") == 0 for r in out[1:])
    assert [r.loader for r in out] == ["L0"] + [None] * 4
    # the time after an update, before the next forward, is the next step's prep
    assert [ms(r, "prep") for r in out[1:]] == [2] * 4
    assert clock.train_steps == 5


def test_several_updates_per_batch_cover_the_loop_from_request_to_request():
    clock, fc, out = make()
    clock.loader_iter()
    for b in range(2):
        fetch(clock, fc, wrapped=False, first=b == 0)
        for _ in range(3):
            update(clock, fc, 1, after=4)          # logging after each update
    clock.loader_next("L0", False)                 # the loop asks again: exhausted
    clock.loader_exhausted()
    clock.finish()
    assert len(out) == 6
    for a, b in zip(out, out[1:]):
        assert a.end == b.start
    # its logging up to the request is its other; the previous one's logging its prep
    assert ms(out[2], "other") == 4 and ms(out[2], "prep") == 4
    assert out[-1].end == fc.t


def test_a_gan_on_each_batch_stays_one_step():
    clock, fc, out = make()
    clock.partners = lambda a, b: True             # D and G: disjoint parameters
    clock.loader_iter()
    for b in range(3):
        fetch(clock, fc, wrapped=False, first=b == 0)
        update(clock, fc, 1)                       # D
        update(clock, fc, 2, after=1)              # G, then logging
    clock.finish()
    assert [(r.n_optimizer, r.n_backward) for r in out] == [(2, 2)] * 3
    assert [r.loader for r in out] == ["L0"] * 3
    assert out[0].end == out[1].start and ms(out[0], "other") == 1
    assert clock.train_steps == 3


def test_a_new_optimizer_per_layer_starts_a_new_step():
    """Layer 1 with optimizer 1 (3 updates), then layer 2 with optimizer 2: the last
    update of layer 1 and the first of layer 2 are two steps, not a D/G pair."""
    clock, fc, out = make()
    clock.partners = lambda a, b: True
    for opt_id in (1, 1, 1, 2, 2, 2):
        update(clock, fc, opt_id)
    clock.finish()
    assert [r.optimizers for r in out] == [(1,)] * 3 + [(2,)] * 3
    assert clock.train_steps == 6


def test_a_critic_stepping_k_times_per_generator_step():
    clock, fc, out = make()
    clock.partners = lambda a, b: True
    for _ in range(2):
        for _ in range(3):
            update(clock, fc, 1)                   # the critic
        update(clock, fc, 2)                       # the generator
    clock.finish()
    assert [r.optimizers for r in out] == [(1,), (1,), (1, 2)] * 2
    assert clock.train_steps == 6
