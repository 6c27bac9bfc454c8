"""``nnprof sweep --storage``: several sweep processes share one study in PostgreSQL or
in a Redis journal. Two sweeps started at the same time on a new study must run its
``--trials`` between them, each trial once, each trial's value its own run's; neither
may leave a trial process behind.

The servers come from the environment (``.ci/run`` starts them):
NNPROF_TEST_POSTGRES (``postgresql://user:password@host:port/db``; the role needs
CREATE on the database: each test works in a schema of its own, new, so that the
sweeps also create Optuna's tables, as on a new database) and NNPROF_TEST_REDIS
(``redis://host:port/db``). Without them, or when the server cannot be reached, the
tests skip and say why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, processes_naming, read_summary, run_cli

slow = pytest.mark.slow
SCRIPT = SCRIPTS / "sweep_train.py"
TRIALS = 5
SWEEP_TIMEOUT_S = 600


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"[:200]


@pytest.fixture
def postgresql():
    """A URL to a new, empty schema of the test database (dropped afterwards)."""
    from nnprof.sweep.study import redact
    url = os.environ.get("NNPROF_TEST_POSTGRES")
    if not url:
        pytest.skip("NNPROF_TEST_POSTGRES is not set (a postgresql:// URL of a test "
                    "database; .ci/run starts a server)")
    try:
        import psycopg2
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install 'nnprof[sweep-db]')")
    try:
        conn = psycopg2.connect(url, connect_timeout=5)
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {redact(url)} cannot be reached: {_one_line(exc)}")
    schema = f"nnprof_{uuid.uuid4().hex[:12]}"
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:
        conn.close()
        pytest.skip(f"cannot create a schema in {redact(url)}: {_one_line(exc)}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            conn.close()


@pytest.fixture
def redis():
    url = os.environ.get("NNPROF_TEST_REDIS")
    if not url:
        pytest.skip("NNPROF_TEST_REDIS is not set (a redis:// URL; .ci/run starts a server)")
    try:
        import redis as redis_py
    except ImportError:
        pytest.skip("the redis package is not installed (pip install 'nnprof[sweep-db]')")
    try:
        client = redis_py.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        pytest.skip(f"Redis at {url} cannot be reached: {_one_line(exc)}")
    return url


def start_sweep(out: Path, url: str, study: str, parallel: int) -> subprocess.Popen:
    out.mkdir()
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONWARNINGS", None)
    cmd = [sys.executable, "-m", "nnprof", "sweep", "--no-live", "--out", str(out),
           "--storage", url, "--study", study, "--trials", str(TRIALS),
           "--parallel", str(parallel), "-p", "lr=loguniform:1e-3:1",
           str(SCRIPT), "--epochs", "2"]
    # output to files: a pipe nobody reads while the other sweep is waited on could fill
    with open(out.parent / f"{out.name}.stdout", "w") as so, \
            open(out.parent / f"{out.name}.stderr", "w") as se:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=so, stderr=se)


def wait_all(procs: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
            p.wait()
        raise AssertionError(f"the sweeps did not end in {timeout:.0f} s")


def load_trials(url: str, study: str, tmp: Path) -> list:
    import optuna
    from nnprof.sweep.study import open_storage
    storage, _ = open_storage(url, str(tmp))
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=True)
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:  # no connection left open on the schema to drop
            engine.dispose()


@slow
@pytest.mark.parametrize("kind", ["postgresql", "redis"])
def test_two_sweeps_share_one_study(kind, request, tmp_path):
    url = request.getfixturevalue(kind)
    study = f"shared-{uuid.uuid4().hex[:12]}"
    outs = [tmp_path / "a", tmp_path / "b"]
    t0 = time.monotonic()
    procs = [start_sweep(out, url, study, parallel) for out, parallel in zip(outs, (1, 2))]
    wait_all(procs, SWEEP_TIMEOUT_S)
    took = time.monotonic() - t0
    errs = [(out.parent / f"{out.name}.stderr").read_text() for out in outs]
    for p, err in zip(procs, errs):
        assert p.returncode == 0, (p.returncode, err[-3000:])
        assert "Traceback" not in err, err
    # nothing outlives the sweeps: no sweep, no nnprof profile, no script process
    deadline = time.monotonic() + 10
    while processes_naming(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_naming(tmp_path) == []

    # the study: exactly --trials trials that count, numbered 0..N-1; any other a
    # trial a sweep asked for after the last one was taken (surplus), failed, never run
    trials = load_trials(url, study, tmp_path)
    real = [t for t in trials if not t.user_attrs.get("surplus")]
    surplus = [t for t in trials if t.user_attrs.get("surplus")]
    assert sorted(t.number for t in real) == list(range(TRIALS)), \
        [(t.number, t.state.name, t.user_attrs) for t in trials]
    for t in surplus:
        assert t.state.name == "FAIL" and t.number >= TRIALS and "run_dir" not in t.user_attrs
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in real), \
        [(t.number, t.state.name, t.user_attrs.get("error")) for t in real]

    # each trial run exactly once: the trial-<n> directories of the two sweeps are
    # disjoint and together the N trials; each trial's attributes name its directory
    dirs = [{d.name for d in out.iterdir() if d.is_dir() and d.name.startswith("trial-")}
            for out in outs]
    assert not dirs[0] & dirs[1], dirs
    assert dirs[0] | dirs[1] == {f"trial-{n}" for n in range(TRIALS)}, dirs
    where = {}
    for t in real:
        a = t.user_attrs
        assert a["run_dir"] == f"trial-{t.number}", a
        assert a["host"] == _host()
        homes = [out for out in outs if os.path.abspath(out) == a["sweep_dir"]]
        assert len(homes) == 1, (a["sweep_dir"], outs)
        where[t.number] = homes[0] / a["run_dir"]
        assert (homes[0] / a["run_dir"]).is_dir()
    assert {p.name for p in where.values() if p.parent == outs[0]} == dirs[0]
    assert {p.name for p in where.values() if p.parent == outs[1]} == dirs[1]

    # every value is what the trial's own run measured: a complete trial's, its last
    # validation pass; a pruned trial's reports, its passes up to where it stopped
    complete = [t for t in real if t.state.name == "COMPLETE"]
    assert complete, "no trial completed"
    for t in real:
        summary = read_summary(where[t.number])
        curve = [v for _, v in summary["curves"]["val_loss"]]
        reported = [v for _, v in sorted(t.intermediate_values.items())]
        assert reported == pytest.approx(curve[:len(reported)], rel=1e-9)
        if t.state.name == "COMPLETE":
            assert summary["status"] == "completed"
            assert t.value == pytest.approx(curve[-1], rel=1e-9), (t.number, t.value, curve)
            assert reported == pytest.approx(curve, rel=1e-9)
        else:
            assert summary["status"] == "pruned"
            assert summary["pruned"]["at"] == t.user_attrs["pruned_at"]

    # each sweep's record lists the study's N trials (the other sweep's by host:path);
    # the one that ended last saw every one of them finished
    recs = [json.loads((out / "sweep.json").read_text()) for out in outs]
    by_number = {t.number: t for t in real}
    for out, rec in zip(outs, recs):
        assert rec["study"] == study and rec["status"] == "completed", rec["status"]
        assert sorted(e["number"] for e in rec["trials"]) == list(range(TRIALS))
        for e in rec["trials"]:
            home = where[e["number"]]
            if home.parent == out:
                assert e["run_dir"] == home.name
            else:
                assert e["run_dir"] == f"{_host()}:{os.path.abspath(home)}"
            if e["state"] == "complete":
                assert e["value"] == pytest.approx(by_number[e["number"]].value, rel=1e-12)
    assert any(all(e["state"] in ("complete", "pruned") for e in rec["trials"])
               for rec in recs), [[e["state"] for e in rec["trials"]] for rec in recs]
    print(f"{kind}: {len(complete)} complete, {TRIALS - len(complete)} pruned, "
          f"{len(surplus)} surplus, runs {[len(d) for d in dirs]}, {took:.1f} s")


def _host() -> str:
    from nnprof.sweep.study import host_id
    return host_id()


@pytest.mark.parametrize("url", ["postgresql://nobody:s3cret@127.0.0.1:1/none",
                                 "redis://127.0.0.1:1/0"])
def test_an_unreachable_storage_is_one_line(url, tmp_path):
    r = run_cli(["sweep", "--no-live", "--out", tmp_path / "sw", "--storage", url,
                 "--trials", 2, "-p", "lr=loguniform:1e-3:1", SCRIPT, "--epochs", 1],
                timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnprof: error: "), r.stderr
    assert "cannot reach the storage" in lines[0], lines[0]
    assert "s3cret" not in r.stderr
    assert not (tmp_path / "sw" / "trial-0").exists()


def test_a_postgresql_url_names_an_installed_driver():
    """SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which the sweep-db extra
    does not install (it installs psycopg2)."""
    from importlib.util import find_spec

    from nnprof.sweep.study import _rdb_url
    if find_spec("psycopg2") is None and find_spec("psycopg") is None:
        pytest.skip("no PostgreSQL driver is installed")
    driver = "psycopg2" if find_spec("psycopg2") else "psycopg"
    assert _rdb_url("postgresql://u:p@h:5/db?x=1") == f"postgresql+{driver}://u:p@h:5/db?x=1"
    assert _rdb_url("postgres://u@h/db") == f"postgresql+{driver}://u@h/db"
    for url in ("postgresql+psycopg://u@h/db", "sqlite:///x.db", "mysql+pymysql://u@h/db"):
        assert _rdb_url(url) == url
