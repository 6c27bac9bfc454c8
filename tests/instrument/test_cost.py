"""nnprof's own cost per step: the calibration and the estimate built on it."""
from __future__ import annotations

import pandas as pd
import pytest

from nnprof.instrument.cost import calibrate, estimate


def test_calibration_measures_every_hook_and_leaves_nothing_installed():
    for _ in range(3):  # a calibration disturbed by other work on the core: again
        costs = calibrate()  # the autouse fixture checks that no patch is left behind
        assert set(costs) == {"phase_ns", "step_ns", "nested_ns", "forward_ns"}
        for k, v in costs.items():
            assert 0 <= v < 1e6, (k, v)  # under a millisecond per call on any machine
        if costs["phase_ns"] > 0 and costs["forward_ns"] > 0:
            break
    # a phase hook is an extra frame plus two clock reads: it cannot be free
    assert costs["phase_ns"] > 0 and costs["forward_ns"] > 0


def test_estimate_is_costs_times_calls():
    costs = {"phase_ns": 1000.0, "forward_ns": 2000.0, "nested_ns": 100.0, "step_ns": 500.0}
    steps = pd.DataFrame({"n_forward": [1, 1], "n_backward": [1, 1], "n_optimizer": [1, 1],
                          "loader": ["L0", "L0"], "wall_s": [0.001, 0.001]})
    est = estimate(costs, steps, modules_per_model=10, row_ns=3000.0)
    # phase calls: 2 per optimizer step + 2 per backward (loss, backward) + 2 per loader
    # batch = 6
    assert est["calls_per_step"] == {"phase": 6.0, "forward": 1.0, "submodule": 10.0}
    assert est["per_step_s"] == pytest.approx((6 * 1000 + 2000 + 10 * 100 + 500 + 3000) * 1e-9)
    assert est["share"] == pytest.approx(est["per_step_s"] / 0.001)
    assert estimate(costs, steps.iloc[:0], 10, 0) is None


@pytest.mark.slow
def test_every_report_states_the_overhead(tmp_path, cli, scripts):
    out = tmp_path / "run"
    r = cli(["profile", "--out", out, "--no-progress", "--no-monitors", scripts / "sleepy.py",
             "--steps", "12"])
    assert r.returncode == 0, r.stderr
    assert "nnprof's own cost: about" in r.stderr
    from conftest import read_summary
    ov = read_summary(out)["overhead"]
    assert 0 < ov["per_step_s"] < 0.005 and 0 < ov["share"] < 0.5
    assert ov["calls_per_step"]["forward"] == pytest.approx(1.0)
    assert "nnprof&#x27;s own cost about" in (out / "report.html").read_text()
