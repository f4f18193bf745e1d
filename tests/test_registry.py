"""Registry contracts: strict names, wildcard listing, describe, variants with overrides, errors."""

from __future__ import annotations

from typing import Literal

import pytest
from torch import nn

import ssmzoo
from ssmzoo.errors import (
    DuplicateNameError,
    HyperparameterTypeError,
    MissingHyperparameterError,
    UnknownBackendError,
    UnknownKeyError,
    UnknownUnitError,
)
from ssmzoo.registry import Registry, get_registry, natural_key
from ssmzoo.spec import Spec, parse


class Core(nn.Module):
    """A test core.

    Args:
        h: number of blocks.
        bias: whether to add the bias.
        init: initialisation of A.
        dt_rank: rank of the Δ projection, or "auto".
        lr: a float.
        scales: per-layer scales.
    """

    def __init__(self, d_model: int, h: int = 8, bias: bool = True,
                 init: Literal["lin", "inv", "real"] = "lin",
                 dt_rank: int | Literal["auto"] = "auto", lr: float = 1e-3,
                 scales: list[float] | None = None):
        super().__init__()
        self.d_model, self.h, self.bias, self.init, self.dt_rank = d_model, h, bias, init, dt_rank
        self.lr, self.scales = lr, scales


class Block(nn.Module):
    """A test block wrapping a core.

    Args:
        core: the core's spec.
        expand: expansion factor.
    """

    def __init__(self, d_model: int, core: Spec = "core", expand: int = 2):
        super().__init__()
        self.core = get_registry_under_test().build(core, d_model=d_model * expand)


class NeedsK(nn.Module):
    """Args:
        k: required.
    """

    def __init__(self, d_model: int, k: int):
        super().__init__()


_REG: Registry | None = None


def get_registry_under_test() -> Registry:
    assert _REG is not None
    return _REG


@pytest.fixture
def reg():
    global _REG
    r = Registry()
    r.current_plugin = "alpha"
    r.unit("core", Core, paper="Someone et al. 2025")
    r.unit("block", Block, role="block")
    r.unit("needs-k", NeedsK)
    r.variant("core-nobias", "core(bias=false)", doc="drops the bias")
    r.variant("core-nobias-h1", "core-nobias(h=1)", doc="one block, no bias")
    r.variant("block-real", "block(core=core(init=real))", doc="a block with a real core")
    r.current_plugin = "<direct>"
    _REG = r
    yield r
    _REG = None


def test_duplicate_names_raise_naming_both_plugins(reg):
    reg.current_plugin = "beta"
    with pytest.raises(DuplicateNameError) as info:
        reg.unit("core", Core)
    assert "'alpha'" in str(info.value) and "'beta'" in str(info.value)
    with pytest.raises(DuplicateNameError):
        reg.variant("core", "core(h=2)")  # units and variants share one namespace
    with pytest.raises(DuplicateNameError):
        reg.unit("core-nobias", Core)


def test_bad_names_are_refused(reg):
    with pytest.raises(ssmzoo.errors.SSMZooError):
        reg.unit("has space", Core)


def test_list_units_wildcards_and_natural_sort():
    r = Registry()
    for n in ["s10", "s6", "s4d", "b2s6-h64", "b2s6-h8", "b2s6-h1", "b2s6"]:
        r.unit(n, Core)
    assert r.list_units() == ["b2s6", "b2s6-h1", "b2s6-h8", "b2s6-h64", "s4d", "s6", "s10"]
    assert r.list_units("b2s6-h*") == ["b2s6-h1", "b2s6-h8", "b2s6-h64"]
    assert r.list_units("s?") == ["s6"]
    assert sorted(["x10", "x9"], key=natural_key) == ["x9", "x10"]


def test_build_validates_and_coerces(reg):
    m = reg.build("core(h=4, lr=1, init=real, dt_rank=3, scales=[1, 0.5])", d_model=16)
    assert (m.d_model, m.h, m.init, m.dt_rank) == (16, 4, "real", 3)
    assert m.lr == 1.0 and type(m.lr) is float  # an int where a float is declared is fine
    assert m.scales == [1.0, 0.5]
    assert reg.build("core(dt_rank=auto)", d_model=8).dt_rank == "auto"
    assert m.ssmzoo_spec == "core(h=4, lr=1.0, init=real, dt_rank=3, scales=[1.0, 0.5])"


