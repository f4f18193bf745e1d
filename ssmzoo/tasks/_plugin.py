"""Registers the built-in tasks, as a plugin like any other.

Factories are imported when a task is first built, never at registration, so listing the tasks
imports neither scikit-learn nor Pillow.
"""

from __future__ import annotations

import ssmzoo
from ssmzoo.registry import Registry


@ssmzoo.hookimpl
def ssmzoo_register_tasks(registry: Registry) -> None:
    from ssmzoo.tasks import functions, real, synthetic

    registry.task("mqar", synthetic.MQAR, doc="Multi-query associative recall (Zoology)")
    registry.task("selective_copy", synthetic.SelectiveCopy,
                  doc="Selective copying of scattered tokens (Mamba paper)")
    registry.task("induction", synthetic.Induction, doc="Induction heads: recall after a trigger")
    registry.task("keep_nth", synthetic.KeepNth,
                  doc="Classify a sequence by its n-th token (Input-Selectivity paper)")
    registry.task("coef_recovery", functions.CoefRecovery,
                  doc="Recover g from sum_i g_i cos(p_i t) (B2S6 paper, Fig. 2)")
    registry.task("memory_scale", functions.MemoryScale,
                  doc="Remember |u_1| under input scales sigma1, sigma2 (B2S6 paper, Fig. 3)")
    registry.task("haar", functions.Haar,
                  doc="Haar-wavelet projections of white noise (Input-Selectivity paper)")
    registry.task("sdigits", real.SDigits, doc="scikit-learn's 8x8 digits as a pixel sequence")
    registry.task("chars", real.Chars, doc="Character-level language modelling on a text file")
    _register_lra(registry)


def _register_lra(registry: Registry) -> None:
    try:
        from ssmzoo.tasks import lra
    except ImportError:  # pragma: no cover - lra has no optional imports at module level
        return
    for name, factory in lra.TASKS.items():
        registry.task(name, factory, doc=lra.DOCS[name])
