"""The sub-runs of ``nnprof check``: each a ``python -m nnprof profile`` child
process writing an ordinary run directory, with the script's output in
``output.log`` there."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

from ..run import Run, RunDirError

OUTPUT_LOG = "output.log"
TAIL_LINES = 15
_OWN_LINES = ("nnprof: run written to", "nnprof: report ")  # the sub-run's own lines


@dataclass
class SubRun:
    """One ``nnprof profile`` child process and the run directory it left."""

    name: str
    path: str
    returncode: int
    interrupted: bool = False
    run: Optional[Run] = None
    summary: Optional[dict] = None

    @property
    def exit_code(self) -> int:
        # killed by signal N: report it as a shell would (128 + N)
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def status(self) -> str:
        return (self.summary or {}).get("status") or "no run"

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or self.summary is None

    @property
    def stop_reason(self) -> Optional[str]:
        for note in (self.summary or {}).get("notices") or []:
            if str(note).startswith("stopped at "):
                return str(note)[len("stopped at "):]
        return None

    def tail(self, n: int = TAIL_LINES) -> list:
        """The last lines the script wrote (stdout and stderr together)."""
        try:
            with open(os.path.join(self.path, OUTPUT_LOG), errors="replace") as fh:
                lines = [ln.rstrip() for ln in fh if not ln.startswith(_OWN_LINES)]
        except OSError:
            return []
        while lines and not lines[-1]:
            lines.pop()
        return lines[-n:]

    def error_line(self) -> str:
        lines = [ln for ln in self.tail() if ln.strip()]
        return lines[-1].strip() if lines else f"exit code {self.exit_code}"


def profile_command(target, path: str, max_steps: int,
                    max_time: Optional[float] = None) -> list:
    """``python -m nnprof profile`` for the target, quiet, into ``path``."""
    cmd = [sys.executable, "-m", "nnprof", "profile", "--quiet", "--no-progress",
           "--no-monitors", "--max-steps", str(max_steps), "--out", path]
    if max_time is not None:
        cmd += ["--max-time", repr(float(max_time))]
    cmd += ["-m", target.module] if target.module else ["--", target.path]
    return cmd + list(target.args)


def sub_run(name: str, target, path: str, max_steps: int,
            rung: Optional[dict] = None, max_time: Optional[float] = None) -> SubRun:
    """Run the target under ``nnprof profile`` into ``path``; the script's
    output goes to ``output.log`` there, its stdin is empty."""
    os.makedirs(path, exist_ok=True)
    cmd = profile_command(target, path, max_steps, max_time)
    env = dict(os.environ)
    env.pop("NNPROF_RUNG", None)
    if rung is not None:
        env["NNPROF_RUNG"] = json.dumps(rung)
    interrupted = False
    with open(os.path.join(path, OUTPUT_LOG), "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        while True:
            # Ctrl-C reaches the child as well: let it finish its run directory,
            # then stop the ladder
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    sub = SubRun(name, path, rc, interrupted=interrupted)
    try:
        sub.run = Run.load(path)
        sub.summary = sub.run.summary()
    except RunDirError:
        pass
    sub.interrupted = sub.interrupted or sub.status == "interrupted"
    return sub


def train_losses(run_dir: str) -> list:
    """``[(train_index, loss)]`` of the train steps with a loss, in order.

    Read from ``steps.csv`` directly so that a NaN loss (``nan``) stays apart
    from a missing one (an empty cell): the first counts against the rung.
    """
    out = []
    try:
        with open(os.path.join(run_dir, "steps.csv"), newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None) or []
            try:
                ki, li, ti = header.index("kind"), header.index("loss"), header.index("train_index")
            except ValueError:
                return []
            for row in reader:
                if len(row) != len(header) or row[ki] != "train" or not row[li].strip():
                    continue
                try:
                    out.append((int(row[ti]), float(row[li])))
                except ValueError:
                    continue
    except OSError:
        return []
    return out
