"""Sphinx extension: the parts of the ssmzoo docs that come from the registry.

- At ``builder-inited`` it writes one page per registered unit, and the table of all units and
  named variants, under ``docs/units/`` (git-ignored; rewritten only when the text changes).
- Directives for the hand-written pages: ``.. ssmzoo-hooks::``, ``.. ssmzoo-backends::``,
  ``.. ssmzoo-tasks::``, ``.. ssmzoo-models::``, ``.. ssmzoo-plugins::``.
- It escapes the ``|`` of plain-text math in docstrings (``|u_1|``), which reST would read as a
  substitution (:mod:`.docstrings`).
- At ``env-check-consistency`` it warns (an error under ``-W``) when a plugin failed to load, or
  when a registered unit, named variant, hook, task or model has no page or section, so a build
  from a broken or partly documented registry cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from . import cli, docstrings, grids, tables
from .pages import UNITS_DIR, generate_unit_pages, missing_docs, registry

logger = logging.getLogger(__name__)

def _on_builder_inited(app: Sphinx) -> None:
    generate_unit_pages(Path(app.srcdir) / UNITS_DIR)


# ---- directives ---------------------------------------------------------------------------------

class _Generated(SphinxDirective):
    """Parses reST generated from the registry in place of the directive."""

    has_content = False
    render: Callable[[Any], str]

    def run(self) -> list[nodes.Node]:
        try:
            text = type(self).render(registry())
        except Exception as exc:  # noqa: BLE001 - reported as a build warning, with its place
            logger.warning("ssmzoo docs: `.. %s::` could not be generated: %s: %s", self.name,
                           type(exc).__name__, exc, location=self.get_location(),
                           type="ssmzoo", subtype="generate")
            return []
        source = f"<{self.name} generated from the ssmzoo registry>"
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(text.splitlines(), source=source), node)
        return list(node.children)


def _directive(name: str, func: Callable[[Any], str]) -> type[_Generated]:
    return type(f"{name.title().replace('-', '')}Directive", (_Generated,),
                {"render": staticmethod(func)})


DIRECTIVES: dict[str, Callable[[Any], str]] = {
    "ssmzoo-hooks": tables.hooks_rst,
    "ssmzoo-backends": tables.backends_rst,
    "ssmzoo-scan-support": tables.support_rst,
    "ssmzoo-plugins": tables.plugins_rst,
    "ssmzoo-train-settings": grids.train_settings_rst,
    "ssmzoo-cli": cli.cli_rst,
    "ssmzoo-builtin-grids": grids.builtin_grids_rst,
    "ssmzoo-tasks": lambda reg: tables.entries_rst(reg, reg.tasks, "task", tables.task_target),
    "ssmzoo-models": lambda reg: tables.entries_rst(reg, reg.models, "model",
                                                    tables.model_target),
}


class PresentToctree(SphinxDirective):
    """A toctree of the listed documents that exist, for pages that other people add later
    (``.. ssmzoo-toctree-if-present::`` with one docname per line; options as ``toctree``'s
    ``:caption:`` and ``:maxdepth:``). A missing document is left out without a warning."""

    has_content = True
    option_spec = {"caption": lambda x: x, "maxdepth": lambda x: x}

    def run(self) -> list[nodes.Node]:
        src = Path(self.env.srcdir)
        present = [name.strip() for name in self.content if name.strip() and any(
            (src / f"{name.strip()}{suffix}").exists() for suffix in self.config.source_suffix)]
        if not present:
            return []
        lines = [".. toctree::"] + [f"   :{k}: {v}" for k, v in self.options.items()]
        lines += [""] + [f"   {name}" for name in present]
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source=self.get_source_info()[0]),
                                 node)
        return list(node.children)


def _on_check_consistency(app: Sphinx, env: Any) -> None:
    labels = set(env.get_domain("std").labels)
    for message in missing_docs(registry(), labels, set(env.found_docs)):
        logger.warning("ssmzoo docs: %s", message, type="ssmzoo", subtype="missing")


def _on_get_outdated(app: Sphinx, env: Any, added: set[str], changed: set[str],
                     removed: set[str]) -> list[str]:
    """Pages whose content depends on the registry or on optional files are read on every build."""
    return [doc for doc in env.found_docs if doc in _ALWAYS_REREAD or doc.startswith(UNITS_DIR)]


def _on_before_read_docs(app: Sphinx, env: Any, docnames: list[str]) -> None:
    """Forget every page about to be read before reading any, so that a label moving from one
    generated page to another (a variant whose home changed) is not reported as a duplicate by an
    incremental build."""
    for docname in docnames:
        app.events.emit("env-purge-doc", env, docname)
        env.clear_doc(docname)


_ALWAYS_REREAD = {"index", "hooks", "scan", "plugins", "models", "tasks", "grids", "cli"}


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", _on_get_outdated)
    app.connect("env-before-read-docs", _on_before_read_docs)
    app.connect("autodoc-process-docstring", docstrings.process_docstring)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-check-consistency", _on_check_consistency)
    for name, func in DIRECTIVES.items():
        app.add_directive(name, _directive(name, func))
    app.add_directive("ssmzoo-toctree-if-present", PresentToctree)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
