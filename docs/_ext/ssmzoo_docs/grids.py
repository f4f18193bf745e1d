"""reStructuredText for the grids page, generated from the code: the ``[train]`` settings that
the training loop declares, and the built-in grid files shipped as package data. Pure functions,
like :mod:`.render`."""

from __future__ import annotations

from typing import Any

from ssmzoo.registry import natural_key

from .render import hparam_table, inline, list_table, literal, title

__all__ = ["train_settings_rst", "builtin_grids_rst", "grid_target"]


def _count(items: list[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def grid_target(name: str) -> str:
    return f"grid-{name}"


def train_settings_rst(registry: Any = None) -> str:
    """The ``[train]`` keys: name, default, type and doc, as ``TrainConfig`` declares them."""
    from ssmzoo.train.config import TrainConfig

    return "\n".join(hparam_table(TrainConfig.hparams())).rstrip() + "\n"


def builtin_grids_rst(registry: Any) -> str:
    """One section per built-in grid: its description, its size, and the file itself. Each file
    is validated against the registry here, so a built-in grid that names an unknown unit, task
    or key fails the docs build too."""
    from ssmzoo.grid import builtin_grids, load_grid

    grids = builtin_grids()
    if not grids:
        return "No built-in grid ships with this build.\n"
    out: list[str] = []
    summary = []
    for name in sorted(grids, key=natural_key):
        cfg = load_grid(str(grids[name]), registry=registry)
        cells = getattr(cfg, "cells", None)
        summary.append([f":ref:`{name} <{grid_target(name)}>`", inline(cfg.description),
                        str(len(cells)) if cells is not None else ""])
        out += [f".. _{grid_target(name)}:", ""]
        out += title(name, "~")
        if cfg.description:
            out += [inline(cfg.description), ""]
        out += [f"``ssmzoo grid run {name}``: {_count(cfg.variants, 'variant')} × "
                f"{_count(cfg.tasks, 'task')} × {_count(cfg.seeds, 'seed')}"
                + (f" × {', '.join(literal(k) for k in cfg.sweep)} swept" if cfg.sweep else "")
                + (f", {len(cells)} cells." if cells is not None else "."), ""]
        out += [".. code-block:: toml", ""]
        out += [f"   {line}".rstrip() for line in grids[name].read_text(encoding="utf-8")
                .splitlines()]
        out.append("")
    head = list_table(["grid", "description", "cells"], summary, widths=[20, 70, 10])
    return "\n".join([*head, *out]).rstrip() + "\n"
