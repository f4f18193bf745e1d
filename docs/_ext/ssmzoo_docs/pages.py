"""The files and checks of the generated docs, without Sphinx: unit pages written to a
directory, and the list of registered names that a build does not document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import render, tables

UNITS_DIR = "units"


def registry() -> Any:
    import ssmzoo

    return ssmzoo.get_registry()


# ---- generated files ----------------------------------------------------------------------------

def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def generate_unit_pages(outdir: Path, reg: Any | None = None) -> dict[str, Path]:
    """Write ``index.rst`` and one ``<unit>.rst`` per registered unit into ``outdir``; remove
    pages of units that are no longer registered. Returns {unit name or "index": path}."""
    reg = registry() if reg is None else reg
    outdir.mkdir(parents=True, exist_ok=True)
    written = {"index": outdir / "index.rst"}
    write_if_changed(written["index"], render.units_index(reg))
    for name in reg.units:
        path = outdir / f"{render.unit_docname(name)}.rst"
        write_if_changed(path, render.unit_page(reg, name))
        written[name] = path
    keep = set(written.values())
    for stale in outdir.glob("*.rst"):
        if stale not in keep:
            stale.unlink()
    return written


# ---- the check: everything registered has its page ----------------------------------------------

def missing_docs(reg: Any, labels: set[str], docnames: set[str]) -> list[str]:
    """What is registered but has no page or section in a build with these labels and
    documents: one message per missing item (empty when complete)."""
    out = []
    for info in reg.plugins:
        if info.state == "failed":
            out.append(f"plugin {info.name!r} ({info.distribution} {info.version}) failed to "
                       f"load, so its names are missing from the docs: {info.error}")
    for name in reg.units:
        if f"{UNITS_DIR}/{render.unit_docname(name)}" not in docnames:
            out.append(f"unit {name!r} has no page {UNITS_DIR}/{name}.rst")
        elif render.unit_target(name) not in labels:
            out.append(f"unit {name!r}: its page has no label {render.unit_target(name)!r}")
    for name in reg.variants:
        if render.variant_target(name) not in labels:
            out.append(f"named variant {name!r} is on no unit page (its unit failed to "
                       "register, or the variant does not resolve)")
    for name in tables.hook_names():
        if render.hook_target(name) not in labels:
            out.append(f"hook {name!r} is documented nowhere (add `.. ssmzoo-hooks::` to a page)")
    for name in reg.tasks:
        if tables.task_target(name) not in labels:
            out.append(f"task {name!r} is documented nowhere (add `.. ssmzoo-tasks::` to a page)")
    for name in reg.models:
        if tables.model_target(name) not in labels:
            out.append(f"model {name!r} is documented nowhere "
                       "(add `.. ssmzoo-models::` to a page)")
    return out
