"""The B2S6 family of ssmzoo: the ``b2s6`` core and the variants that ablate its claims.

Registered through the ``ssmzoo`` entry-point group, like a third party's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ssmzoo

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

PAPER = ("Yu & Erichson, Block-Biased Mamba for Long-Range Sequence Processing, NeurIPS 2025 "
         "(arXiv 2505.09022)")


@ssmzoo.hookimpl
def ssmzoo_register_units(registry: Registry) -> None:
    from ssmzoo_b2s6.b2s6 import B2S6

    registry.unit("b2s6", B2S6, paper=PAPER, role="core")


@ssmzoo.hookimpl
def ssmzoo_register_variants(registry: Registry) -> None:
    v = registry.variant
    v("b2s6-nobias", "b2s6(bias=false)",
      doc="Blocks alone, no B_bias: Thm 4's first route to universality (Table 2, middle column)")
    v("b2s6-real", "b2s6(complex=false)",
      doc="Real A, B, C: the complex parameterisation's share of the gain (Table 2, last column)")
    v("b2s6-h1", "b2s6(h=1)",
      doc="One block, bias kept: Thm 4's second route to universality (Table 2, row h=1)")
    v("b2s6-euler", "b2s6(discretization=euler)",
      doc="Euler input coefficient (mamba_ssm's) instead of the paper's zero-order hold")
    v("mamba-b2s6", "mamba(core=b2s6)",
      doc="The B2S6 paper's language-model block: Mamba with the S6 core swapped for B2S6")