def test_variants_resolve_and_accept_overrides(reg):
    assert reg.resolve("core-nobias") == parse("core(bias=false)")
    assert reg.resolve("core-nobias(h=4)") == parse("core(bias=false, h=4)")
    assert reg.resolve("core-nobias-h1") == parse("core(bias=false, h=1)")
    assert reg.resolve("core-nobias-h1(bias=true)") == parse("core(bias=true, h=1)")
    m = reg.build("core-nobias(h=4)", d_model=8)
    assert (m.bias, m.h) == (False, 4)
    b = reg.build("block-real(expand=1)", d_model=8)
    assert b.core.init == "real" and b.core.d_model == 8


def test_nested_specs_are_validated(reg):
    with pytest.raises(UnknownUnitError) as info:
        reg.resolve("block(core=cor)")
    assert "did you mean 'core'" in str(info.value)
    with pytest.raises(UnknownKeyError):
        reg.resolve("block(core=core(hh=2))")


def test_unknown_unit_suggests_nearest(reg):
    with pytest.raises(UnknownUnitError) as info:
        reg.build("cor(h=2)", d_model=8)
    assert str(info.value).startswith("no unit named 'cor'; did you mean 'core'")
    assert "core" in info.value.suggestions


def test_unknown_key_suggests_nearest(reg):
    with pytest.raises(UnknownKeyError) as info:
        reg.build("core(bais=false)", d_model=8)
    msg = str(info.value)
    assert "'bais'" in msg and "did you mean 'bias'" in msg and "unit 'core'" in msg


@pytest.mark.parametrize("spec,key,expected", [
    ("core(h=2.5)", "h", "int"),
    ("core(h=true)", "h", "int"),
    ("core(bias=1)", "bias", "bool"),
    ("core(init=legs)", "init", "lin | inv | real"),
    ("core(dt_rank=fast)", "dt_rank", "int | auto"),
    ("core(lr=\"big\")", "lr", "float"),
    ("core(scales=[1, x])", "scales", "list of float"),
    ("block(core=3)", "core", "spec"),
])
def test_wrong_value_types_name_key_type_and_value(reg, spec, key, expected):
    with pytest.raises(HyperparameterTypeError) as info:
        reg.resolve(spec)
    err = info.value
    assert err.key == key and expected in str(err)
    assert "got" in str(err)


def test_missing_required(reg):
    with pytest.raises(MissingHyperparameterError):
        reg.build("needs-k", d_model=4)
    assert reg.build("needs-k(k=2)", d_model=4) is not None


def test_describe(reg):
    d = reg.describe("core")
    text = str(d)
    for h in ("h", "bias", "init", "dt_rank", "lr", "scales"):
        assert h in [p.name for p in d.hparams]
    assert "number of blocks." in text and "Someone et al. 2025" in text
    assert "core-nobias" in text and "core-nobias-h1" in text  # variants are listed
    dv = reg.describe("core-nobias-h1")
    assert dv.spec == "core-nobias(h=1)" and dv.overrides == {"bias": False, "h": 1}
    assert "one block, no bias" in str(dv)


def test_unknown_backend(reg):
    with pytest.raises(UnknownBackendError) as info:
        reg.get_backend("tritno")
    assert "auto" in str(info.value)


# ---- contracts over the real, plugin-filled registry: every registered name ----------------------
ALL_NAMES = ssmzoo.list_units()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_name_is_described_and_documented(name):
    d = ssmzoo.describe(name)
    assert d.doc.strip(), f"{name} has no one-line doc"
    undocumented = [h.name for h in d.hparams if not h.doc.strip()]
    assert not undocumented, f"{name}: hyperparameters without a doc line: {undocumented}"
    # its spec resolves and prints canonically
    resolved = get_registry().resolve(name)
    assert parse(str(resolved)) == resolved


def test_real_registry_loaded_some_plugins():
    names = [p.name for p in get_registry().plugins]
    assert {"reference", "s4d", "s6", "mamba2", "b2s6", "kernels"} <= set(names)


# ---- transactions -----------------------------------------------------------------------------
def test_transaction_reports_what_it_registered_and_restores_the_owner() -> None:
    reg = Registry()
    with reg.transaction(owner="alpha") as tx:
        reg.unit("ta", Core)
        reg.variant("ta-v", "ta(k=2)")
    assert tx.registered == [("unit", "ta"), ("variant", "ta-v")] and not tx.rolled_back
    assert reg.units["ta"].plugin == "alpha" and reg.current_plugin == "<direct>"


