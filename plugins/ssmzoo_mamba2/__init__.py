"""The Mamba-2 family of ssmzoo: the ``mamba2`` block (SSD) and its variants.

Registered through the ``ssmzoo`` entry-point group, like a third party's plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ssmzoo

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

PAPER = ("Dao & Gu, Transformers are SSMs: Generalized Models and Efficient Algorithms Through "
         "Structured State Space Duality (Mamba-2), ICML 2024")


@ssmzoo.hookimpl
def ssmzoo_register_units(registry: Registry) -> None:
    from ssmzoo_mamba2.mamba2 import Mamba2

    registry.unit("mamba2", Mamba2, paper=PAPER, role="block")


@ssmzoo.hookimpl
def ssmzoo_register_variants(registry: Registry) -> None:
    registry.variant("mamba2-small", "mamba2(d_state=16, headdim=16)",
                     doc="Mamba-2 at S6's state size (N=16): compares SSD with S6 at equal state")


@ssmzoo.hookimpl
def ssmzoo_register_formats(registry: Registry) -> None:
    from ssmzoo_mamba2.interchange import HFMamba2, MambaSSMMamba2

    registry.checkpoint_format(HFMamba2())
    registry.checkpoint_format(MambaSSMMamba2())
