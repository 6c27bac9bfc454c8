"""The sweep loop: ask the study for a trial, run it as an ``nnprof profile`` child
run, report what it measures as it goes, stop it when the pruner says so, tell the
study how it ended. ``--parallel`` trials at once; ``--trials`` in the study in all,
whichever sweep process (on whichever machine) runs them.
"""
from __future__ import annotations

import datetime
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Optional

from . import study as st
from .record import build_record
from .forkserver import ForkServer
from .space import Space
from .tail import TrialTail, due_reports
from .trials import (TrialProcess, mark_pruned, mark_run, profile_command, slot_env,
                     tail_lines, threads_per_trial, trial_summary)

POLL_S = 0.5


class SweepStopped(Exception):
    """The sweep cannot go on (the message is one line for the user)."""


class Interrupted(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Settings:
    trials: int
    parallel: int
    metric: str
    direction: str
    prune: st.PruneSpec
    prune_text: str
    resource: str
    every: float
    min_trials: int
    study: str
    storage: Optional[str] = None
    seed: Optional[int] = None
    budget: Optional[float] = None
    max_steps: Optional[int] = None
    max_time: Optional[float] = None
    max_failures: int = 3
    grace_s: float = 10.0
    cores: int = 1
    gpus: list = field(default_factory=list)
    fresh_trials: bool = False


@dataclass
class Running:
    trial: object  # optuna.trial.Trial
    slot: int
    proc: TrialProcess
    tail: TrialTail
    run_dir: str
    last_step: int = 0
    reported: list = field(default_factory=list)


class Sweep:
    def __init__(self, settings: Settings, target, space: Space, out: str, display,
                 script: str) -> None:
        self.s = settings
        self.target = target
        self.space = space
        self.out = out
        self.display = display
        self.script = script
        self.running: dict = {}  # slot -> Running
        self.notices: list = []
        self.fails_in_row = 0
        self.started = time.monotonic()
        self.started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds")
        self.metric_used = settings.metric
        self.study = None
        self.storage_text = ""
        self.stop_reason: Optional[str] = None
        self.server: Optional[ForkServer] = None
        self.forked = self.fresh = 0

    # -- the study ------------------------------------------------------------------
    def open(self) -> None:
        import optuna
        storage, self.storage_text = st.open_storage(self.s.storage, self.out)
        pruner, self.rule = st.make_pruner(self.s.prune, self.s.min_trials, self.s.every,
                                           self.unit)
        try:
            self.study = optuna.create_study(
                storage=storage, sampler=st.make_sampler(self.s.seed), pruner=pruner,
                study_name=self.s.study, direction=self.s.direction, load_if_exists=True)
        except Exception as exc:
            raise st.StudyError(f"cannot open study {self.s.study!r} in "
                                f"{self.storage_text}: {st._why(exc)}") from None
        n_before = len(self.study.get_trials(deepcopy=False))
        seed = self.s.seed
        if seed is not None and n_before:
            # resumed: a sampler seeded as before would ask for the same values again
            seed += n_before
        try:  # the spread start's seed is the study's: resumed or shared, one hypercube
            start = st.start_seed(self.study, self.s.seed)
        except Exception as exc:
            raise st.StudyError(f"cannot write to study {self.s.study!r} in "
                                f"{self.storage_text}: {st._why(exc)}") from None
        self.study.sampler = st.make_sampler(seed, start)
        if self.study.direction.name.lower() != self.s.direction:
            raise st.StudyError(f"study {self.s.study!r} "
                                f"{self.study.direction.name.lower()}s its value; this sweep "
                                f"would {self.s.direction} it (give the same --metric/"
                                "--direction, or a new --study)")
        space = {p.name: p.spec for p in self.space.params}
        attrs = self.study.user_attrs
        if "space" in attrs and attrs["space"] != space:
            old = " ".join(f"-p {k}={v}" for k, v in attrs["space"].items())
            raise st.StudyError(f"study {self.s.study!r} searches {old}; give the same "
                                "parameters, or a new --study")
        if "metric" in attrs and attrs["metric"] != self.s.metric:
            raise st.StudyError(f"study {self.s.study!r} compares trials on "
                                f"{attrs['metric']}; give --metric {attrs['metric']} or a new "
                                "--study")
        if "space" not in attrs:
            self.study.set_user_attr("space", space)
            self.study.set_user_attr("metric", self.s.metric)
        self.metric_used = attrs.get("metric_used", self.s.metric)
        for t in st.stale_running(self.study, only_local=bool(self.s.storage)):
            attrs = {"error": "left running by a sweep process that is gone"}
            # in a shared study the trial may be another sweep directory's on this host
            run_dir = os.path.join(t.user_attrs.get("sweep_dir") or self.out,
                                   str(t.user_attrs.get("run_dir") or "?"))
            summary = trial_summary(run_dir) if os.path.isdir(run_dir) else None
            if summary:  # what the trial wrote before it stopped
                attrs.update(exit_code=summary.get("exit_code"),
                             step_time_s=(summary.get("step_time") or {}).get("p50_s"),
                             bottleneck=(summary.get("bottleneck") or {}).get("verdict"),
                             duration_s=summary.get("wall_s"))
            for k, v in attrs.items():
                self.study._storage.set_trial_user_attr(t._trial_id, k, v)
            self.study.tell(t.number, state=_state("FAIL"), skip_if_finished=True)
            self.notices.append(f"trial {t.number} was left running by a sweep process that "
                                "is gone: marked failed")

    @property
    def unit(self) -> str:
        if self.s.resource == "passes" and self.metric_used != "train_loss":
            return "pass"
        return "second" if self.s.resource == "seconds" else "step"

    @property
    def every(self) -> float:
        if self.s.resource == "passes" and self.metric_used == "train_loss":
            from .tail import DEFAULT_EVERY
            return DEFAULT_EVERY["steps"]
        return self.s.every

    def _real_trials(self) -> list:
        return [t for t in self.study.get_trials(deepcopy=False)
                if not t.user_attrs.get("surplus")]

    def asked_enough(self) -> bool:
        return len(self._real_trials()) >= self.s.trials

    # -- one trial --------------------------------------------------------------------
    def start(self, slot: int) -> bool:
        trial = self.study.ask(fixed_distributions=self.space.distributions())
        before = [t for t in self._real_trials() if t.number < trial.number]
        if len(before) >= self.s.trials:  # another sweep process took the last one
            trial.set_user_attr("surplus", True)
            self.study.tell(trial, state=_state("FAIL"))
            return False
        raw = trial.params
        args = self.space.args(raw)
        run_dir = self._new_dir(trial.number)
        # sweep_pid before host: a sweep starting on this host takes a trial of this host
        # without a sweep_pid for one left by a sweep that is gone (st.stale_running)
        for k, v in {"sweep_pid": os.getpid(), "host": st.host_id(),
                     "values": self.space.values(raw), "args": args,
                     "run_dir": os.path.basename(run_dir),
                     "sweep_dir": os.path.abspath(self.out)}.items():
            trial.set_user_attr(k, v)
        cmd = profile_command(self.target, run_dir, args, self.s.budget, self.s.max_steps,
                              self.s.max_time)
        env = slot_env(slot, self.s.parallel, self.s.cores, self.s.gpus)
        proc = TrialProcess(cmd, run_dir, env, self.server)
        self.forked, self.fresh = self.forked + proc.forked, self.fresh + (not proc.forked)
        if not proc.forked and self.server is not None and self.server.problem:
            self.notices.append(f"trials start as new processes from trial {trial.number}: "
                                f"{self.server.problem}")
            self.server.close()
            self.server = None
        self.running[slot] = Running(trial, slot, proc, TrialTail(run_dir), run_dir)
        self.display.event(f"trial {trial.number} started: {' '.join(args[-2 * 8:])}")
        return True

    def _new_dir(self, number: int) -> str:
        base = os.path.join(self.out, f"trial-{number}")
        path, k = base, 1
        while True:
            try:
                os.mkdir(path)
                return path
            except FileExistsError:
                k += 1
                path = f"{base}-{k}"

    def _report(self, r: Running, final: bool = False) -> None:
        r.tail.poll(finished=final)
        pts = r.tail.points(self.metric_used, self.s.resource)
        pos = r.tail.position(self.metric_used, self.s.resource)
        for step, value in due_reports(pts, pos, self.every, r.last_step):
            r.trial.report(value, step)
            r.last_step = step
            r.reported.append([step, value])

    def check(self, r: Running) -> None:
        rc = r.proc.poll()
        if rc is not None:
            self.finish(r)
            return
        if os.path.exists(os.path.join(r.run_dir, "probe.json")):
            return  # its script has ended (nnprof writes its reports): wait for the exit
        self._report(r)
        if r.reported and r.trial.should_prune():
            if r.proc.poll() is not None:  # it ended meanwhile: judge it on all it measured
                self.finish(r)
                return
            self.prune(r)

    def _common_attrs(self, r: Running, summary: Optional[dict]) -> None:
        s = summary or {}
        step = (s.get("step_time") or {}).get("p50_s")
        verdict = (s.get("bottleneck") or {}).get("verdict")
        for k, v in {"exit_code": r.proc.exit_code, "duration_s": round(r.proc.duration_s, 3),
                     "step_time_s": step if step is not None else r.tail.step_time_s(),
                     "bottleneck": verdict, "active_s": round(r.tail.active_s, 3),
                     "position": r.tail.position(self.metric_used, self.s.resource)}.items():
            r.trial.set_user_attr(k, v)

    def prune(self, r: Running) -> None:
        r.proc.stop(self.s.grace_s)
        step, value = r.reported[-1]
        summary = mark_pruned(r.run_dir, step, self.unit, value)
        self._common_attrs(r, summary)
        r.trial.set_user_attr("pruned_at", step)
        self.study.tell(r.trial, state=_state("PRUNED"))
        self.fails_in_row = 0
        del self.running[r.slot]
        self.display.event(f"trial {r.trial.number} pruned at {self.unit} {step} "
                           f"({self.metric_used} {value:.4g})")

    def finish(self, r: Running) -> None:
        self._report(r, final=True)
        summary = trial_summary(r.run_dir)
        self._common_attrs(r, summary)
        del self.running[r.slot]
        n = r.trial.number
        if r.proc.exit_code != 0:
            tail = tail_lines(r.run_dir)
            err = next((ln.strip() for ln in reversed(tail) if ln.strip()),
                       f"exit code {r.proc.exit_code}")
            return self._fail(r, err, tail)
        if not r.reported and self.metric_used.startswith("val_"):
            if r.tail.has_validation:
                if self.metric_used != "val_loss":
                    self._fail(r, "no classification loss in its evaluation passes", [])
                    raise SweepStopped(
                        f"{self.metric_used} is not measured: the script's evaluation passes "
                        "compute no classification loss (cross-entropy, NLL, BCE); use "
                        "--metric val_loss")
            elif r.tail.train_points and self.metric_used == "val_loss" and \
                    not self._someone_used_val():
                self.metric_used = "train_loss"
                self.study.set_user_attr("metric_used", "train_loss")
                self.notices.append("the script runs no evaluation pass: trials are compared "
                                    f"on the train loss (mean of the last {20} train losses)")
                self.display.event(self.notices[-1])
                for other in list(self.running.values()):
                    other.last_step = 0
                self._report(r, final=True)
        pts = r.tail.points(self.metric_used, self.s.resource)
        if not pts:
            return self._fail(r, f"no {self.metric_used} was measured", [])
        value = pts[-1][1]  # where the trial ended, which need not fall on a tick
        if value != value or value in (float("inf"), float("-inf")):
            return self._fail(r, f"{self.metric_used} is {value} (the run diverged)", [])
        self.study.tell(r.trial, value)
        self.fails_in_row = 0
        self.display.event(f"trial {n} complete: {self.metric_used} {value:.4g} in "
                           f"{r.proc.duration_s:.1f} s")

    def _someone_used_val(self) -> bool:
        from optuna.trial import TrialState
        return any(t.intermediate_values for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def _fail(self, r: Running, error: str, tail: list) -> None:
        r.trial.set_user_attr("error", error[:500])
        r.trial.set_user_attr("tail", [ln[:300] for ln in tail])
        self.study.tell(r.trial, state=_state("FAIL"))
        self.display.event(f"trial {r.trial.number} failed (exit {r.proc.exit_code}): {error}")
        self.fails_in_row += 1
        if self.fails_in_row >= self.s.max_failures and not self._any_success():
            raise SweepStopped(self.space.rejection(error, self.fails_in_row,
                                                    os.path.basename(r.run_dir)))

    def _any_success(self) -> bool:
        from optuna.trial import TrialState
        return bool(self.study.get_trials(deepcopy=False,
                                          states=(TrialState.COMPLETE, TrialState.PRUNED)))

    # -- the loop ---------------------------------------------------------------------
    def start_server(self) -> None:
        """The warm process trials are forked from (:mod:`.forkserver`), if it can be."""
        if self.s.fresh_trials:
            return
        why = ForkServer.usable()
        if why is not None:
            self.notices.append(f"trials start as new processes: {why}")
            return
        env = slot_env(0, self.s.parallel, self.s.cores, [])
        try:
            self.server = ForkServer(env, os.getcwd(), os.path.join(self.out, "forkserver.log"))
        except OSError as exc:  # its log cannot be written
            self.notices.append(f"trials start as new processes: {exc.strerror or exc}")

    def run(self) -> int:
        self.open()
        status, code = "completed", None
        old = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            raise Interrupted(143)
        signal.signal(signal.SIGTERM, on_term)
        try:
            self.start_server()
            self._write("running")
            while True:
                for slot in range(self.s.parallel):
                    if slot not in self.running and self.stop_reason is None and \
                            not self.asked_enough():
                        self.start(slot)
                if not self.running:
                    if self.asked_enough() or self.stop_reason:
                        break
                    continue
                if self.server is not None:  # woken early by a forked trial's end
                    self.server.wait_any(POLL_S)
                else:
                    time.sleep(POLL_S)
                changed = len(self.running)
                for r in list(self.running.values()):
                    self.check(r)
                self.display.update(self)
                if len(self.running) != changed:
                    self._write("running")
        except SweepStopped as exc:
            self.stop_reason = str(exc)
            status = "stopped"
        except (KeyboardInterrupt, Interrupted) as exc:
            status, code = "interrupted", getattr(exc, "code", 130)
        except Exception as exc:  # the storage went away, a disk filled up
            self.stop_reason = f"the sweep failed: {st._why(exc)}"
            status, code = "crashed", 1
        finally:
            self.stop_all(status if status != "completed" else "crashed")
            if self.server is not None:
                self.server.close()
            signal.signal(signal.SIGTERM, old)
        if code is None:
            code = 0 if self._any_complete() else 3
        self._write(status, code)
        return code

    def _any_complete(self) -> bool:
        from optuna.trial import TrialState
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def stop_all(self, why: str) -> None:
        """Every trial still running is stopped (SIGTERM to all, then SIGKILL after the
        grace period) and marked failed."""
        if not self.running:
            return
        import signal as sg
        for r in self.running.values():
            r.proc._kill_group(sg.SIGTERM)
        deadline = time.monotonic() + self.s.grace_s
        for r in list(self.running.values()):
            try:
                while r.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
            except (KeyboardInterrupt, Interrupted):
                deadline = 0
            r.proc.stop(0)
        for r in list(self.running.values()):
            try:
                self._report(r, final=True)
                summary = mark_run(r.run_dir, None, {}, f"stopped: the sweep was {why}",
                                   r.proc.exit_code)
                self._common_attrs(r, summary)
                r.trial.set_user_attr("error", f"stopped: the sweep was {why}")
                self.study.tell(r.trial, state=_state("FAIL"))
            except Exception:
                pass
        self.running.clear()

    def record(self, status: str, code: Optional[int] = None) -> dict:
        live = {r.trial.number: {"step_time_s": r.tail.step_time_s()}
                for r in self.running.values()}
        settings = {
            "trials": self.s.trials, "parallel": self.s.parallel, "metric": self.s.metric,
            "metric_used": self.metric_used, "direction": self.s.direction,
            "prune": self.s.prune_text, "prune_rule": self.rule, "resource": self.s.resource,
            "unit": self.unit, "report_every": self.every,
            "params": {p.name: p.to_dict() for p in self.space.params},
            "placeholders": self.space.placeholders, "budget_s": self.s.budget,
            "max_steps": self.s.max_steps, "max_time_s": self.s.max_time,
            "threads_per_trial": threads_per_trial(self.s.parallel, self.s.cores),
            "gpus": self.s.gpus, "seed": self.s.seed,
            "trial_start": {"forked": self.forked, "fresh": self.fresh}}
        return build_record(self.study, self.out, settings, status=status, script=self.script,
                            argv=self.space.script_args, storage=self.storage_text,
                            started_at=self.started_at,
                            wall_s=time.monotonic() - self.started, exit_code=code,
                            reason=self.stop_reason, live=live, notices=self.notices)

    def _write(self, status: str, code: Optional[int] = None) -> None:
        from .output import write_outputs
        try:
            self.last_record = self.record(status, code)
        except Exception as exc:  # the storage went away: keep what was written
            self.notices.append(f"the study could not be read: {st._why(exc)}")
            return
        write_outputs(self.out, self.last_record, self.notices)


def _state(name: str):
    from optuna.trial import TrialState
    return TrialState[name]
