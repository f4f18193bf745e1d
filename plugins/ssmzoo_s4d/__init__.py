"""The S4D family of ssmzoo: the ``s4d`` core and its variants.

Registered through the ``ssmzoo`` entry-point group, like a third party's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ssmzoo

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

PAPER = ("Gu, Gupta, Goel & Ré, On the Parameterization and Initialization of Diagonal State "
         "Space Models (S4D), NeurIPS 2022")


@ssmzoo.hookimpl
def ssmzoo_register_units(registry: Registry) -> None:
    from ssmzoo_s4d.s4d import S4D

    registry.unit("s4d", S4D, paper=PAPER, role="core")


@ssmzoo.hookimpl
def ssmzoo_register_variants(registry: Registry) -> None:
    registry.variant("s4d-inv", "s4d(init=inv)", doc="S4D-Inv initialisation of A (S4D paper, Table 1)")
    registry.variant("s4d-real", "s4d(init=real)",
                     doc="S4D-Real: A = -(n+1), no oscillation (the init that S6 inherits)")
