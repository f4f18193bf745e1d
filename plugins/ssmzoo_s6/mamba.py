"""The Mamba-1 block (Gu & Dao 2023, mamba_ssm's ``Mamba``) around any core.

    x, z = in_proj(u)                          (batch, length, d_inner) each, d_inner = expand * d
    x = SiLU(causal depthwise conv(x))         kernel d_conv
    y = core(x) * SiLU(z)                      core: any core spec, default s6 (the SSM and D)
    out = out_proj(y)                          (batch, length, d_model)

The B2S6 paper's language-model setup is ``mamba(core=b2s6)``: only the core is swapped.

``mamba(core=s6)`` is mamba_ssm's ``Mamba`` and HF transformers' ``MambaMixer``: the same
parameter shapes (tested at d_model 64 and 768) and, loaded from their checkpoints
(``ssmzoo.load``), the same logits. Every default against theirs (mamba_ssm 2.3.2
``modules/mamba_simple.py``; transformers 5.24 ``MambaConfig`` and ``MambaMixer``):

=====================  ==================  ==========================  =======================
setting                ssmzoo              mamba_ssm                   HF transformers
=====================  ==================  ==========================  =======================
expand                 2                   2                           expand 2
d_conv                 4                   4                           conv_kernel 4
conv_bias              true                true                        use_conv_bias true
bias                   false               false                       use_bias false
dt_rank                ceil(d_model/16)    "auto" = ceil(d_model/16)   time_step_rank "auto"
d_state (s6)           16                  16                          state_size 16
dt_min, dt_max         0.001, 0.1          0.001, 0.1                  time_step_min/max
dt_init_floor          1e-4                1e-4                        time_step_floor 1e-4
dt_scale               1.0                 1.0                         time_step_scale 1.0
dt_proj init           U(±dt_rank^-½)      dt_init "random": same      scheme "random": same
Δ bias init            inv. softplus of    same                        same
                       log-U(dt_min, max)
A init                 S4D-Real -(1..N)    same                        same
D init                 ones                ones                        ones
conv1d bias init       PyTorch default     PyTorch default             **zeros**
activation             SiLU                SiLU                        hidden_act "silu"
=====================  ==================  ==========================  =======================

The one difference, HF's zero conv1d bias at initialisation, only matters when training from
scratch; mamba_ssm's ``dt_init="constant"`` is not offered. (The block-level initialisation of
``out_proj`` and of the embedding belongs to the ``lm`` model: see its documentation.)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.hparams import PositiveInt, check_hparams
from ssmzoo.models.checks import check_sequence, check_step
from ssmzoo.models.io import Saveable
from ssmzoo.spec import Spec, parse

S6_SPEC = parse("s6")  # the default core, as a spec

__all__ = ["Mamba"]


class Mamba(Saveable, nn.Module):
    """Mamba-1 block: in_proj, causal depthwise conv, SiLU, a core, SiLU(z) gate, out_proj.

    (batch, length, d_model) -> (batch, length, d_model). The state for step() is the last
    d_conv - 1 inputs of the convolution and the core's state.

    Args:
        core: the sequence mixer inside the block (any core spec), built at width d_inner
        expand: d_inner = expand * d_model
        d_conv: kernel size of the causal depthwise convolution
        conv_bias: bias in the convolution
        bias: bias in in_proj and out_proj
        dt_rank: rank of an s6 core's Δ projection; auto = ceil(d_model / 16) of this block's
            d_model (mamba_ssm and HF), given to the core unless its spec sets dt_rank itself
    """

    def __init__(self, d_model: PositiveInt, *, core: Spec = S6_SPEC, expand: PositiveInt = 2,
                 d_conv: PositiveInt = 4, conv_bias: bool = True, bias: bool = False,
                 dt_rank: PositiveInt | Literal["auto"] = "auto") -> None:
        check_hparams(Mamba, "unit 'mamba'", locals())
        super().__init__()
        import ssmzoo

        self.d_model, self.d_inner, self.d_conv = d_model, expand * d_model, d_conv
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        resolved = ssmzoo.get_registry().resolve(parse(core))
        role = ssmzoo.get_registry().units[resolved.name].role
        if role != "core":
            cores = ssmzoo.get_registry().list_units(variants=False)
            cores = [n for n in cores if ssmzoo.get_registry().units[n].role == "core"]
            raise HyperparameterTypeError("unit 'mamba'", "core", "a core spec (" + ", ".join(cores)
                                          + "); blocks bring their own projections", str(core))
        if resolved.name == "s6" and "dt_rank" not in resolved.args:  # mamba_ssm's rank
            rank = math.ceil(d_model / 16) if dt_rank == "auto" else dt_rank
            resolved = Spec(resolved.name, {**resolved.args, "dt_rank": rank})
        self.core = ssmzoo.build(resolved, d_model=self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, u: Tensor) -> Tensor:
        """u: (batch, length, d_model) -> (batch, length, d_model)."""
        # checked here, at d_model, so that a wrong input names the block; the core checks its
        # own (correct by construction) input again at d_inner
        check_sequence("unit 'mamba'", u, self.d_model, dtype_of=self.in_proj.weight, name="u")
        return self._run(u, last=False)

    def prefill(self, u: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """``forward(u)`` and the state after its last step: the convolution window holds the
        last d_conv - 1 inputs (zeros before the first), and the core's state comes from its
        own full-sequence ``prefill`` where it has one."""
        check_sequence("unit 'mamba'", u, self.d_model, dtype_of=self.in_proj.weight, name="u")
        return self._run(u, last=True)

    def _run(self, u: Tensor, *, last: bool) -> Any:
        from ssmzoo.models.backbone import conv_window, prefill_mixer

        length = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)                                # (b, l, e) each
        xc = rearrange(x, "b l e -> b e l")
        x = F.silu(rearrange(self.conv1d(xc)[..., :length], "b e l -> b l e"))
        if not last:
            return self.out_proj(self.core(x) * F.silu(z))
        y, core_state = prefill_mixer(self.core, x)
        state = {"conv": conv_window(xc, self.d_conv), "core": core_state}
        return self.out_proj(y * F.silu(z)), state

    def init_state(self, batch: int) -> dict[str, Any]:
        """{"conv": (batch, d_inner, d_conv - 1) last inputs, "core": the core's state}."""
        w = self.conv1d.weight
        conv = torch.zeros(batch, self.d_inner, self.d_conv - 1, dtype=w.dtype, device=w.device)
        return {"conv": conv, "core": self.core.init_state(batch)}

    def step(self, u_t: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """One token: u_t (batch, d_model) -> (y_t (batch, d_model), state)."""
        check_step("unit 'mamba'", self, u_t, state, self.d_model, dtype_of=self.in_proj.weight,
                   name="u_t")
        x, z = self.in_proj(u_t).chunk(2, dim=-1)                              # (b, e) each
        window = torch.cat([state["conv"], x[:, :, None]], dim=-1)             # (b, e, d_conv)
        x = torch.einsum("bek,ek->be", window, self.conv1d.weight[:, 0, :])
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        y, core_state = self.core.step(F.silu(x), state["core"])
        y = y * F.silu(z)
        return self.out_proj(y), {"conv": window[:, :, 1:], "core": core_state}

    def state_size(self) -> int:
        """Floats of recurrent state per sequence: the convolution window and the core's state."""
        return self.d_inner * (self.d_conv - 1) + int(self.core.state_size())
