"""The sweep record's two renderers: the terminal leaderboard and the HTML page
(ordering, the pruned trials' text, partial records, escaping, links, width)."""
from __future__ import annotations

import copy
import json
import re

import pytest

from nnprof.renderers.leaderboard import render_leaderboard
from nnprof.renderers.sweeppage import MAX_CURVE_POINTS, render_sweep_html, safe_run_dir

HOSTILE = "<script>alert(1)</script>"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _trial(number, state, value=None, intermediate=(), **kw):
    t = {"number": number, "params": {"lr": 0.001 * (number + 1), "hidden": 16 * (number + 1),
                                      "optimizer": "adam" if number % 2 else "sgd"},
         "state": state, "value": value, "intermediate": [list(p) for p in intermediate],
         "pruned_at": None, "run_dir": f"trial-{number}", "step_time_s": 0.0123,
         "bottleneck": "compute-bound", "exit_code": 0, "duration_s": 12.3, "error": None,
         "tail": []}
    t.update(kw)
    return t


def make_record(direction="minimize", resource="passes"):
    return {
        "schema_version": 1, "kind": "sweep", "status": "completed", "exit_code": 0,
        "reason": None, "script": "train.py", "argv": ["--lr", "{lr}"], "study": "lr-search",
        "storage": "journal file study.log in the sweep directory", "wall_s": 93.2,
        "settings": {
            "trials": 8, "parallel": 2, "metric": "val_loss", "metric_used": "val_loss",
            "direction": direction, "prune": "median", "resource": resource,
            "prune_rule": "median of the trials at the same pass, after 2 trials finished",
            "params": {
                "lr": {"spec": "loguniform:1e-4:1", "kind": "float", "low": 1e-4, "high": 1.0,
                       "log": True, "choices": None},
                "hidden": {"spec": "int:16:256", "kind": "int", "low": 16, "high": 256,
                           "log": False, "choices": None},
                "optimizer": {"spec": "choice:sgd,adam", "kind": "choice", "low": None,
                              "high": None, "log": False, "choices": ["sgd", "adam"]}}},
        "trials": [
            _trial(0, "complete", 0.412, [(1, 0.9), (2, 0.61), (3, 0.412)]),
            _trial(1, "pruned", None, [(1, 2.3)], pruned_at=1, exit_code=143),
            _trial(2, "failed", error="train.py: error: unrecognized arguments: --hidden 64",
                   tail=["usage: train.py [-h]", "train.py: error: unrecognized arguments"],
                   exit_code=2, step_time_s=None, bottleneck=None),
            _trial(3, "complete", 0.3, [(1, 0.8), (2, 0.5), (3, 0.3)]),
            _trial(4, "pruned", None, [(1, 1.0), (2, 0.9)], pruned_at=2, exit_code=143),
            _trial(5, "running", None, [(1, 0.7)]),
            _trial(6, "complete", 0.123456789, [(1, 0.5), (3, 0.123456789)],
                   step_time_s=0.00456),
        ],
        "best": {"number": 6, "value": 0.123456789, "params": {"lr": 0.007}, "run_dir": "trial-6"},
        "pruning": {"pruned": 2, "trial_seconds": 80.1, "saved_s": 40.2, "saved_share": 0.33,
                    "rule": "a pruned trial would have run on to the median last resource"},
        "notices": ["trial 2 failed at start-up: check the argv template"],
    }


