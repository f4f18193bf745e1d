"""Every launch choice of the Triton SSD kernels, as data: an :class:`SSDTuning`, passed
explicitly (``TritonBackend(ssd_tuning=...)`` runs another through the public
``ssmzoo.ssd_scan(..., backend=...)``; benchmarks/gpu_ssd.py times alternatives so). The
defaults are what measurement chose; how, on which device and when, is in
docs/developer/ssd-notes.md (the section named beside each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ssmzoo.errors import did_you_mean
from ssmzoo_kernels._env import interpreting
from ssmzoo_kernels.ssd._common import block

__all__ = ["SSDTuning", "DEFAULT", "KERNELS"]

# the kernels whose tiles ``SSDTuning.tiles`` may set
KERNELS = ("state", "fused_state", "scan_fwd", "bwd_dx", "bwd_dc")
_CHOICES = {"states": ("float32", "input"), "order_fwd": ("v1", "v2", "auto"),
            "order_bwd": ("v1", "v2", "auto"), "dcum": ("stable", "identity"),
            "cb": ("tiles", "chunk", "auto"), "fused_scale": ("auto", "x", "B")}


@dataclass(frozen=True)
class SSDTuning:
    """The SSD kernels' switches and tiles. Every choice gives the same results up to rounding.

    - ``states``: dtype of the states entering each chunk as the chunk scan and the backward read
      them: "float32", or "input" (x's dtype, as mamba_ssm; half the bytes at N 128). The
      recurrence and the final state stay float32. "input" was faster at N 128 ("v3 — measured").
    - ``fused_state``: one launch walks the chunks of a (batch, head, headdim block, d_state
      block), computing each chunk's state on the tensor cores and carrying H; False: a chunk-state
      launch writes every chunk's own state and the state passing reads them back. True: forward+
      backward 0.53-0.93x mamba_ssm (the "ab" run).
    - ``order_fwd``, ``order_bwd``: launch order of the chunk-parallel kernels: "v1" (tiles on grid
      axis 0, chunks on 1, heads on 2) or "v2" (a chunk's heads adjacent on axis 0, for L2 reuse of
      B/C); "auto": v1 at d_state <= 64, v2 above. v2 sped the N 128 forward up (1.44 -> 1.18 ms)
      and slowed the N 16 forward+backward (2.25 -> 3.13 ms); v1 backward with the fused forward
      ("v3").
    - ``dcum``: the log-decays' gradient. "identity": d cum_t = C_t . dC_t - B_t . dB_t from the
      finished rows, whose reverse cumsum subtracts nearly equal sums (in bf16 dA and dt_bias 4-5x
      mamba_ssm's error: "dA and dt_bias in bf16"); "stable": the pairs' terms summed in float32,
      the chunk states' terms through a forward exclusive cumsum of their own.
    - ``cb``: C_t . B_s within a chunk for the stable gradient: "tiles" per tile and head, "chunk"
      once per (batch, chunk, group) in float32 before the kernel (33.5 MB at b8 L4096 g1 chunk
      256); "auto": tiles at d_state <= 64, chunk above ("Sixth session").
    - ``fused_scale``: which tile of the fused launch carries the decay weights (rounded to the
      input dtype): "auto" (the smaller one), "x" or "B" (as mamba_ssm's chunk state does).
    - ``target_programs``: below this many programs the backward kernels split a group's heads
      over several programs (partial dB/dC summed afterwards).
    - ``tiles``: per kernel (``KERNELS``), launch settings merged over :meth:`config`'s defaults,
      e.g. ``{"scan_fwd": {"BLOCK": 128, "num_warps": 8}}``.
    """

    states: str = "input"
    fused_state: bool = True
    order_fwd: str = "v2"
    order_bwd: str = "v1"
    dcum: str = "stable"
    cb: str = "auto"
    fused_scale: str = "auto"
    target_programs: int = 2048
    tiles: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"SSDTuning.{name} = {value!r}; expected one of "
                                 f"{', '.join(map(repr, allowed))}" + did_you_mean(str(value), allowed))
        for kernel in self.tiles:
            if kernel not in KERNELS:
                raise ValueError(f"SSDTuning.tiles names kernel {kernel!r}; expected one of "
                                 f"{', '.join(KERNELS)}" + did_you_mean(str(kernel), KERNELS))

    def replace(self, **changes: object) -> SSDTuning:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def states_dtype(self, x_dtype: torch.dtype) -> torch.dtype:
        """The dtype the entering states are stored in."""
        return torch.float32 if self.states == "float32" else x_dtype

    def cb_once(self, n: int) -> bool:
        """Whether the backward computes C . B once per chunk and group at d_state n."""
        return self.cb == "chunk" or (self.cb == "auto" and n > 64)

    def dcum_stable(self) -> bool:
        return self.dcum == "stable"

    def order(self, kind: str, n: int) -> int:
        """1 or 2: the launch order of the forward ("fwd") or backward ("bwd") kernels."""
        o = self.order_fwd if kind == "fwd" else self.order_bwd
        return (1 if n <= 64 else 2) if o == "auto" else int(o[1])

    def config(self, kernel: str, q: int, n: int) -> dict[str, int]:
        """BLOCK (rows of the chunk per program and per inner step), num_warps, num_stages."""
        if interpreting():
            cfg = {"BLOCK": 16, "num_warps": 4, "num_stages": 1}
        else:
            rows = 32 if kernel.startswith("bwd") and n > 64 else 64  # (rows, d_state) in registers
            # three stages for the state-to-output scan and the chunk states: faster than two on
            # the four target cases' forwards
            stages = 3 if kernel in ("scan_fwd", "state") else 2
            cfg = {"BLOCK": rows, "num_warps": 4, "num_stages": stages}
        cfg.update(self.tiles.get(kernel, {}))
        cfg["BLOCK"] = min(cfg["BLOCK"], block(q))
        return cfg

    def head_split(self, heads_per_group: int, programs: int) -> int:
        """How many programs share a group's heads: the largest divisor of heads_per_group not
        above what brings the launch to ``target_programs``."""
        want = max(1, -(-self.target_programs // max(programs, 1)))
        return max(d for d in range(1, heads_per_group + 1)
                   if heads_per_group % d == 0 and d <= want)


DEFAULT = SSDTuning()
