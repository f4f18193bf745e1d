"""The S6 family of ssmzoo: the ``s6`` core, the ``mamba`` block and their variants.

Registered through the ``ssmzoo`` entry-point group, like a third party's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ssmzoo

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

PAPER = "Gu & Dao, Mamba: Linear-Time Sequence Modeling with Selective State Spaces, 2023"


@ssmzoo.hookimpl
def ssmzoo_register_units(registry: Registry) -> None:
    from ssmzoo_s6.mamba import Mamba
    from ssmzoo_s6.s6 import S6

    registry.unit("s6", S6, paper=PAPER, role="core")
    registry.unit("mamba", Mamba, paper=PAPER, role="block")


@ssmzoo.hookimpl
def ssmzoo_register_variants(registry: Registry) -> None:
    registry.variant("s6-alg2", "s6(dt_rank=1, dt_broadcast=true)",
                     doc="S6 as the B2S6 paper analyses it (Mamba paper Algorithm 2: broadcast rank-1 Δ)")
    registry.variant("s6-complex", "s6(complex=true)",
                     doc="S6 with complex A, B, C (S4D-Lin): isolates B2S6's complex parameterisation")
    registry.variant("s6-zoh", "s6(discretization=zoh)",
                     doc="S6 with zero-order-hold input (B2S6's choice) instead of Euler")
    registry.variant("mamba-s4d", "mamba(core=s4d)",
                     doc="Mamba block with an S4D core: what the block does without selectivity")
    registry.variant("mamba-s6-alg2", "mamba(core=s6-alg2)",
                     doc="Mamba block with Algorithm 2's rank-1 broadcast Δ")


@ssmzoo.hookimpl
def ssmzoo_register_formats(registry: Registry) -> None:
    from ssmzoo_s6.interchange import HFMamba, MambaSSMMamba1

    registry.checkpoint_format(HFMamba())
    registry.checkpoint_format(MambaSSMMamba1())
