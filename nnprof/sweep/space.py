"""The search space of a sweep: ``-p NAME=SPEC`` parameters, their Optuna
distributions, and the script arguments one trial's values become.

Specs: ``loguniform:LO:HI``, ``uniform:LO:HI``, ``int:LO:HI[:log]``,
``choice:A,B,...``. A trial's values reach the script as ``--NAME VALUE``
appended to its arguments (NAME as written, so ``batch-size`` gives
``--batch-size``), or, when the script's arguments hold a ``{NAME}`` placeholder
of any parameter, substituted there; then every parameter needs one.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Optional

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
FLOAT_DIGITS = 6  # floats reach the script (and the record) with 6 significant digits


class SpecError(ValueError):
    """A parameter spec that cannot be used (the message is one line for the user)."""


@dataclass(frozen=True)
class Param:
    name: str
    spec: str
    kind: str  # "float" | "int" | "choice"
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    choices: Optional[tuple] = None

    def distribution(self):
        from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                          IntDistribution)
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return CategoricalDistribution(list(self.choices))

    def text(self, value) -> str:
        """The value as the script receives it."""
        if self.kind == "float":
            return format(float(value), f".{FLOAT_DIGITS}g")
        if self.kind == "int":
            return str(int(value))
        return str(value)

    def shown(self, value):
        """The value as recorded: what the script received, as a number where it is one."""
        if self.kind == "float":
            return float(self.text(value))
        if self.kind == "int":
            return int(value)
        for kind in (int, float):  # choice:16,32,64 is recorded as numbers
            try:
                [kind(c) for c in self.choices]
                return kind(value)
            except (TypeError, ValueError):
                continue
        return str(value)

    def to_dict(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "low": self.low, "high": self.high,
                "log": self.log, "choices": list(self.choices) if self.choices else None}


def _number(text: str, what: str, spec: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SpecError(f"{spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise SpecError(f"{spec!r}: {what} must be finite")
    return v


def parse_param(text: str) -> Param:
    """``NAME=SPEC`` -> Param, or SpecError with a one-line reason."""
    if "=" not in text:
        raise SpecError(f"{text!r}: expected NAME=SPEC, e.g. lr=loguniform:1e-4:1")
    name, spec = text.split("=", 1)
    name = name.strip().lstrip("-")
    spec = spec.strip()
    if not _NAME.match(name):
        raise SpecError(f"{text!r}: {name!r} is not a usable parameter name")
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    full = f"{name}={spec}"
    if kind in ("loguniform", "uniform"):
        if len(parts) != 2:
            raise SpecError(f"{full!r}: {kind} takes LO:HI")
        lo, hi = (_number(p, b, full) for p, b in zip(parts, ("LO", "HI")))
        if not lo < hi:
            raise SpecError(f"{full!r}: LO must be below HI")
        if kind == "loguniform" and lo <= 0:
            raise SpecError(f"{full!r}: loguniform needs LO > 0")
        return Param(name, spec, "float", lo, hi, log=kind == "loguniform")
    if kind == "int":
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise SpecError(f"{full!r}: int takes LO:HI or LO:HI:log")
        try:
            lo, hi = int(parts[0]), int(parts[1])
        except ValueError:
            raise SpecError(f"{full!r}: int bounds must be integers") from None
        if not lo < hi:
            raise SpecError(f"{full!r}: LO must be below HI")
        log = len(parts) == 3
        if log and lo < 1:
            raise SpecError(f"{full!r}: int:...:log needs LO >= 1")
        return Param(name, spec, "int", lo, hi, log=log)
    if kind == "choice":
        choices = tuple(c.strip() for c in rest.split(","))
        if not rest or any(not c for c in choices):
            raise SpecError(f"{full!r}: choice takes A,B,... (no empty choice)")
        if len(set(choices)) != len(choices):
            raise SpecError(f"{full!r}: a choice is listed twice")
        return Param(name, spec, "choice", choices=choices)
    raise SpecError(f"{full!r}: unknown kind {kind!r} (choose from loguniform:LO:HI, "
                    "uniform:LO:HI, int:LO:HI[:log], choice:A,B,...)")


class Space:
    """The parameters of a sweep and the script arguments they are put into."""

    def __init__(self, params: list, script_args: list) -> None:
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(f"parameter {dup[0]!r} is given twice")
        if not params:
            raise SpecError("no parameters to search: give at least one -p NAME=SPEC")
        self.params = list(params)
        self.script_args = [str(a) for a in script_args]
        held = {p.name for p in params if any("{" + p.name + "}" in a for a in self.script_args)}
        self.placeholders = bool(held)
        if held and len(held) != len(params):
            missing = [p.name for p in params if p.name not in held]
            raise SpecError(f"the script's arguments hold placeholders, but none for "
                            f"{', '.join(missing)}: add {{{missing[0]}}} where its value goes")

    def distributions(self) -> dict:
        return {p.name: p.distribution() for p in self.params}

    def values(self, raw: dict) -> dict:
        """Optuna's values -> what the script receives, as recorded."""
        return {p.name: p.shown(raw[p.name]) for p in self.params}

    def args(self, raw: dict) -> list:
        """The script's arguments for one trial."""
        texts = {p.name: p.text(raw[p.name]) for p in self.params}
        if self.placeholders:
            out = []
            for a in self.script_args:
                for name, v in texts.items():
                    a = a.replace("{" + name + "}", v)
                out.append(a)
            return out
        out = list(self.script_args)
        for p in self.params:
            out += [f"--{p.name}", texts[p.name]]
        return out

    def option_of(self, token: str) -> Optional[str]:
        """The parameter a script's error names: ``--lr`` or a placeholder's value."""
        for p in self.params:
            if token in (f"--{p.name}", p.name):
                return p.name
        return None

    def rejection(self, error: str, failures: int, run_dir: str) -> str:
        """Why trials keep failing, in one line: the argument the script's error names
        (argparse's "unrecognized arguments" or "argument --x: invalid ..."), if any."""
        name = None
        m = re.search(r"unrecognized arguments?: (.*)", error)
        if m:
            for tok in m.group(1).split():
                name = name or self.option_of(tok.split("=")[0])
        m = re.search(r"argument (-[\w.-]+(?:/-[\w.-]+)*)", error)
        if name is None and m:
            for tok in m.group(1).split("/"):
                name = name or self.option_of(tok)
        log = os.path.join(run_dir, "output.log")
        head = f"the first {failures} trials failed and none succeeded"
        if name:
            return (f"{head}: the script rejects --{name} ({error.strip()}); see {log} in "
                    "the sweep directory")
        return f"{head}: {error.strip()} (see {log} in the sweep directory)"
