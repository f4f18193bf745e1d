"""Measurements behind the reproductions that are not training runs.

- :mod:`ssmzoo.repro.dt_gradients`: the growth of S6's gradients with respect to its Δ
  parameters, relative to S4D's, in the input scale and the sequence length (B2S6, Thm 3 and
  App. E.1).
- :mod:`ssmzoo.repro.measure`: the ``measure`` task, through which a grid runs a measurement as a
  cell (its "training" is the measurement), and the registry of measurements.

The grids that reproduce the papers' claims ship in ``ssmzoo/grids/`` and are documented on the
Reproductions page of the docs.
"""

from __future__ import annotations

__all__: list[str] = []
