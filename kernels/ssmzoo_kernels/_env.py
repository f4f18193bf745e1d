"""Where the kernels run: on a GPU, or in Triton's CPU interpreter (``TRITON_INTERPRET=1``, read
at each call, so a test may set it). The interpreter runs libdevice's sin/cos instead of the
SFU's inline assembly, and plain stores instead of the inline-assembly ones."""

from __future__ import annotations

import os

__all__ = ["interpreting"]


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
