"""The script's own ``subprocess``: the main process trains nothing and runs itself again
with ``--child`` (plain ``python``, or ``python -I`` with ``--isolated``, which ignores
``PYTHONPATH``). The child trains 6 steps of a plain loop and prints ``proc 0 loss <i>
<repr>`` per step; the main prints ``child exited <code>`` and exits with the child's code.
"""
import subprocess
import sys

if "--child" in sys.argv:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for i in range(6):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"proc 0 loss {i} {loss.item()!r}", flush=True)
    sys.exit(0)

flags = ["-I"] if "--isolated" in sys.argv else []
code = subprocess.run([sys.executable, *flags, __file__, "--child"]).returncode
print(f"child exited {code}", flush=True)
sys.exit(code)
