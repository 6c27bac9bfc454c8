"""Prints what a script sees of its own invocation, one JSON object on stdout."""
import json
import os
import sys


def describe(ns):
    spec = ns.get("__spec__")
    return {
        "name": ns.get("__name__"),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "path0": sys.path[0],
        "file": ns.get("__file__"),
        "package": ns.get("__package__"),
        "spec": None if spec is None else spec.name,
        "main_is_me": sys.modules["__main__"].__dict__ is ns,
    }


if __name__ == "__main__":
    print(json.dumps(describe(globals()), sort_keys=True))