def test_transaction_rolls_back_everything_on_error() -> None:
    reg = Registry()
    reg.unit("keep", Core)
    with pytest.raises(DuplicateNameError, match="'keep'.*'<direct>'.*'beta'"):
        with reg.transaction(owner="beta") as tx:
            reg.unit("gone", Core)
            reg.unit("keep", Core)
    assert tx.rolled_back and tx.registered == []
    assert reg.list_units() == ["keep"] and reg.current_plugin == "<direct>"


def test_unregister_names_a_bad_kind() -> None:
    reg = Registry()
    with reg.transaction(owner="a") as tx:
        reg.unit("x1", Core)
    reg.unregister(tx.registered)
    assert reg.list_units() == []
    with pytest.raises(UnknownKeyError, match="'units'.*did you mean 'unit'"):
        reg.unregister([("units", "x1")])


def test_registry_plugins_hookspecs_import_no_circle() -> None:
    """Module-level imports (TYPE_CHECKING blocks included) among the three form no cycle."""
    import ast
    import importlib.util

    mods = ("ssmzoo.registry", "ssmzoo.plugins", "ssmzoo.hookspecs")
    graph: dict[str, set[str]] = {}
    for mod in mods:
        tree = ast.parse(open(importlib.util.find_spec(mod).origin).read())
        found: set[str] = set()
        stack = list(tree.body)
        while stack:  # module level and inside if/try at module level, never in functions
            node = stack.pop()
            if isinstance(node, (ast.If, ast.Try)):
                stack += node.body + node.orelse + getattr(node, "finalbody", [])
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[mod] = {m for m in mods if m in found and m != mod}
    assert graph["ssmzoo.hookspecs"] == set()
    assert graph["ssmzoo.registry"] == set()  # the registry knows no loader and no hookspec
    assert graph["ssmzoo.plugins"] == {"ssmzoo.registry", "ssmzoo.hookspecs"}


# ---- a backend that fails at call time under auto ---------------------------------------------
def _scan_inputs():
    import torch

    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 4, 7, generator=g)
    return dict(u=u, delta=torch.rand(2, 4, 7, generator=g), A=-torch.rand(4, 3, generator=g),
                B=torch.randn(4, 3, generator=g), C=torch.randn(4, 3, generator=g))


def test_auto_backend_that_raises_is_named_with_how_to_exclude_it(monkeypatch) -> None:
    from ssmzoo.errors import BackendUnavailableError
    from ssmzoo.scan.backend import ScanBackend
    from ssmzoo.scan.reference import ReferenceBackend

    class Exploding(ScanBackend):
        name, ops = "boom", ("selective_scan",)

        def available(self):
            return True, ""

        def priority(self, device_type):
            return -100  # before the reference

        def supports_selective_scan(self, call):
            return True, ""

        def selective_scan(self, call):
            raise RuntimeError("kernel exploded")

    reg = Registry()
    reg.backend("reference", ReferenceBackend())
    reg.backend("boom", Exploding())
    monkeypatch.setattr(ssmzoo.registry, "get_registry", lambda: reg)
    monkeypatch.delenv("SSMZOO_BLOCK_BACKENDS", raising=False)
    with pytest.raises(BackendUnavailableError) as info:
        ssmzoo.selective_scan(**_scan_inputs())
    msg = str(info.value)
    assert "backend 'boom'" in msg and "RuntimeError: kernel exploded" in msg
    assert "SSMZOO_BLOCK_BACKENDS=boom" in msg and isinstance(info.value.__cause__, RuntimeError)
    # the hint works: blocked, auto takes the reference and gives its numbers
    monkeypatch.setenv("SSMZOO_BLOCK_BACKENDS", "boom")
    kw = _scan_inputs()
    out = ssmzoo.selective_scan(**kw)
    ref = ssmzoo.selective_scan(**kw, backend="reference")
    assert out.shape == (2, 4, 7) and bool((out == ref).all())
    with pytest.raises(BackendUnavailableError, match="'boom'.*blocked by SSMZOO_BLOCK_BACKENDS"):
        ssmzoo.selective_scan(**kw, backend="boom")


def test_cli_block_backend_marks_it_and_keeps_it_out_of_auto(monkeypatch, capsys) -> None:
    from ssmzoo.cli import main

    monkeypatch.setenv("SSMZOO_BLOCK_BACKENDS", "")  # restored after the test
    assert main(["--block-backend", "reference", "backends"]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("reference "))
    assert "blocked by SSMZOO_BLOCK_BACKENDS" in line
    from ssmzoo.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="'reference'.*blocked"):
        ssmzoo.selective_scan(**_scan_inputs(), backend="reference")
