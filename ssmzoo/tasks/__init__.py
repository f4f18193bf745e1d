"""Tasks: synthetic generators and dataset loaders, each with its metric and model head.

A task is built from a spec (``ssmzoo.build_task("mqar(seq_len=64, num_kv=8)")``) and follows the
protocol of :class:`ssmzoo.tasks.base.Task`: the model kind and head it needs, seeded splits, a
loss and metrics. The built-in tasks are registered by :mod:`ssmzoo.tasks._plugin`.
"""

from __future__ import annotations

from ssmzoo.tasks.base import (
    IGNORE_INDEX,
    ClassificationTask,
    RegressionTask,
    Split,
    Task,
    TokenTask,
)

__all__ = ["Task", "Split", "TokenTask", "ClassificationTask", "RegressionTask", "IGNORE_INDEX"]