def _board_numbers(text: str) -> list:
    """Trial numbers in the terminal table, top to bottom."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"\s*#\s+tr", ln))
    out = []
    for ln in lines[start + 1:]:
        if not ln.strip() or not re.match(r"\s*(\d+|-)\s+\d+\s", ln):
            break
        out.append(int(ln.split()[1]))
    return out


def _data_of(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="nnprof-data">(.*?)</script>', page, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def _page_numbers(page: str) -> list:
    board = page.split('class="num leaderboard"', 1)[1].split("</table>", 1)[0]
    return [int(re.findall(r"<td>(.*?)</td>", row)[1])
            for row in re.findall(r"<tr>(.*?)</tr>", board)[1:]]


# -- ordering ----------------------------------------------------------------------
def test_order_is_complete_then_pruned_then_running_then_failed():
    rec = make_record()
    expected = [6, 3, 0, 4, 1, 5, 2]
    assert _board_numbers(render_leaderboard(rec)) == expected
    page = render_sweep_html(rec)
    assert _page_numbers(page) == expected
    assert [t["number"] for t in _data_of(page)["trials"]] == expected


def test_maximize_puts_the_largest_value_first():
    rec = make_record(direction="maximize")
    assert _board_numbers(render_leaderboard(rec)) == [0, 3, 6, 1, 4, 5, 2]


def test_ranks_only_for_trials_with_a_value():
    text = render_leaderboard(make_record())
    ranks = {int(ln.split()[1]): ln.split()[0] for ln in text.splitlines()
             if re.match(r"\s*(\d+|-)\s+\d+\s", ln)}
    assert ranks[6] == "1" and ranks[1] == "5"
    assert ranks[5] == "-" and ranks[2] == "-"


# -- cell texts --------------------------------------------------------------------
def test_pruned_state_names_the_resource_and_where_it_stopped():
    text = render_leaderboard(make_record())
    assert "pruned @ pass 2" in text and "pruned @ pass 1" in text
    steps = make_record(resource="steps")
    steps["trials"][4]["pruned_at"] = None  # falls back to the last intermediate value's x
    steps["trials"][4]["intermediate"] = [[100, 1.0], [200, 0.9]]
    text = render_leaderboard(steps)
    assert "pruned @ step 200" in text and "pruned @ step 1" in text
    assert "pruned @ step 200" in render_sweep_html(steps)


def test_numbers_best_line_pruning_failures_and_notices():
    text = render_leaderboard(make_record())
    row6 = next(ln for ln in text.splitlines() if re.match(r"\s*1\s+6\s", ln))
    assert "0.1235" in row6 and "4.56" in row6 and "trial-6" in row6 and "0.123456" not in row6
    assert "(0.9)" in text  # a pruned trial's last reported value
    assert "best: trial 6" in text and "lr=0.007" in text
    assert "pruning saved ~40 trial-seconds of 80 spent (33%)" in text
    assert "trial 2 (exit 2): train.py: error: unrecognized arguments: --hidden 64" in text
    assert "note: trial 2 failed at start-up" in text
    row2 = next(ln for ln in text.splitlines() if re.match(r"\s*-\s+2\s", ln))
    assert "failed" in row2 and " - " in row2  # no step time


def test_color_only_on_the_state_word():
    rec = make_record()
    rec["script"] = "train\x1b[31m.py"  # a control sequence from the record never gets out
    plain = render_leaderboard(rec)
    assert "\x1b" not in plain
    colored = render_leaderboard(rec, color=True)
    codes = ANSI.findall(colored)
    assert codes and len(codes) == 2 * len(rec["trials"])
    assert "\x1b[32mcomplete\x1b[0m" in colored and "\x1b[33mpruned @ pass 2\x1b[0m" in colored
    assert ANSI.sub("", colored) == plain


# -- partial records ------------------------------------------------------------------
@pytest.mark.parametrize("record", [
    {}, None, {"trials": None, "settings": None, "best": None, "pruning": None},
    {"trials": [{}], "settings": {"params": None}},
    {"trials": [{"number": None, "state": None, "params": None, "intermediate": None}]},
    {"trials": [{"number": 1, "state": "pruned", "intermediate": [[1, None], "x", [2]],
                 "params": {"lr": None, "odd": [1, 2]}, "value": "n/a",
                 "step_time_s": "fast", "duration_s": float("nan"), "run_dir": None}],
     "settings": {"params": {"lr": None, "x": {"log": "yes"}}, "trials": None},
     "best": {"number": None}, "pruning": {"saved_s": None}, "notices": None, "argv": None},
])
def test_missing_and_odd_fields_never_crash(record):
    text = render_leaderboard(record)
    assert text.startswith("nnprof sweep")
    page = render_sweep_html(record)
    assert _data_of(page)["kind"] == "sweep"


def test_zero_trials():
    rec = make_record()
    rec["trials"], rec["best"], rec["pruning"] = [], None, None
    text = render_leaderboard(rec)
    assert "no trials yet" in text and "0 of 8 trials done" in text
    assert "best: none yet" in text
    page = render_sweep_html(rec)
    assert "No trials yet." in page and _data_of(page)["trials"] == []


# -- escaping ----------------------------------------------------------------------
def _hostile_record():
    rec = make_record()
    rec["script"] = rec["study"] = HOSTILE
    rec["argv"] = [HOSTILE]
    rec["trials"][0]["params"]["optimizer"] = HOSTILE
    rec["trials"][0]["bottleneck"] = HOSTILE
    rec["trials"][2]["error"] = HOSTILE
    rec["trials"][2]["tail"] = [HOSTILE, HOSTILE]
    rec["settings"]["params"][HOSTILE] = {"kind": "choice", "choices": [HOSTILE]}
    rec["trials"][3]["params"][HOSTILE] = HOSTILE
    rec["notices"] = [HOSTILE]
    rec["best"]["params"] = {HOSTILE: HOSTILE}
    return rec


def test_hostile_text_is_escaped_on_the_page():
    page = render_sweep_html(_hostile_record())
    assert HOSTILE not in page
    assert "alert(1)>" not in page.replace("alert(1)&gt;", "")
    # exactly our own script elements: the data block, Chart.js and the page script
    assert len(re.findall(r"<script\b", page)) == 3
    assert len(re.findall(r"</script", page, re.I)) == 3
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 8
    data = _data_of(page)  # the data block still parses, with the text intact
    assert any(p["name"] == HOSTILE for p in data["params"])
    assert data["trials"][-1]["number"] == 2


def test_hostile_text_stays_plain_in_the_terminal():
    text = render_leaderboard(_hostile_record(), width=200)
    assert f"nnprof sweep  {HOSTILE}  study {HOSTILE}" in text
    assert f"trial 2 (exit 2): {HOSTILE}" in text


# -- links -------------------------------------------------------------------------
@pytest.mark.parametrize("run_dir,linked", [
    ("trial-3", True), ("runs/trial-3", True), ("../trial-3", False), ("a/../b", False),
    ("/etc/passwd", False), ("javascript:alert(1)", False), ("//evil.example/x", False),
    ('trial-3" onclick="x', False), (".hidden", False), ("", False), (None, False), (3, False),
])
def test_run_dir_is_a_link_only_when_plainly_relative(run_dir, linked):
    assert safe_run_dir(run_dir) is linked
    rec = make_record()
    rec["best"] = None
    rec["trials"] = [_trial(0, "complete", 0.5, [(1, 0.5)], run_dir=run_dir)]
    page = render_sweep_html(rec)
    hrefs = re.findall(r'href="([^"]*)"', page)
    if linked:
        assert hrefs == [f"{run_dir}/report.html"] * 2  # the table and the best card
        assert f">{run_dir}</a>" in page
    else:
        assert hrefs == [] and "<a " not in page


# -- width -------------------------------------------------------------------------
@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
def test_every_line_fits_the_width(width):
    rec = make_record()
    rec["trials"][0]["run_dir"] = "a-very-long-directory-name-" * 4
    rec["trials"][3]["params"]["optimizer"] = "adamw-with-a-very-long-name-" * 3
    rec["notices"] = ["word " * 60, "x" * 300]
    rec["trials"][2]["error"] = "e" * 250
    for color in (False, True):
        text = render_leaderboard(rec, color=color, width=width)
        for ln in ANSI.sub("", text).splitlines():
            assert len(ln) <= width, (width, ln)
    assert _board_numbers(render_leaderboard(rec, width=width)) == [6, 3, 0, 4, 1, 5, 2]


def test_long_cells_are_cut_with_an_ellipsis():
    rec = make_record()
    rec["trials"][0]["run_dir"] = "a-very-long-directory-name-" * 4
    text = render_leaderboard(rec, width=100)
    assert "\u2026" in text and rec["trials"][0]["run_dir"] not in text
    assert "\u2026" not in render_leaderboard(make_record(), width=200)


# -- the page's charts -----------------------------------------------------------------
def test_chart_data_travels_in_the_data_block():
    rec = make_record()
    rec["trials"][3]["intermediate"] = [[i, 1.0 / (i + 1)] for i in range(5000)]
    page = render_sweep_html(rec)
    data = _data_of(page)
    assert data["kind"] == "sweep" and data["metric"] == "val_loss"
    assert data["resource"] == "pass" and data["direction"] == "minimize" and data["best"] == 6
    by_n = {t["number"]: t for t in data["trials"]}
    assert by_n[0]["curve"] == [[1, 0.9], [2, 0.61], [3, 0.412]] and by_n[0]["value"] == 0.412
    assert by_n[1]["state"] == "pruned" and by_n[1]["last"] == 2.3 and by_n[1]["value"] is None
    long = by_n[3]["curve"]
    assert len(long) <= MAX_CURVE_POINTS and long[0] == [0, 1.0] and long[-1][0] == 4999
    assert by_n[0]["params"] == {"lr": 0.001, "hidden": 16, "optimizer": "sgd"}
    specs = {p["name"]: p for p in data["params"]}
    assert specs["lr"]["log"] is True and specs["hidden"]["log"] is False
    assert specs["optimizer"]["kind"] == "choice"
    assert specs["optimizer"]["choices"] == ["sgd", "adam"]
    for i in range(3):
        assert f'<canvas id="chart-param-{i}">' in page
    assert '<canvas id="chart-curves">' in page
    assert "time saved by pruning" in page and "pruning saved ~40 trial-seconds" in page


def test_page_is_offline_and_drawn_by_the_sweep_function():
    page = render_sweep_html(make_record())
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"""\s(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "default-src 'none'" in page
    assert "function sweepPage()" in page and "sweep: sweepPage" in page
