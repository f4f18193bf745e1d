"""ssmzoo-lru: the Linear Recurrent Unit as an ssmzoo plugin.

ssmzoo finds this module through the entry point ``lru = "ssmzoo_lru"`` in the group ``ssmzoo``
(see pyproject.toml) and calls the hook functions below with its registry. Registration imports
nothing heavy: the registry stores the class and builds it only when a spec names it.
"""

from __future__ import annotations

import ssmzoo
from ssmzoo_lru.lru import LRU

__version__ = "0.1.0"
__all__ = ["LRU"]


@ssmzoo.hookimpl
def ssmzoo_register_units(registry):
    registry.unit("lru", LRU, doc="Linear Recurrent Unit: a diagonal complex linear recurrence "
                  "with a normalised input", paper="Orvieto et al. 2023 (arXiv:2303.06349)")


@ssmzoo.hookimpl
def ssmzoo_register_variants(registry):
    registry.variant("lru-long", "lru(r_min=0.9, r_max=0.999, max_phase=0.314)",
                     doc="eigenvalues near the unit circle with small phases, the paper's "
                     "initialisation for long-range tasks")
