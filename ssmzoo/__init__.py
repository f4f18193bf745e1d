"""ssmzoo: a plugin-based zoo of state-space models sharing one selective scan.

>>> import ssmzoo
>>> "b2s6" in ssmzoo.list_units("b2s6*")
True

Importing ssmzoo loads no plugin and imports neither Triton, Ray nor matplotlib: the registry is
filled on first use, and every public name below is imported when first touched.
"""

from __future__ import annotations

import fnmatch
import importlib
from typing import TYPE_CHECKING, Any

from ssmzoo.hookspecs import hookimpl

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "selective_scan": "ssmzoo.scan",
    "ssd_scan": "ssmzoo.scan",
    "load": "ssmzoo.models.io",
    "param_groups": "ssmzoo.models.optim",
    "modulate": "ssmzoo.extend",
    "calibrate_scales": "ssmzoo.extend",
    "Spec": "ssmzoo.spec",
    "parse_spec": "ssmzoo.spec",
    "get_registry": "ssmzoo.registry",
    "errors": "ssmzoo.errors",
}

__all__ = ["hookimpl", "list_units", "list_models", "list_tasks", "describe", "build", "build_model",
           "build_task", "__version__", *_LAZY]

if TYPE_CHECKING:
    from ssmzoo.registry import Description
    from ssmzoo.spec import SpecLike


def list_units(pattern: str = "*", *, variants: bool = True) -> list[str]:
    """Names of units and named variants matching a wildcard, naturally sorted (``s6`` < ``s10``)."""
    from ssmzoo.registry import get_registry

    return get_registry().list_units(pattern, variants=variants)


def list_models(pattern: str = "*") -> list[str]:
    """Names of model kinds (``lm``, ``classifier``, ...) matching a wildcard, naturally sorted."""
    from ssmzoo.registry import get_registry, natural_key

    names = get_registry().models
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def list_tasks(pattern: str = "*") -> list[str]:
    """Names of tasks (``mqar``, ``sdigits``, ...) matching a wildcard, naturally sorted."""
    from ssmzoo.registry import get_registry, natural_key

    names = get_registry().tasks
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def describe(name: str) -> Description:
    """A unit's or variant's hyperparameters (defaults and docs), paper and variants.

    ``print(ssmzoo.describe("b2s6"))`` gives the table that ``ssmzoo describe b2s6`` prints.
    """
    from ssmzoo.registry import get_registry

    return get_registry().describe(name)


def build(spec: SpecLike, d_model: int, **overrides: Any) -> Any:
    """Build a unit from a spec such as ``"b2s6(h=8, bias=false)"`` at width ``d_model``.

    Keyword ``overrides`` replace (or add) hyperparameters of the spec, validated like the spec's
    own: ``build("b2s6", 64, h=4)`` is ``build("b2s6(h=4)", 64)``. Returns an ``nn.Module``
    mapping (batch, length, d_model) to (batch, length, d_model).
    """
    from ssmzoo.registry import get_registry
    from ssmzoo.spec import parse

    if overrides:
        spec = parse(spec).replace(**overrides)
    return get_registry().build(spec, d_model=d_model)


def build_model(spec: SpecLike, **overrides: Any) -> Any:
    """Build a model from a spec such as ``"lm(mixer=mamba(core=b2s6), d_model=64, n_layers=2)"``."""
    from ssmzoo.registry import get_registry

    return get_registry().build_model(spec, **overrides)


def build_task(spec: SpecLike, **overrides: Any) -> Any:
    """Build a task from a spec such as ``"mqar(seq_len=64, num_kv=8)"``."""
    from ssmzoo.registry import get_registry

    return get_registry().build_task(spec, **overrides)


def __getattr__(name: str) -> Any:
    if name == "parse_spec":
        from ssmzoo.spec import parse

        return parse
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if name == "errors" else getattr(module, name)
    raise AttributeError(f"module 'ssmzoo' has no attribute {name!r}")
