"""reStructuredText for the grids page, generated from the code: the ``[train]`` settings that
the training loop declares, and the built-in grid files shipped as package data. Pure functions,
like :mod:`.render`."""

from __future__ import annotations

from typing import Any

from ssmzoo.errors import SSMZooError
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
    is validated against the registry here; one that does not validate is shown with the error in
    a warning box on the page (its own tests are what fail on it)."""
    from ssmzoo.grid import builtin_grids, load_grid

    grids = builtin_grids()
    if not grids:
        return "No built-in grid ships with this build.\n"
    out: list[str] = []
    summary = []
    for name in sorted(grids, key=natural_key):
        out += [f".. _{grid_target(name)}:", ""]
        out += title(name, "~")
        try:
            cfg = load_grid(str(grids[name]), registry=registry)
        except SSMZooError as exc:  # shown on the page; the grid's own tests fail on it
            summary.append([f":ref:`{name} <{grid_target(name)}>`",
                            "does not validate in this build", ""])
            out += [".. warning::", "",
                    f"   This grid does not validate against the registry of this build: "
                    f"{inline(str(exc))}", ""]
        else:
            cells = cfg.cells
            summary.append([f":ref:`{name} <{grid_target(name)}>`", inline(cfg.description),
                            str(len(cells))])
            if cfg.description:
                out += [inline(cfg.description), ""]
            out += [f"``ssmzoo grid run {name}``: {_count(cfg.variants, 'variant')} × "
                    f"{_count(cfg.tasks, 'task')} × {_count(cfg.seeds, 'seed')}"
                    + (f" × {', '.join(literal(k) for k in cfg.sweep)} swept" if cfg.sweep
                       else "") + f", {len(cells)} cells.", ""]
        out += [".. code-block:: toml", ""]
        out += [f"   {line}".rstrip() for line in grids[name].read_text(encoding="utf-8")
                .splitlines()]
        out.append("")
    head = list_table(["grid", "description", "cells"], summary, widths=[20, 70, 10])
    return "\n".join([*head, *out]).rstrip() + "\n"
