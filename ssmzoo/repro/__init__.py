"""The reproductions of the papers' claims: measurements, tasks and the runner they need.

- :mod:`ssmzoo.repro.dt_gradients`: the growth of S6's gradients with respect to its Δ
  parameters, relative to S4D's, in the input scale and the sequence length (B2S6, Thm 3 and
  App. E.1), measured through :func:`ssmzoo.selective_scan`.
- :mod:`ssmzoo.repro.length_extension`: a character LM evaluated past its training length under
  each length-extension method of :mod:`ssmzoo.extend` (Mamba Modulation).
- :mod:`ssmzoo.repro.tasks`: the ``dt_gradients`` and ``length_extension`` tasks, whose grid cells
  run themselves (``run_cell``), registered by :mod:`ssmzoo.repro._plugin`.
- :mod:`ssmzoo.repro.runner` and ``python -m ssmzoo.repro GRID``: runs any grid, measurement
  cells included, into the grid runner's store; :mod:`ssmzoo.repro.report` writes their tables.

The grids that reproduce the papers' claims ship in ``ssmzoo/grids/``; the measured results are
on the Reproductions page of the docs.
"""

from __future__ import annotations

__all__: list[str] = []
