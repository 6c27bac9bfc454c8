"""The Optuna side of a sweep: where the study lives, the pruner a ``--prune``
spec names (with the rule it follows, in words), the sampler (TPE after a spread
start: the first trials a Latin hypercube over the space), and the trials a sweep
that is gone left ``running``.

Only the sweep process talks to the storage; trials never do, so a stopped trial
can never leave it locked.
"""
from __future__ import annotations

import math
import os
import random
import re
import socket
import zlib
from dataclasses import dataclass
from typing import Optional

JOURNAL = "study.log"
PRUNE_KINDS = "median|percentile:P|asha|hyperband|patience:N|none"


class StudyError(Exception):
    """A storage that cannot be opened or used (one line for the user)."""


def redact(url: str) -> str:
    """A storage URL fit to print: the password hidden."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def open_storage(url: Optional[str], sweep_dir: str):
    """The study's storage: the journal file in the sweep directory by default, an
    RDB URL (``postgresql://``, ``mysql://``, ``sqlite:///``) or a Redis journal
    (``redis://``). Returns (storage, description)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not url:
        path = os.path.join(sweep_dir, JOURNAL)
        try:
            backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
            return JournalStorage(backend), f"journal file {JOURNAL} in the sweep directory"
        except Exception as exc:
            raise StudyError(f"cannot open the study journal {path}: {_why(exc)}") from None
    shown = redact(url)
    try:
        if url.startswith(("redis://", "rediss://", "unix://")):
            import warnings
            from optuna.storages.journal import JournalRedisBackend
            with warnings.catch_warnings():  # "experimental": nothing the user can act on
                warnings.simplefilter("ignore")
                backend = JournalRedisBackend(url)
            backend._redis.ping()  # fail now, in one line, rather than at the first trial
            return JournalStorage(backend), shown
        if "://" not in url:
            raise StudyError(f"--storage {shown!r}: not a database URL (postgresql://..., "
                             "sqlite:///..., redis://...)")
        return _open_rdb(_rdb_url(url)), shown
    except StudyError:
        raise
    except Exception as exc:
        raise StudyError(f"cannot reach the storage {shown}: {_why(exc)}") from None


def _open_rdb(url: str, tries: int = 5):
    """An RDBStorage, its tables created when the database has none. Sweeps started
    together on a new database race to create them (PostgreSQL: a duplicate key in
    pg_type, a relation that already exists, the schema version stamped twice); the
    loser tries again and finds them made."""
    import random
    import time
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import IntegrityError, ProgrammingError
    for attempt in range(1, tries + 1):
        try:
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except (IntegrityError, ProgrammingError):
            if attempt == tries:
                raise
            time.sleep(0.2 + random.random() * 0.5)


def _rdb_url(url: str) -> str:
    """The URL with its PostgreSQL driver named: SQLAlchemy 2.1 reads a bare
    ``postgresql://`` as psycopg 3, 2.0 as psycopg2; use whichever is installed
    (psycopg2 first: the sweep-db extra's)."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    from importlib.util import find_spec
    for module in ("psycopg2", "psycopg"):
        if find_spec(module) is not None:
            return f"postgresql+{module}://{rest}"
    raise StudyError("--storage postgresql://...: no PostgreSQL driver is installed "
                     "(pip install 'nnprof[sweep-db]', or psycopg2 or psycopg)")


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    # SQLAlchemy wraps the driver's message: "(psycopg2.OperationalError) connection ..."
    first = re.sub(r"^\([\w.]+\)\s*", "", first)
    return f"{exc.__class__.__name__}: {first}"[:300]


@dataclass(frozen=True)
class PruneSpec:
    kind: str  # median | percentile | asha | hyperband | patience | none
    arg: Optional[float] = None


def parse_prune(text: str) -> PruneSpec:
    kind, _, arg = text.partition(":")
    if kind in ("median", "asha", "hyperband", "none") and not arg:
        return PruneSpec(kind)
    if kind == "percentile":
        try:
            p = float(arg)
        except ValueError:
            p = -1.0
        if not 0 < p < 100:
            raise ValueError(f"percentile:P needs 0 < P < 100, got {text!r}")
        return PruneSpec(kind, p)
    if kind == "patience":
        try:
            n = int(arg)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"patience:N needs a positive integer N, got {text!r}")
        return PruneSpec(kind, n)
    raise ValueError(f"unknown pruner {text!r} (choose from {PRUNE_KINDS})")


def make_pruner(spec: PruneSpec, min_trials: int, every: float, unit: str):
    """(pruner, rule in words). No pruner acts before ``min_trials`` trials have
    reported at the point in question, so that the first trials are not pruned by
    chance; ``every`` is the report interval (the first rung of asha/hyperband)."""
    from optuna import pruners
    at = f"the same {unit}"
    step = max(1, int(round(every)))
    if spec.kind == "median":
        return (pruners.MedianPruner(n_startup_trials=min_trials, n_min_trials=min_trials),
                f"median: stop a trial whose best value so far is worse than the median of "
                f"the other trials at {at}, once {min_trials} trials have finished and "
                f"{min_trials} have reported at that {unit}")
    if spec.kind == "percentile":
        p = spec.arg
        return (pruners.PercentilePruner(p, n_startup_trials=min_trials,
                                         n_min_trials=min_trials),
                f"percentile {p:g}: stop a trial whose best value so far is outside the "
                f"best {p:g}% of the trials at {at}, once {min_trials} trials have finished "
                f"and {min_trials} have reported at that {unit}")
    if spec.kind == "asha":
        return (pruners.SuccessiveHalvingPruner(min_resource=step, reduction_factor=3,
                                                bootstrap_count=min_trials),
                f"asha: successive halving with rungs at {step}, {3 * step}, {9 * step}, ... "
                f"{unit}s; at each rung only the best third go on, once {min_trials} trials "
                "have reached it")
    if spec.kind == "hyperband":
        return (pruners.HyperbandPruner(min_resource=step, reduction_factor=3,
                                        bootstrap_count=min_trials),
                f"hyperband: brackets of successive halving from {step} {unit}s up to the "
                f"length of the first finished trial, best third go on, once {min_trials} "
                "trials have reached a rung")
    if spec.kind == "patience":
        n = int(spec.arg)
        import warnings
        with warnings.catch_warnings():  # "experimental": nothing the user can act on
            warnings.simplefilter("ignore")
            patient = pruners.PatientPruner(None, patience=n)
        return (patient,
                f"patience {n}: stop a trial whose value has not improved in {n} reports "
                "in a row (on its own, whatever the other trials do)")
    return pruners.NopPruner(), "none: every trial runs to its end"


START_TRIALS = 10  # the spread start (TPE's own random start has as many)
START_SEED_ATTR = "nnprof_start_seed"


def make_sampler(seed: Optional[int], start_seed: Optional[int] = None,
                 start: int = START_TRIALS):
    """TPE whose first ``start`` trials (by trial number) are a Latin hypercube over the
    space (:func:`spread_value`) instead of independent random draws."""
    from optuna.samplers import TPESampler

    class SpreadStartTPE(TPESampler):
        def sample_independent(self, study, trial, param_name, param_distribution):
            if start_seed is not None and trial.number < start:
                return spread_value(start_seed, param_name, param_distribution,
                                    trial.number, start)
            return super().sample_independent(study, trial, param_name, param_distribution)

    return SpreadStartTPE(seed=seed, n_startup_trials=start)


def start_seed(study, seed: Optional[int]) -> int:
    """The spread start's seed, kept in the study so that a resumed sweep, or another
    machine sharing the study, continues the same hypercube."""
    kept = study.user_attrs.get(START_SEED_ATTR)
    if isinstance(kept, int):
        return kept
    chosen = seed if seed is not None else random.SystemRandom().randrange(2 ** 31)
    study.set_user_attr(START_SEED_ATTR, chosen)
    return chosen


def spread_value(seed: int, name: str, dist, k: int, n: int):
    """Trial ``k``'s value of parameter ``name`` in an ``n``-point Latin hypercube: the
    range (on a log scale for log distributions) cut into ``n`` equal strata, each used by
    exactly one of the first ``n`` trials, at a seeded random point inside it; the
    strata's order is a seeded permutation per parameter, so the parameters are not
    paired stratum by stratum."""
    import numpy as np
    from optuna.distributions import CategoricalDistribution, IntDistribution
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(name.encode())])
    order = rng.permutation(n)
    jitter = rng.random(n)
    u = (order[k] + jitter[k]) / n
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[min(len(dist.choices) - 1, int(u * len(dist.choices)))]
    lo, hi = float(dist.low), float(dist.high)
    if isinstance(dist, IntDistribution):
        step = int(dist.step or 1)
        if dist.log:
            v = math.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo)))
        else:
            v = lo + u * (hi - lo + step)
        v = int(lo + (int(v) - int(lo)) // step * step)
        return max(int(lo), min(int(hi), v))
    if dist.log:
        v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        v = lo + u * (hi - lo)
    step = getattr(dist, "step", None)
    if step:
        v = lo + round((v - lo) / step) * step
    return max(lo, min(hi, v))


def host_id() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_running(study, only_local: bool) -> list:
    """Trials left ``running`` by a sweep process that is gone. With the embedded
    journal (``only_local`` False) no other sweep can be using the study, so every
    running trial is stale; with a shared storage only this machine's trials whose
    sweep process is dead are."""
    from optuna.trial import TrialState
    out = []
    me = host_id()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = t.user_attrs
        if only_local:
            if attrs.get("host") != me:
                continue
            pid = attrs.get("sweep_pid")
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
                continue
        out.append(t)
    return out
