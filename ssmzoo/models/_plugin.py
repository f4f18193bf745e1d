"""Registers the built-in model kinds (``lm``, ``classifier``, ``regressor``), as a plugin like any other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssmzoo.hookspecs import hookimpl

if TYPE_CHECKING:
    from ssmzoo.registry import Registry


@hookimpl
def ssmzoo_register_models(registry: Registry) -> None:
    from ssmzoo.models.heads import Classifier, Regressor
    from ssmzoo.models.lm import LM

    registry.model("lm", LM)
    registry.model("classifier", Classifier)
    registry.model("regressor", Regressor)
