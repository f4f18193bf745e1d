"""The documentation: generated pages cover the registry, the example plugin works, Sphinx builds.

The generator is checked directly (no Sphinx needed): every registered unit has a page with its
hyperparameter table, every named variant sits on its unit's page, every hook has a section, and
the build-time check flags what is missing. The example plugin package of the "Writing a plugin"
page is pip-installed into a temporary directory and used from a fresh interpreter. The full Sphinx
build (``-W`` html, then doctest) runs when Sphinx, furo and myst-parser are installed (the
``docs`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ssmzoo
from ssmzoo.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "ssmzoo-lru"
sys.path.insert(0, str(DOCS / "_ext"))

from ssmzoo_docs import cli, docstrings, pages, render, tables  # noqa: E402


def _labels(text: str) -> set[str]:
    return {line[4:-1] for line in text.splitlines() if line.startswith(".. _") and
            line.endswith(":")}


def _toy_registry() -> Registry:
    class Toy:
        """A toy unit.

        Args:
            d_model: width.
            width: inner width of the toy | with a bar.
            mode: how it mixes.
        """

        def __init__(self, d_model: int, width: int = 4, mode: str = "sum"):
            self.d_model, self.width, self.mode = d_model, width, mode

    reg = Registry()
    reg.current_plugin = "toyplugin"
    reg.unit("toy", Toy, doc="Toy unit for the docs tests", paper="Nobody 2026")
    reg.variant("toy-wide", "toy(width=64)", doc="a wide toy")
    reg.variant("toy-wide-max", "toy-wide(mode=max)", doc="a variant of a variant")
    return reg


# ---- the generator ------------------------------------------------------------------------------

def test_unit_page_has_declaration_variants_and_paper() -> None:
    reg = _toy_registry()
    page = render.unit_page(reg, "toy")
    assert page.startswith(".. _unit-toy:")
    assert ":paper: Nobody 2026" in page
    for hp in reg.units["toy"].hparams:  # the row: name, then the default as a spec writes it
        row = page.index(f"* - ``{hp.name}``")
        assert page[row:].splitlines()[1].strip() == f"- ``{hp.default_text}``"
    assert [hp.default_text for hp in reg.units["toy"].hparams][0] == "4"
    assert "inner width of the toy \\| with a bar." in page  # '|' escaped for reST
    assert {"unit-toy", "variant-toy-wide", "variant-toy-wide-max"} <= _labels(page)
    assert "= ``toy-wide(mode=max)``" in page
    assert ">>> unit = ssmzoo.build('toy', d_model=16)" in page  # the page's doctest
    assert "unit.step(" not in page  # Toy has no recurrent step to show
    index = render.units_index(reg)
    assert ":ref:`toy <unit-toy>`" in index and "   toy" in index.splitlines()


def test_generated_pages_cover_the_registry(tmp_path: Path) -> None:
    reg = ssmzoo.get_registry()
    written = pages.generate_unit_pages(tmp_path, reg)
    assert set(written) == {"index", *reg.units}
    labels: set[str] = set()
    for name in reg.units:
        text = written[name].read_text(encoding="utf-8")
        labels |= _labels(text)
        for hp in reg.units[name].hparams:
            assert f"* - ``{hp.name}``" in text, f"unit {name!r}: no row for {hp.name!r}"
        own, users = render.variants_by_home(reg, name)
        for v in own:
            assert f".. _{render.variant_target(v.name)}:" in text
        for v in users:  # a variant nesting this unit is linked from here, labelled at home
            assert f"<{render.variant_target(v.name)}>`" in text
            assert f".. _{render.variant_target(v.name)}:" not in text
    labels |= _labels(tables.hooks_rst(reg))
    labels |= _labels(tables.entries_rst(reg, reg.tasks, "task", tables.task_target))
    labels |= _labels(tables.entries_rst(reg, reg.models, "model", tables.model_target))
    docnames = {f"units/{name}" for name in reg.units}
    assert pages.missing_docs(reg, labels, docnames) == []
    # a stale page of a unit that is no longer registered is removed
    (tmp_path / "gone.rst").write_text("stale")
    pages.generate_unit_pages(tmp_path, reg)
    assert not (tmp_path / "gone.rst").exists()


def test_check_flags_what_has_no_page() -> None:
    reg = _toy_registry()
    page_labels = _labels(render.unit_page(reg, "toy")) | _labels(tables.hooks_rst(reg))
    assert pages.missing_docs(reg, page_labels, {"units/toy"}) == []
    missing = pages.missing_docs(reg, page_labels - {"variant-toy-wide"}, {"units/toy"})
    assert len(missing) == 1 and "'toy-wide'" in missing[0]
    missing = pages.missing_docs(reg, page_labels, set())
    assert any("unit 'toy' has no page" in m for m in missing)
    hook = tables.hook_names()[0]
    missing = pages.missing_docs(reg, page_labels - {render.hook_target(hook)}, {"units/toy"})
    assert missing == [f"hook {hook!r} is documented nowhere (add `.. ssmzoo-hooks::` to a page)"]


def test_every_hook_is_documented() -> None:
    from ssmzoo import hookspecs
    from ssmzoo.plugins import PHASES

    names = tables.hook_names()
    assert set(PHASES) <= set(names)
    text = tables.hooks_rst(ssmzoo.get_registry())
    for name in names:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert f".. autofunction:: ssmzoo.hookspecs.{name}" in text
    assert ".. ssmzoo-hooks::" in (DOCS / "hooks.rst").read_text(encoding="utf-8")


def test_every_command_has_a_section() -> None:
    text = cli.cli_rst()
    progs = [prog for prog, _, _ in cli.commands()]
    assert {"ssmzoo", "ssmzoo list", "ssmzoo describe", "ssmzoo plugins"} <= set(progs)
    for prog in progs:
        assert f".. _{cli.command_target(prog)}:" in text
    sub = dict((p, parser) for p, parser, _ in cli.commands())["ssmzoo list"]
    options = {o for a in sub._actions for o in a.option_strings} - {"-h", "--help"}
    assert options and all(f"``{option}" in text for option in options)  # each in its table
    assert ".. ssmzoo-cli::" in (DOCS / "cli.rst").read_text(encoding="utf-8")


def test_every_public_name_is_in_the_api_reference() -> None:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    for name in ssmzoo.__all__:
        assert f"ssmzoo.{name}" in api, f"ssmzoo.{name} is missing from docs/api.rst"


def _examples_in_code() -> list[tuple[str, str]]:
    """(module, qualified name, "" for the module itself) of every docstring with a ``>>>``
    example in the package, the built-in plugins and the kernels."""
    import ast

    found = []
    for top in ("ssmzoo", "plugins", "kernels"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT / top if top != "ssmzoo" else ROOT).with_suffix("")
            module = ".".join(p for p in rel.parts if p != "__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if ">>>" in (ast.get_docstring(tree) or ""):
                found.append((module, ""))
            stack = [(node, "") for node in tree.body]
            while stack:
                node, prefix = stack.pop()
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if ">>>" in (ast.get_docstring(node) or ""):
                        found.append((module, prefix + node.name))
                    if isinstance(node, ast.ClassDef):
                        stack += [(child, f"{prefix}{node.name}.") for child in node.body]
    return found


def test_every_docstring_example_is_on_a_page() -> None:
    """Docstring examples run under ``sphinx -b doctest`` only if a page shows them: each module,
    class or function whose docstring has an example must be autodoc'ed somewhere."""
    reg = ssmzoo.get_registry()
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst"))
    text += "\n".join(render.unit_page(reg, name) for name in reg.units)
    text += tables.entries_rst(reg, reg.tasks, "task", tables.task_target)
    text += tables.entries_rst(reg, reg.models, "model", tables.model_target)
    missing = []
    for module, qualname in _examples_in_code():
        if not qualname:
            ok = f".. automodule:: {module}\n" in text
        else:
            top = qualname.split(".")[0]
            ok = f"{module}.{top}" in text or f".. automodule:: {module}\n   :members:" in text
        if not ok:
            missing.append(f"{module}:{qualname or '<module docstring>'}")
    assert missing == [], "docstring examples that no page shows (so no doctest runs them): " \
        + ", ".join(missing)


