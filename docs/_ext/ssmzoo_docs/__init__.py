"""The parts of the ssmzoo docs that come from the registry.

:mod:`.render` and :mod:`.tables` turn the registry into reST, :mod:`.pages` writes the unit pages
and lists what a build leaves undocumented, :mod:`.docstrings` makes plain-text docstrings safe for
reST; none of them needs Sphinx. :mod:`.extension` is the Sphinx extension that uses them
(``extensions = ["ssmzoo_docs"]`` in ``conf.py``).
"""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> dict[str, Any]:
    from .extension import setup as _setup

    return _setup(app)
