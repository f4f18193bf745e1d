"""Sphinx configuration of the ssmzoo documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` and
``sphinx-build -W -b doctest docs docs/_build/doctest``. The build works offline; set
``SSMZOO_DOCS_INTERSPHINX=1`` to link Python and PyTorch names to their own docs (needs network).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import ssmzoo  # noqa: E402

project = "ssmzoo"
author = "the ssmzoo authors"
copyright = "2026, the ssmzoo authors"  # noqa: A001
release = ssmzoo.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "ssmzoo_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
smartquotes = False  # keep "--option", 'quotes' and spec strings as written
exclude_patterns = ["_build", "examples/**", "**/.pytest_cache"]
templates_path: list[str] = []

# -- theme -----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"ssmzoo {release}"
html_static_path: list[str] = []

# -- autodoc and napoleon (Google-style docstrings, as the code is written) --------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# -- doctest: docstring examples (``>>>``) and ``.. doctest::`` blocks both run ----------------------
doctest_global_setup = """
import os
import torch
import ssmzoo
torch.manual_seed(0)
"""
doctest_test_doctest_blocks = "default"

# -- myst, for the Markdown pages (benchmarks, reproductions) -----------------------------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# -- intersphinx: only on request, since the build must pass offline ---------------------------------
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("SSMZOO_DOCS_INTERSPHINX", "").strip().lower() in ("1", "true", "yes"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
    }

nitpicky = False
