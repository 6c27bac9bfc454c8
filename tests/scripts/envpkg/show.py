"""``python -m envpkg.show``: prints what the module sees of its invocation."""
import json
import os
import sys

spec = globals().get("__spec__")
print(json.dumps({
    "name": __name__,
    "argv": sys.argv,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "file": globals().get("__file__"),
    "package": globals().get("__package__"),
    "spec": None if spec is None else spec.name,
    "main_is_me": sys.modules["__main__"].__dict__ is globals(),
}, sort_keys=True))
