"""The HTML pages in a real browser: headless Chromium driven by Playwright loads each
page from disk, offline, with no console errors, and the charts are drawn."""
from __future__ import annotations

import os
import shutil

import pytest

from rundirs import EVIL, rank_run, synthetic_run

pytestmark = pytest.mark.slow


def _chromium():
    for name in (os.environ.get("NNPROF_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium binary (Debian: apt-get install chromium; or set NNPROF_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def open_page(browser, path):
    """Load ``path``; return (page, problems): console errors, page errors, dialogs and
    every request that left the file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: problems.append(f"request: {r.url}")
            if not r.url.startswith(("file:", "data:", "about:")) else None)
    page.goto("file://" + os.path.abspath(path))
    page.wait_for_function("document.body.getAttribute('data-charts') !== null", timeout=15000)
    return page, problems


def drawn(page) -> dict:
    """Chart id -> number of distinct colours on its canvas (1 means blank)."""
    return page.evaluate("""() => {
        const out = {};
        for (const [id, chart] of Object.entries(window.nnprofCharts)) {
            const c = chart.canvas, ctx = c.getContext('2d');
            const px = ctx.getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < px.length && seen.size < 50; i += 4 * 97)
                seen.add(px[i] + ',' + px[i + 1] + ',' + px[i + 2] + ',' + px[i + 3]);
            out[id] = seen.size;
        }
        return out;
    }""")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from conftest import SCRIPTS, run_cli
    out = tmp_path_factory.mktemp("browser") / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", "--quiet", "--budget", "0.05",
                 SCRIPTS / "sleepy.py", "--steps", "24", "--forward", "0.01", "--fetch", "0.004",
                 "--eval-batches", "3", "--epochs", "2"])
    assert r.returncode == 0, r.stderr
    return out


def test_run_report_in_chromium(browser, real_run):
    page, problems = open_page(browser, real_run / "report.html")
    try:
        assert page.evaluate("document.body.getAttribute('data-charts')") == "drawn"
        colours = drawn(page)
        for chart in ("chart-steps", "chart-hist", "chart-loss", "chart-eval", "chart-scaling"):
            assert colours.get(chart, 0) > 3, (chart, colours)
        # hovering a bar shows that step's breakdown
        chart = page.locator("#chart-steps")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6)
        page.wait_for_function("window.nnprofCharts['chart-steps'].tooltip"
                               ".getActiveElements().length >= 7", timeout=5000)  # 7 phases
        assert problems == []
    finally:
        page.close()


def test_merged_distributed_report_in_chromium(browser, tmp_path):
    from nnprof.distributed.merge import write_merged
    rank_run(tmp_path / "rank-0", 0, comm=0.05, evals=[(9, 0.8), (19, 0.4)])
    rank_run(tmp_path / "rank-1", 1, data=0.052, evals=[(9, 0.6), (19, 0.3)])
    write_merged(str(tmp_path))
    page, problems = open_page(browser, tmp_path / "report.html")
    try:
        assert problems == []
        colours = drawn(page)
        for chart in ("chart-skew", "chart-steps", "chart-loss"):
            assert colours.get(chart, 0) > 3, (chart, colours)
        assert "rank 1 is a straggler" in page.locator("#distributed").text_content()
    finally:
        page.close()


def test_hostile_strings_stay_text_in_chromium(browser, tmp_path):
    from nnprof.renderers import write
    run, s = synthetic_run(tmp_path / "r", script=EVIL)
    s = dict(s, argv=[EVIL], notices=[EVIL])
    path = write("html", str(tmp_path / "evil.html"), s, run)
    page, problems = open_page(browser, path)
    try:
        assert problems == []  # no alert() dialog, no image request
        assert page.locator("header .script").text_content() == EVIL
        assert page.evaluate("document.querySelectorAll('img').length") == 0
    finally:
        page.close()


def test_long_run_opens_quickly(browser, tmp_path):
    import time
    from nnprof.renderers import write
    run, s = synthetic_run(tmp_path / "r", n_train=100_000, over_every=5000)
    path = write("html", str(tmp_path / "long.html"), s, run)
    assert os.path.getsize(path) < 10_000_000
    t = time.perf_counter()
    page, problems = open_page(browser, path)
    took = time.perf_counter() - t
    try:
        assert problems == []
        assert drawn(page)["chart-steps"] > 3
        assert took < 15, took
    finally:
        page.close()


def test_compare_and_check_pages_in_chromium(browser, real_run, tmp_path):
    from conftest import run_cli
    other, _ = synthetic_run(tmp_path / "b", n_train=40)
    out = tmp_path / "cmp.html"
    r = run_cli(["compare", real_run, other.path, "--format", "html", "-o", out])
    assert r.returncode == 0, r.stderr
    page, problems = open_page(browser, out)
    try:
        assert problems == [] and drawn(page)["chart-compare"] > 3
    finally:
        page.close()
    from nnprof.renderers.htmlpages import render_check
    from nnprof.renderers import write_text
    check = {"script": EVIL, "status": "failed", "exit_code": 3, "argv": [], "settings": {},
             "rungs": [{"name": "overfit-1", "status": "fail", "advice": [EVIL],
                        "evidence": {"first": 2.3, "last_mean": 2.2, "ratio": 0.1, "steps": 3,
                                     "ratio_achieved": 0.95,
                                     "curve": [[0, 2.3], [1, 2.25], [2, 2.2]]}}]}
    path = write_text(str(tmp_path / "check.html"), render_check(check))
    page, problems = open_page(browser, path)
    try:
        assert problems == [] and drawn(page)["chart-overfit"] > 3
    finally:
        page.close()


def line_offsets(page, chart_id) -> dict:
    """Each line dataset of a chart: label -> the largest distance in pixels between
    where its points are drawn and where its own values lie on the y axis (0 when
    the line is not stacked on anything)."""
    return page.evaluate("""(id) => {
        const chart = window.nnprofCharts[id], y = chart.scales.y, out = {};
        chart.data.datasets.forEach((ds, i) => {
            if (ds.type !== 'line') return;
            let worst = 0;
            chart.getDatasetMeta(i).data.forEach((pt, j) => {
                const v = ds.data[j];
                if (v == null) return;
                worst = Math.max(worst, Math.abs(pt.y - y.getPixelForValue(v)));
            });
            out[ds.label] = worst;
        });
        return out;
    }""", chart_id)


@pytest.mark.parametrize("n_train", [40, 1300], ids=["one-step-bars", "bucketed-bars"])
def test_budget_line_and_markers_are_not_stacked(browser, tmp_path, n_train):
    """The dashed budget line stays at the budget, and the over-budget and slowest-step
    markers at their own values, above bars stacked from the phases."""
    from nnprof.renderers import write
    run, s = synthetic_run(tmp_path / "r", n_train=n_train, wall=0.4, over_every=10)
    path = write("html", str(tmp_path / "budget.html"), s, run)
    page, problems = open_page(browser, path)
    try:
        assert problems == []
        offsets = line_offsets(page, "chart-steps")
        want = {"budget 1 s", "over budget"} | ({"slowest step in bar"} if n_train > 600 else set())
        assert set(offsets) == want, offsets
        assert all(px < 1.0 for px in offsets.values()), offsets
        budget_px = page.evaluate("""() => {
            const c = window.nnprofCharts['chart-steps'];
            const i = c.data.datasets.findIndex(d => d.label.startsWith('budget'));
            return [c.getDatasetMeta(i).data[0].y, c.scales.y.getPixelForValue(1000)];
        }""")
        assert abs(budget_px[0] - budget_px[1]) < 1.0, budget_px
    finally:
        page.close()
