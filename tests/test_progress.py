import io

from nnprof.progress import Progress


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_off_when_stream_is_not_a_terminal():
    p = Progress(stream=io.StringIO())
    assert not p.enabled


def test_draws_steps_and_budget_at_most_every_interval_and_clears():
    out = TTY()
    p = Progress(stream=out, interval_s=1.0)
    assert p.enabled
    p.update(10**9, 5, 1, 0.25, 1.0, 0)
    p.update(10**9 + 10, 6, 1, 2.0, 1.0, 1)  # within the interval: not drawn
    text = out.getvalue()
    assert "5 train / 1 eval" in text and "250.0 ms of 1 s budget (ok)" in text
    assert "6 train" not in text
    p.update(3 * 10**9, 7, 1, 2.0, 1.0, 1)
    assert "(OVER)" in out.getvalue() and "1 over budget" in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\r\x1b[2K")