def _toml_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: toml`` blocks of a reST page, dedented."""
    import textwrap

    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == ".. code-block:: toml":
            body = []
            for follow in lines[i + 1:]:
                if follow.strip() and not follow.startswith("   "):
                    break
                body.append(follow)
            blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_grid_files_shown_in_the_docs_are_valid() -> None:
    """Every grid file on a hand-written page parses and validates against the registry."""
    from ssmzoo.grid import parse_grid

    shown = 0
    for page in sorted(DOCS.glob("*.rst")):
        for block in _toml_blocks(page.read_text(encoding="utf-8")):
            if "variants" in block:
                cfg = parse_grid(block, path=f"{page.name} (code block)")
                assert cfg.cells, f"{page.name}: a grid with no cells"
                shown += 1
    assert shown >= 2  # the quickstart's and the grids page's


def test_plain_text_math_in_docstrings_is_escaped() -> None:
    lines = ["Target |u_1| and ``|x|`` and :math:`|A|^s`.", "", "Example::", "",
             "    y = |x|", "", ">>> abs(-1) | 0", "1", "", "| a line block"]
    out = docstrings.escape_bars(lines)
    assert out[0] == "Target \\|u_1\\| and ``|x|`` and :math:`|A|^s`."
    assert out[1:] == lines[1:]


def test_plain_text_displays_stay_as_written() -> None:
    lines = ["Per channel:", "", "    h_t = a h_{t-1} + b u_t", "    y_t = c h_t", "",
             "Example::", "", "    x", "", ":param x:", "", "    indented", "", "Text:", "done"]
    out = docstrings.displays_as_literal(lines)
    assert out[0] == "Per channel::"
    assert out[1:] == lines[1:]  # '::' already, a field, and a ':' with no block are left alone


def test_docstring_examples_see_their_module() -> None:
    lines = [">>> parse('a')", "Spec('a')"]
    docstrings.process_docstring(None, "module", "ssmzoo.spec", None, None, lines)
    setup = [line.strip()[4:] for line in lines if line.strip().startswith(">>> globals()")]
    assert len(setup) == 1 and lines[-2:] == [">>> parse('a')", "Spec('a')"]
    ns: dict[str, object] = {}
    exec(setup[0], ns)
    exec("spec = parse('b2s6(h=2)')", ns)
    assert str(ns["spec"]) == "b2s6(h=2)"


def test_backend_tables_answer_for_each_backend() -> None:
    reg = ssmzoo.get_registry()
    support = tables.support_rst(reg)
    for name in reg.backends:
        assert f"``{name}``" in tables.backends_rst(reg)
        assert f"``{name}``" in support
    # the reference backend runs everything on CPU: every probe must say yes
    unavailable, matrix = tables.support_matrix(reg)
    assert set(matrix) == set(tables._scan_cases())
    if "reference" in reg.backends:
        assert "reference" not in unavailable
        refused = {f: a["reference"][1] for f, a in matrix.items() if not a["reference"][0]}
        assert refused == {}


def test_hook_examples_register_working_things() -> None:
    """The example implementations shown on the hooks page: each file exists (and each function
    shown is in it), the float64 backend agrees with the reference on every probed feature, values
    and gradients, and the parity task makes correct labels."""
    import importlib

    import torch

    for path, function in tables.HOOK_EXAMPLES.values():
        assert f"def {function or 'ssmzoo_register_'}" in (DOCS / path).read_text(encoding="utf-8")
    sys.path.insert(0, str(DOCS / "examples" / "hooks"))
    try:
        backend_mod = importlib.import_module("float64_backend")
        task_mod = importlib.import_module("parity_task")
    finally:
        sys.path.remove(str(DOCS / "examples" / "hooks"))
    reg = Registry()
    reg.current_plugin = "examples"
    backend_mod.ssmzoo_register_backends(reg)
    task_mod.ssmzoo_register_tasks(reg)
    reference = ssmzoo.get_registry().get_backend("reference")
    oracle = reg.get_backend("float64")
    assert oracle.priority("cpu") is None and oracle.priority("cuda") is None
    for feature, call in tables._scan_cases().items():
        if "bfloat16" in feature:
            continue  # the oracle casts back to bfloat16: only rounding would be compared
        grads, outs = [], []
        for backend in (reference, oracle):
            fresh = {k: v.detach().clone().requires_grad_(True)
                     for k, v in call.tensors().items()}
            c = type(call)(**{**{f: getattr(call, f) for f in call.__dataclass_fields__}, **fresh})
            run = backend.ssd_scan if feature.startswith("ssd_scan") else backend.selective_scan
            out = run(c)
            out = out[0] if isinstance(out, tuple) else out
            out.float().square().sum().backward()
            outs.append(out.detach())
            grads.append({k: v.grad for k, v in fresh.items()})
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-4, msg=feature)
        for k in grads[0]:
            torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-3, atol=1e-3,
                                       msg=f"{feature}: gradient of {k}")
    task = reg.build_task("parity(seq_len=12, n_train=256)")
    split = task.split("train", seed=3)
    assert split.inputs.shape == (256, 12) and set(split.inputs.unique().tolist()) <= {0, 1}
    assert torch.equal(split.targets, split.inputs.sum(dim=1) % 2)
    assert 0.3 < split.targets.float().mean() < 0.7
    assert not torch.equal(task.split("val", seed=3).inputs[:16], split.inputs[:16])


# ---- the example plugin package -----------------------------------------------------------------

@pytest.fixture(scope="module")
def lru_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/examples/ssmzoo-lru, pip-installed (no deps, no build isolation) into a target dir."""
    work = tmp_path_factory.mktemp("lru")
    src = work / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(work / "site"),
                    str(src)], check=True, capture_output=True)
    return work / "site"


