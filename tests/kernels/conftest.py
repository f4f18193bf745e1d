"""Kernel tests: without CUDA, Triton kernels run in its CPU interpreter.

``TRITON_INTERPRET`` must be set before a ``triton.jit`` function is defined, so it is set here,
before any test module of this folder imports a kernel module (an explicit setting is kept).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
