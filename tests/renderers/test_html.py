"""The HTML report: escaping, offline-ness, long runs, partial runs (no browser here;
see test_browser.py for the page in Chromium)."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from nnprof.renderers import chartdata
from nnprof.renderers import html as H
from nnprof.renderers import render, write_run_reports

from rundirs import EVIL, synthetic_run


def _data_of(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="nnprof-data">(.*?)</script>', page, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def test_everything_from_the_script_is_escaped(tmp_path):
    run, s = synthetic_run(tmp_path / "r", script=EVIL)
    s = dict(s, argv=[EVIL], notices=[EVIL], models=[{"name": EVIL, "class": EVIL,
                                                      "parameters": 1, "trainable": 1}])
    s["bottleneck"] = dict(s["bottleneck"], advice=[EVIL])
    s["wiring"] = {"name": "wiring", "verdict": "fail", "severity": "fail",
                   "evidence": {"not_in_optimizer": [EVIL]}, "advice": [EVIL]}
    s["loader"] = [{"id": "L0", "site": EVIL, "dataset": EVIL, "num_workers": 0,
                    "steps": {"train": 1, "eval": 0},
                    "transform_by_name": [{"name": EVIL, "total_s": 1.0,
                                           "share_of_loading": 0.5}]}]
    page = render("html", s, run)
    assert "<img" not in page and "alert(1)>" not in page.replace("alert(1)&gt;", "")
    # exactly our own script elements: the data block, Chart.js and the page script
    assert len(re.findall(r"<script\b", page)) == 3
    assert len(re.findall(r"</script", page, re.I)) == 3
    assert "&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)" in page
    data = _data_of(page)  # the data block still parses as JSON
    assert data["kind"] == "run"


def test_page_is_offline(tmp_path):
    run, s = synthetic_run(tmp_path / "r")
    page = render("html", s, run)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"""\s(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "Chart.js v4" in page  # the library is inlined, not fetched


def test_charts_get_bucketed_data_for_long_runs(tmp_path):
    run, s = synthetic_run(tmp_path / "r", n_train=100_000, over_every=997)
    t = time.perf_counter()
    page = render("html", s, run)
    took = time.perf_counter() - t
    assert len(page.encode()) < 2_000_000, len(page)
    data = _data_of(page)
    tr = data["train"]
    assert tr["n"] == 100_000 and len(tr["x0"]) <= chartdata.MAX_BARS
    assert tr["x0"][0] == 0 and tr["x1"][-1] == 99_999
    # bucket means add up to the bucket's mean wall time
    total = sum(tr["phases"][p][3] for p in data["phases"])
    assert total == pytest.approx(tr["wall_mean"][3], rel=1e-3)
    # over-budget steps are counted, not averaged away
    assert sum(tr["over"]) == s["over_budget"]["count"] == len(range(0, 100_000, 997))
    assert max(tr["wall_max"]) == pytest.approx(1.5)
    assert len(data["train_loss"]["x"]) <= chartdata.MAX_POINTS
    assert took < 30


def test_step_buckets_are_exact_for_short_runs(tmp_path):
    run, s = synthetic_run(tmp_path / "r", n_train=20, n_eval=5)
    data = _data_of(render("html", s, run))
    steps = run.steps
    train = steps[steps.kind == "train"]
    assert data["train"]["bucket"] == 1
    assert data["train"]["phases"]["forward"] == pytest.approx(train["forward_s"].tolist(), abs=1e-6)
    assert data["eval"]["n"] == 5
    assert sum(data["hist"]["counts"]) == 20


def test_partial_run_renders_as_incomplete(tmp_path, cli):
    path = tmp_path / "r"
    synthetic_run(path, n_train=30, summary=False)
    with open(path / "steps.csv", "a") as fh:
        fh.write("30,train,30,0.3,0.0")  # a torn last line, as after kill -9
    out = tmp_path / "partial.html"
    r = cli(["report", path, "--format", "html", "-o", out])
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert ">incomplete<" in page
    assert _data_of(page)["train"]["n"] == 30
    assert not (path / "summary.json").exists()  # report renders, it never rewrites the run


def test_report_html_default_goes_into_the_run_dir(tmp_path, cli):
    path = tmp_path / "r"
    synthetic_run(path)
    r = cli(["report", path, "--format", "html"])
    assert r.returncode == 0, r.stderr
    assert (path / "report.html").stat().st_size > 100_000
    assert "report.html" in r.stderr


def test_write_run_reports_fails_soft(tmp_path, monkeypatch):
    run, s = synthetic_run(tmp_path / "r")

    def boom(self, summary, run=None):
        raise RuntimeError("chart data broke\nsecond line")
    monkeypatch.setattr(H.HtmlRenderer, "render", boom)
    notices = write_run_reports(run, s, formats=("html",))
    assert notices == ["html report not written: RuntimeError: chart data broke"]
    assert not (tmp_path / "r" / "report.html").exists()


def test_an_old_report_survives_a_failed_rewrite(tmp_path, monkeypatch):
    run, s = synthetic_run(tmp_path / "r")
    write_run_reports(run, s, formats=("html",))
    before = (tmp_path / "r" / "report.html").read_text()

    def boom(self, summary, run=None):
        raise RuntimeError("no")
    monkeypatch.setattr(H.HtmlRenderer, "render", boom)
    write_run_reports(run, s, formats=("html",))
    assert (tmp_path / "r" / "report.html").read_text() == before
    assert not [f for f in os.listdir(tmp_path / "r") if ".tmp" in f]


def test_profile_writes_report_html_with_hostile_names(tmp_path, cli, scripts):
    out = tmp_path / "run"
    r = cli(["profile", "--out", out, "--no-progress", "--quiet", "--no-monitors",
             scripts / "hostile_names.py", "<script>alert('argv')</script>"])
    assert r.returncode == 0, r.stderr
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<script>alert(" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # named by the wiring verdict
    assert "not_in_optimizer" in page
