"""The command line: listings, and one readable line with exit code 1 for every user error."""

from __future__ import annotations

from typing import Literal

import pytest
from torch import nn

import ssmzoo.registry as registry_module
from ssmzoo.cli import main
from ssmzoo.registry import Registry


class Core(nn.Module):
    """A core for CLI tests.

    Args:
        h: number of blocks.
        bias: whether to add the bias.
        init: initialisation.
    """

    def __init__(self, d_model: int, h: int = 8, bias: bool = True,
                 init: Literal["lin", "real"] = "lin"):
        super().__init__()


@pytest.fixture
def reg(monkeypatch):
    r = Registry()
    r.current_plugin = "fake"
    r.unit("b2s6", Core, paper="Yu & Erichson 2025")
    r.unit("s6", Core)
    r.variant("b2s6-nobias", "b2s6(bias=false)", doc="no bias")
    monkeypatch.setattr(registry_module, "_REGISTRY", r)
    return r


def test_list_and_describe(reg, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["b2s6", "b2s6-nobias", "s6"]
    assert main(["list", "b2s6*", "--no-variants"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[0].startswith("b2s6")
    assert main(["describe", "b2s6"]) == 0
    out = capsys.readouterr().out
    assert "number of blocks." in out and "b2s6-nobias" in out and "Yu & Erichson" in out
    assert main(["describe", "b2s6-nobias(h=4)"]) == 0
    assert "b2s6(bias=false, h=4)" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["describe", "b2s7"], "no unit named 'b2s7'; did you mean 'b2s6'"),
    (["describe", "b2s6(hh=4)"], "has no hyperparameter 'hh'; did you mean 'h'"),
    (["describe", "b2s6(h=4"], "column 9"),
    (["describe", "b2s6(h=four)"], "hyperparameter 'h' expects int, got 'four'"),
    (["describe", "b2s6(init=legs)"], "expects lin | real"),
    (["list", "zzz*"], "no unit or variant matches"),
])
def test_user_errors_print_one_line_and_exit_1(reg, capsys, argv, needle):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_debug_shows_the_exception(reg):
    from ssmzoo.errors import UnknownUnitError

    with pytest.raises(UnknownUnitError):
        main(["--debug", "describe", "b2s7"])


def test_plugins_and_backends_listing(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("reference", "s4d", "s6", "mamba2", "b2s6", "kernels"):
        assert name in out
    assert main(["backends"]) == 0
