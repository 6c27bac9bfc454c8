"""Prints what a process looks like from inside (argv, folder, environment, streams,
interpreter flags, thread count, random states), trains a little, then exits with
PROBE_EXIT (default 3) through an atexit handler and a late non-daemon thread. Lines
starting with RANDOM differ from run to run; the rest must not, however it started.
With --sleep it sleeps a minute before training (to be stopped meanwhile)."""
import atexit
import os
import random
import sys
import threading
import time

import numpy as np
import torch

print("argv", sys.argv)
print("cwd", os.getcwd())
print("path0 is the script's folder", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
print("name", __name__, "main file", os.path.basename(sys.modules["__main__"].__file__))
print("env", {k: v for k, v in sorted(os.environ.items())
              if k.startswith(("PROBE_", "CUDA_VISIBLE", "OMP_"))})
print("torch threads", torch.get_num_threads(), "cuda initialised", torch.cuda.is_initialized())
print("stdout", sys.stdout.line_buffering, sys.stdout.write_through, sys.stdout.encoding,
      sys.stdout.errors, sys.stdout.isatty())
print("stderr", sys.stderr.line_buffering, sys.stderr.encoding, sys.stderr.errors)
print("stdin", repr(sys.stdin.read()))
print("flags", sys.flags.optimize, sys.flags.dont_write_bytecode, sys.flags.hash_randomization,
      sys.flags.isolated, sys.warnoptions)
print("orig_argv", sys.orig_argv[1:] if hasattr(sys, "orig_argv") else None)
print("threads", threading.active_count())
print("RANDOM", random.random(), np.random.rand(), torch.initial_seed(), torch.rand(1).item())
print("to stderr", file=sys.stderr)
atexit.register(lambda: print("atexit ran", flush=True))


def late():
    time.sleep(0.2)
    print("late thread done")


if "--sleep" in sys.argv:
    time.sleep(60)
torch.manual_seed(0)
w = torch.zeros(4, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
for i in range(5):
    loss = ((w - torch.randn(4)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print("loss", i, loss.item())
threading.Thread(target=late).start()  # joined at exit, before the atexit handlers
sys.exit(int(os.environ.get("PROBE_EXIT", "3")))