def _run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(DOCS / "_ext")]),
           "SSMZOO_STRICT_PLUGINS": "1"}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False, cwd=cwd)


def test_example_plugin_is_listed_by_the_cli(lru_site: Path) -> None:
    out = _run(lru_site, "-m", "ssmzoo", "list", "lru*")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert names == ["lru", "lru-long"]
    # the transcript on the plugin page is what the command prints (a trailing "..." cuts a line)
    page = (DOCS / "plugins.rst").read_text(encoding="utf-8").splitlines()
    start = page.index("   $ ssmzoo list 'lru*'") + 1
    shown = [line[3:] for line in page[start:start + 2]]
    for doc_line, real in zip(shown, out.stdout.splitlines(), strict=True):
        if doc_line.endswith("..."):
            assert real.startswith(doc_line[:-3].rstrip()), (doc_line, real)
        else:
            assert doc_line == real.rstrip(), (doc_line, real)


def test_example_plugin_passes_its_own_tests(lru_site: Path) -> None:
    """The package's tests (docs/examples/ssmzoo-lru/tests) against the installed plugin: its
    registration, the forward against a float64 loop, step, gradients, use inside a model."""
    out = _run(lru_site, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
               str(lru_site.parent / "src" / "tests"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_example_plugin_passes_the_unit_contract(lru_site: Path) -> None:
    """ssmzoo's registry-wide contract tests, run with the plugin installed, cover its unit and
    variant with no test code of their own (as the plugin page promises)."""
    contract = ROOT / "tests" / "units" / "test_unit_contract.py"
    out = _run(lru_site, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
               str(contract), "-k", "lru", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "failed" not in out.stdout and " passed" in out.stdout


def test_third_party_unit_is_described_and_gets_a_page(lru_site: Path) -> None:
    code = ("import pathlib, tempfile; from ssmzoo.cli import main; from ssmzoo_docs import pages; "
            "main(['describe', 'lru-long']); print('-' * 20); "
            "w = pages.generate_unit_pages(pathlib.Path(tempfile.mkdtemp())); "
            "print(w['lru'].read_text())")
    out = _run(lru_site, "-c", code)
    assert out.returncode == 0, out.stderr
    described, page = out.stdout.split("-" * 20)
    assert "r_min" in described and "0.9" in described and "Orvieto" in described
    assert ".. _unit-lru:" in page and ".. _variant-lru-long:" in page
    assert "* - ``r_max``" in page and "Orvieto et al. 2023" in page


# ---- the Sphinx build ---------------------------------------------------------------------------

def _have_docs_tools() -> bool:
    return all(importlib.util.find_spec(m) for m in ("sphinx", "furo", "myst_parser"))


@pytest.mark.skipif(not _have_docs_tools(), reason="needs the docs extra: "
                    "pip install -e '.[docs]' (sphinx, furo, myst-parser)")
def test_sphinx_builds_clean_and_doctests_pass(tmp_path: Path) -> None:
    doctrees = tmp_path / "doctrees"
    for builder in ("html", "doctest"):
        out = subprocess.run(
            [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
             "-d", str(doctrees), str(DOCS), str(tmp_path / builder)],
            capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "SSMZOO_STRICT_PLUGINS": "1"})
        assert out.returncode == 0, f"sphinx -b {builder} failed:\n{out.stdout}\n{out.stderr}"
    html = tmp_path / "html"
    for name in ssmzoo.list_units(variants=False):
        assert (html / "units" / f"{name}.html").exists(), f"unit {name!r} has no page"
    report = (tmp_path / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert "0 failures in tests" in report
