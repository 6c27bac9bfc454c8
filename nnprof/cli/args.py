"""What every ``nnprof`` command shares: exit codes, one-line usage errors, value
types for options, how paths and text reach the terminal, and how a command that runs
a script tells its own options from the script's."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

EXIT_BAD_INPUT = 2
EXIT_CONDITION = 3


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line and exit 2. No abbreviated long
    options: the splitter that finds the script must know every option by name."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


MAX_SECONDS = 1e9  # about 31 years: far beyond any run, well within a 64-bit ns clock


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def _seconds(text: str) -> float:
    v = _positive_float(text)
    if v > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:g} seconds, got {text!r}")
    return v


def _rate(text: str) -> float:
    v = _positive_float(text)
    if not 0.01 <= v <= 10_000:
        raise argparse.ArgumentTypeError(f"must be between 0.01 and 10000 per second, got {text!r}")
    return v


def _int_list(text: str, least: int) -> list:
    """A comma-separated list of whole numbers, each at least ``least``, sorted, once each."""
    try:
        return sorted({_int_from(part, least, f"at least {least}") for part in text.split(",")})
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} in {text!r}") from None


def _int_from(text: str, low: int, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    return _int_from(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    return _int_from(text, 0, "0 or more")


def _port(text: str) -> int:
    v = _int_from(text, 1, "a port number (1 to 65535)")
    if v > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1 to 65535), got {text!r}")
    return v


def _nproc(text: str) -> str:
    """torchrun's --nproc-per-node: a count, or auto, cpu, gpu, xpu."""
    if text in ("auto", "cpu", "gpu", "xpu"):
        return text
    return str(_positive_int(text))


def _nnodes(text: str) -> str:
    """torchrun's --nnodes: N, or MIN:MAX for an elastic launch."""
    parts = text.split(":")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"expected N or MIN:MAX, got {text!r}")
    nums = [_positive_int(x) for x in parts]
    if len(nums) == 2 and nums[0] > nums[1]:
        raise argparse.ArgumentTypeError(f"MIN above MAX in {text!r}")
    return text


def _conditions(text: str) -> list:
    from ..summary import FAIL_CONDITIONS
    items = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in items if c not in FAIL_CONDITIONS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown condition {', '.join(bad) or repr(text)} (choose from "
            f"{', '.join(FAIL_CONDITIONS)})")
    return items


def _shown(path: str, start: Optional[str] = None) -> str:
    try:
        rel = os.path.relpath(path, start or os.getcwd())
    except (ValueError, OSError):
        return path
    return rel if not rel.startswith("..") else path


def _width(tty: bool) -> int:
    import shutil
    return max(80, shutil.get_terminal_size((100, 24)).columns) if tty else 100


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _write_err(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# -- a command that runs a script: our options, then the script and its own ----------
def split_profile_args(argv: list, value_options):
    """(our options, script path or None, module or None, script args).

    Our options come before the script; everything after it belongs to it.
    ``value_options`` are the options that take a value (the next token).
    """
    ours, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok == "-m":
            if i + 1 >= len(argv):
                raise UsageError("-m needs a module name")
            return ours, None, argv[i + 1], argv[i + 2:]
        if tok.startswith("-m") and len(tok) > 2 and not tok.startswith("--"):
            return ours, None, tok[2:], argv[i + 1:]
        if tok == "--":
            if i + 1 >= len(argv):
                raise UsageError("no script given after --")
            return ours, argv[i + 1], None, argv[i + 2:]
        if tok.startswith("-") and tok != "-":
            ours.append(tok)
            if tok in value_options and i + 1 < len(argv):
                ours.append(argv[i + 1])
                i += 1
            i += 1
            continue
        return ours, tok, None, argv[i + 1:]
    return ours, None, None, []


def _target(script, module, rest, command: str):
    from ..runner import Target, TargetError, validate
    if script is None and module is None:
        raise UsageError(f"no script given (nnprof {command} [options] script.py [args])")
    target = Target(path=script, module=module, args=tuple(rest))
    try:
        validate(target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    return target


def parse_command(argv: list, parser, value_options, command: str):
    """(options, target, script args) of a command that runs a script, or None when
    only its help was asked for (and printed)."""
    ours, script, module, rest = split_profile_args(argv, value_options)
    if "-h" in ours or "--help" in ours:
        parser.print_help()
        return None
    opts = parser.parse_args(ours)
    return opts, _target(script, module, rest, command), rest
