"""The Mamba-2 block (Dao & Gu 2024, mamba_ssm's ``Mamba2``), through ``ssmzoo.ssd_scan``.

    z, xBC, dt = in_proj(u)          widths d_inner, d_inner + 2 G N, heads (mamba_ssm's order)
    x, B, C = SiLU(causal depthwise conv(xBC))
    y = SSD(x, dt, A, B, C, D)       one scalar A_h = -exp(A_log_h) per head; B, C per group
    out = out_proj(RMSNorm(y * SiLU(z)))     gated RMSNorm over groups of d_inner / G

Paper symbols: heads h, headdim p, d_state N, groups G; per head the state H is (p, N).

``mamba2`` is mamba_ssm's ``Mamba2`` and HF transformers' ``Mamba2Mixer`` (their checkpoints
load with the same logits: ``ssmzoo.load``). Every default against theirs (mamba_ssm 2.3.2
``modules/mamba2.py``; transformers 5.24 ``Mamba2Config`` and ``Mamba2Mixer``):

=====================  ====================  ====================  =======================
setting                ssmzoo                mamba_ssm             HF transformers
=====================  ====================  ====================  =======================
d_state                128                   128                   state_size 128
d_conv                 4                     4                     conv_kernel 4
expand                 2                     2                     expand 2
headdim                64 (below: largest    64                    head_dim 64
                       divisor of d_inner)
ngroups                1                     1                     **n_groups 8**
A_init_range           U(1, 16)              U(1, 16)              **A = 1..heads**
dt_min, dt_max         0.001, 0.1            0.001, 0.1            time_step_min/max
dt_init_floor          1e-4                  1e-4                  time_step_floor 1e-4
dt_limit               (0, inf)              (0, inf)              time_step_limit (0, inf)
chunk_size             256                   256                   chunk_size 256
D_has_hdim             false                 false                 (not offered)
rmsnorm                true                  true                  (always)
norm_before_gate       false                 false                 (always false)
norm_eps               1e-5                  1e-5 (fixed)          layer_norm_epsilon 1e-5
conv_bias, bias        true, false           true, false           use_conv_bias, use_bias
d_ssm                  d_inner (only)        None = d_inner        (not offered)
=====================  ====================  ====================  =======================

Differences: ``headdim`` falls back to a divisor of d_inner at widths where 64 does not divide
it (mamba_ssm asserts instead); HF's n_groups default of 8 and its A initialisation ``1..heads``
differ from mamba_ssm's, which ssmzoo follows (a loaded checkpoint carries its own values); a
``d_ssm`` below d_inner (mamba_ssm's gated-MLP slice) is refused when loading, by name.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.hparams import PositiveFloat, PositiveInt, Rule, check_hparams
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.inits import dt_bias_init, no_weight_decay
from ssmzoo.models.io import Saveable
from ssmzoo.models.spectrum import SpectrumScaled

__all__ = ["Mamba2", "GatedRMSNorm"]


class GatedRMSNorm(nn.Module):
    """RMSNorm of y * SiLU(z) (norm_before_gate=False) over groups of ``group_size`` channels."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5,
                 norm_before_gate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size, self.eps, self.norm_before_gate = group_size, eps, norm_before_gate

    def _rms(self, y: Tensor) -> Tensor:
        g = rearrange(y, "... (g s) -> ... g s", s=self.group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return rearrange(g, "... g s -> ... (g s)")

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        """y, z: (..., d) -> (..., d)."""
        if self.norm_before_gate:
            return self._rms(y) * self.weight * F.silu(z)
        return self._rms(y * F.silu(z)) * self.weight


def _auto_headdim(d_inner: int, target: int = 64) -> int:
    return max(k for k in range(1, min(target, d_inner) + 1) if d_inner % k == 0)


class Mamba2(SpectrumScaled, Saveable, nn.Module):
    """Mamba-2 block: in_proj to z, x, B, C, dt; conv over xBC; SSD; gated RMSNorm; out_proj.

    (batch, length, d_model) -> (batch, length, d_model). Defaults are mamba_ssm's.

    Args:
        d_state: state size N per head and channel
        d_conv: kernel size of the causal depthwise convolution over x, B and C
        expand: d_inner = expand * d_model
        headdim: channels per head p; auto = 64, or the largest divisor of d_inner below it
        ngroups: groups G of heads sharing B and C
        A_init_range: A_h = -U(lo, hi) at initialisation
        dt_min: smallest initial Δ (log-uniform, through the inverse-softplus bias)
        dt_max: largest initial Δ
        dt_init_floor: lower clamp of the initial Δ
        dt_limit: Δ is clamped into this range after the softplus
        chunk_size: chunk length of the SSD scan
        D_has_hdim: D per channel (heads x headdim) instead of per head
        rmsnorm: gated RMSNorm before out_proj (false: plain SiLU(z) gate)
        norm_before_gate: normalise y before the gate instead of y * SiLU(z)
        norm_eps: epsilon of the gated RMSNorm
        conv_bias: bias in the convolution
        bias: bias in in_proj and out_proj
    """

    hparam_rules = (
        Rule("dt_min <= dt_max", lambda dt_min, dt_max: dt_min <= dt_max),
        Rule("A_init_range = [lo, hi] with 0 < lo <= hi",
             lambda A_init_range: 0 < A_init_range[0] <= A_init_range[1]),
        Rule("dt_limit = [lo, hi] with 0 <= lo < hi",
             lambda dt_limit: 0 <= dt_limit[0] < dt_limit[1]),
    )

    def __init__(self, d_model: PositiveInt, *, d_state: PositiveInt = 128, d_conv: PositiveInt = 4,
                 expand: PositiveInt = 2, headdim: PositiveInt | Literal["auto"] = "auto",
                 ngroups: PositiveInt = 1,
                 A_init_range: tuple[PositiveFloat, PositiveFloat] = (1.0, 16.0),
                 dt_min: PositiveFloat = 1e-3, dt_max: PositiveFloat = 0.1,
                 dt_init_floor: PositiveFloat = 1e-4, dt_limit: tuple[float, float] = (0.0, math.inf),
                 chunk_size: PositiveInt = 256, D_has_hdim: bool = False, rmsnorm: bool = True,
                 norm_before_gate: bool = False, norm_eps: PositiveFloat = 1e-5,
                 conv_bias: bool = True, bias: bool = False) -> None:
        check_hparams(Mamba2, "unit 'mamba2'", locals())
        super().__init__()
        owner = "unit 'mamba2'"
        d_inner = expand * d_model
        p = _auto_headdim(d_inner) if headdim == "auto" else headdim
        if d_inner % p:
            raise HyperparameterTypeError(owner, "headdim", f"'auto' or a divisor of d_inner="
                                          f"{d_inner}", headdim)
        heads = d_inner // p
        if heads % ngroups:
            raise HyperparameterTypeError(owner, "ngroups", f"a divisor of the number of heads "
                                          f"({heads})", ngroups)
        lo, hi = A_init_range
        self.d_model, self.d_inner, self.d_state, self.d_conv = d_model, d_inner, d_state, d_conv
        self.headdim, self.nheads, self.ngroups, self.chunk_size = p, heads, ngroups, chunk_size
        self.dt_limit = (float(dt_limit[0]), float(dt_limit[1]))
        self.conv_dim = d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, d_inner + self.conv_dim + heads, bias=bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim,
                                padding=d_conv - 1, bias=conv_bias)
        self.dt_bias = no_weight_decay(nn.Parameter(
            dt_bias_init((heads,), dt_min, dt_max, dt_init_floor)))                  # (h,)
        A0 = torch.empty(heads).uniform_(lo, hi)
        self.A_log = no_weight_decay(nn.Parameter(torch.log(A0)))                    # (h,)
        self.D = no_weight_decay(nn.Parameter(torch.ones(heads, p) if D_has_hdim
                                              else torch.ones(heads)))
        self.norm = GatedRMSNorm(d_inner, d_inner // ngroups, norm_eps, norm_before_gate) \
            if rmsnorm else None
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.init_spectrum()

    def effective_A(self) -> Tensor:
        """A: (heads,) real, one scalar per head; spectrum-scaled."""
        return self.scaled_A(self.A_log)

    def _gate(self, y: Tensor, z: Tensor) -> Tensor:
        return self.norm(y, z) if self.norm is not None else y * F.silu(z)

    def forward(self, u: Tensor) -> Tensor:
        """u: (batch, length, d_model) -> (batch, length, d_model)."""
        check_sequence("unit 'mamba2'", u, self.d_model, dtype_of=self.in_proj.weight, name="u")
        return self._run(u, last=False)

    def prefill(self, u: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """``forward(u)`` and the state after its last step, from one SSD pass: the convolution
        window holds the last d_conv - 1 inputs of the convolution (zeros before the first)."""
        check_sequence("unit 'mamba2'", u, self.d_model, dtype_of=self.in_proj.weight, name="u")
        return self._run(u, last=True)

    def _run(self, u: Tensor, *, last: bool) -> Any:
        import ssmzoo
        from ssmzoo.models.backbone import conv_window

        length = u.shape[1]
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.nheads], -1)
        xc = rearrange(xBC, "b l c -> b c l")
        xBC = self.conv1d(xc)[..., :length]                                     # (b, c, l)
        xBC = F.silu(rearrange(xBC, "b c l -> b l c"))
        gn = self.ngroups * self.d_state
        x, B, C = torch.split(xBC, [self.d_inner, gn, gn], -1)
        dt_bias, softplus, limit = self.dt_bias, True, self.dt_limit
        if self.delta_scale() is not None:  # MambaExtend: scale Δ after the softplus and clamp
            dt = F.softplus(dt + dt_bias).clamp(min=limit[0], max=limit[1])
            dt = self.scaled_delta(dt, channel_dim=-1)
            dt_bias, softplus, limit = None, False, (0.0, math.inf)
        y = ssmzoo.ssd_scan(
            rearrange(x, "b l (h p) -> b l h p", p=self.headdim), dt, self.effective_A(),
            rearrange(B, "b l (g n) -> b l g n", g=self.ngroups),
            rearrange(C, "b l (g n) -> b l g n", g=self.ngroups),
            chunk_size=self.chunk_size, D=self.D, dt_bias=dt_bias, dt_softplus=softplus,
            dt_limit=limit, return_final_states=last)                           # (b, l, h, p)
        if last:
            y, final = y                                                        # final (b, h, p, n)
        y = self.out_proj(self._gate(rearrange(y, "b l h p -> b l (h p)"), z))
        if last:
            ssm = final.to(self.conv1d.weight.dtype)
            window = conv_window(xc, self.d_conv).to(self.conv1d.weight.dtype)
            return y, {"conv": window, "ssm": ssm}
        return y

    def init_state(self, batch: int) -> dict[str, Any]:
        """{"conv": (batch, conv channels, d_conv - 1), "ssm": (batch, heads, headdim, d_state)}."""
        w = self.conv1d.weight
        return {"conv": torch.zeros(batch, self.conv_dim, self.d_conv - 1, dtype=w.dtype,
                                    device=w.device),
                "ssm": torch.zeros(batch, self.nheads, self.headdim, self.d_state, dtype=w.dtype,
                                   device=w.device)}

    def step(self, u_t: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """One token: u_t (batch, d_model) -> (y_t (batch, d_model), state)."""
        check_step("unit 'mamba2'", self, u_t, state, self.d_model, dtype_of=self.in_proj.weight,
                   name="u_t")
        z, xBC, dt = torch.split(self.in_proj(u_t), [self.d_inner, self.conv_dim, self.nheads], -1)
        window = torch.cat([state["conv"], xBC[:, :, None]], dim=-1)           # (b, c, d_conv)
        xBC = torch.einsum("bck,ck->bc", window, self.conv1d.weight[:, 0, :])
        if self.conv1d.bias is not None:
            xBC = xBC + self.conv1d.bias
        gn = self.ngroups * self.d_state
        x, B, C = torch.split(F.silu(xBC), [self.d_inner, gn, gn], -1)
        x = rearrange(x, "b (h p) -> b h p", p=self.headdim)
        B = repeat(B, "b (g n) -> b (g r) n", g=self.ngroups, r=self.nheads // self.ngroups)
        C = repeat(C, "b (g n) -> b (g r) n", g=self.ngroups, r=self.nheads // self.ngroups)
        dt = F.softplus(dt + self.dt_bias).clamp(min=self.dt_limit[0], max=self.dt_limit[1])
        dt = self.scaled_delta(dt)                                              # (b, h)
        dA = torch.exp(dt * self.effective_A())                                 # (b, h)
        H = dA[:, :, None, None] * state["ssm"] + torch.einsum("bh,bhp,bhn->bhpn", dt, x, B)
        y = torch.einsum("bhpn,bhn->bhp", H, C)                                 # (b, h, p)
        D = self.D if self.D.dim() == 2 else self.D[:, None]
        y = rearrange(y + D * x, "b h p -> b (h p)")
        return self.out_proj(self._gate(y, z)), {"conv": window[:, :, 1:], "ssm": H}

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: the convolution window and the SSD state."""
        return self.conv_dim * (self.d_conv - 1) + self.nheads * self.headdim * self.d_state
