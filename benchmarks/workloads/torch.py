"""Workload for the `torch` environment: a tensor op and a tiny nn.Linear forward (CPU)."""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import torch


def main() -> int:
    torch.manual_seed(0)
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    b = a @ a.T
    assert torch.equal(b, torch.tensor([[5.0, 14.0], [14.0, 50.0]])), b
    layer = torch.nn.Linear(3, 2)
    out = layer(a)
    assert out.shape == (2, 2)
    loss = out.sum()
    loss.backward()
    assert layer.weight.grad is not None
    print("torch ok", tuple(out.shape), torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
