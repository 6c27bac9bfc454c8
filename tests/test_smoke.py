from conftest import read_summary, run_cli


def test_profile_sleepy_script_writes_run(tmp_path, scripts):
    out = tmp_path / "run"
    r = run_cli(["profile", "--out", out, "--no-progress", scripts / "sleepy.py",
                 "--steps", "4", "--forward", "0.01"])
    assert r.returncode == 0, r.stderr
    s = read_summary(out)
    assert s["status"] == "completed"
    assert s["steps"]["train"] == 4
