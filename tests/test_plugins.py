"""Plugins: third-party packages installed with pip, a broken one, a duplicate, strict mode, blocking."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ssmzoo.errors import PluginError
from ssmzoo.plugins import load_plugins
from ssmzoo.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The fixture plugin packages, pip-installed into one target directory."""
    target = tmp_path_factory.mktemp("site")
    for pkg in ("ssmzoo-toy", "ssmzoo-broken", "ssmzoo-dup", "ssmzoo-shadow", "ssmzoo-slow"):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--no-index", "--target", str(target), str(FIXTURES / pkg)],
            check=True, capture_output=True, text=True)
    return target


def run(site, *args, env=None, code=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSMZOO_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env or {})
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "ssmzoo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=300)


def test_third_party_unit_and_variant_appear(site):
    out = run(site, "list", "toy*", env={"SSMZOO_BLOCK_PLUGINS": "broken,zz-dup"})
    assert out.returncode == 0, out.stderr
    assert "toy-ema " in out.stdout and "toy-ema-slow" in out.stdout
    code = textwrap.dedent("""
        import torch, ssmzoo
        assert ssmzoo.list_units("toy*") == ["toy-ema", "toy-ema-slow"]
        m = ssmzoo.build("toy-ema-slow(mode=diff)", d_model=4)
        y = m(torch.randn(2, 5, 4))
        assert y.shape == (2, 5, 4) and m.mode == "diff"
        assert abs(torch.sigmoid(m.logit[0]).item() - 0.99) < 1e-6
        print(ssmzoo.describe("toy-ema"))
    """)
    out = run(site, code=code, env={"SSMZOO_BLOCK_PLUGINS": "broken,zz-dup"})
    assert out.returncode == 0, out.stderr
    assert "decay" in out.stdout and "toy-ema-slow" in out.stdout


def test_broken_plugin_is_reported_and_harms_nothing(site):
    out = run(site, "plugins")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "broken" in text and "ssmzoo-broken 9.9.9" in text and "[failed]" in text
    assert "ModuleNotFoundError" in text and "ssmzoo_this_dependency_does_not_exist" in text
    listing = run(site, "list")
    assert listing.returncode == 0, listing.stderr
    assert "toy-ema" in listing.stdout
    # warned once, naming the plugin
    assert listing.stderr.count("plugin 'broken'") == 1


def test_duplicate_name_rolls_back_the_whole_plugin(site):
    out = run(site, "plugins")
    text = out.stdout
    block = text[text.index("zz-dup"):]
    assert "[failed]" in block.splitlines()[0]
    assert "'toy-ema' is registered twice" in block and "'toy'" in block and "'zz-dup'" in block
    listing = run(site, "list")
    assert "dup-identity" not in listing.stdout  # registered before the clash, rolled back


def test_strict_mode_reraises(site):
    out = run(site, "list", env={"SSMZOO_STRICT_PLUGINS": "1"})
    assert out.returncode == 1
    assert "plugin 'broken'" in out.stderr and "Traceback" not in out.stderr


def test_blocking_a_plugin(site):
    out = run(site, "--block-plugin", "broken", "plugins")
    assert "[blocked]" in out.stdout and "plugin 'broken'" not in out.stderr
    out = run(site, "plugins", env={"SSMZOO_BLOCK_PLUGINS": "broken, zz-dup"})
    assert out.stdout.count("[blocked]") == 2


def test_third_party_cannot_replace_a_builtin(site):
    # aa-shadow sorts before every built-in and registers "shadow-ok" then "s6" (an Identity)
    code = textwrap.dedent("""
        import ssmzoo
        from ssmzoo.cli import main
        from ssmzoo.registry import get_registry
        m = ssmzoo.build("s6", d_model=16)
        print("S6CLASS", type(m).__module__, type(m).__name__)
        names = ssmzoo.list_units()
        assert "mamba" in names and "s6-alg2" in names, names
        assert "shadow-ok" not in names, "the shadowing plugin was not rolled back whole"
        info = {i.name: i for i in get_registry().plugins}
        assert info["aa-shadow"].state == "failed" and info["s6"].state == "loaded"
        assert info["s6"].builtin and not info["aa-shadow"].builtin
        main(["plugins"])
    """)
    out = run(site, code=code, env={"SSMZOO_BLOCK_PLUGINS": "broken,zz-dup"})
    assert out.returncode == 0, out.stderr
    line = next(t for t in out.stdout.splitlines() if t.startswith("S6CLASS"))
    assert "ssmzoo_s6" in line and "Identity" not in line
    block = out.stdout[out.stdout.index("aa-shadow"):]
    assert "[failed]" in block.splitlines()[0]
    error = next(t for t in block.splitlines() if "error:" in t)
    assert "'s6' is registered twice" in error and "'aa-shadow'" in error
    assert "plugin 's6'" in error and "built-ins cannot be replaced" in error
    assert out.stderr.count("ssmzoo plugin 'aa-shadow'") == 1  # warned once


# ---- in-process: entry points made by hand ----------------------------------------------------
def _ep(name, module):
    return EntryPoint(name=name, value=module, group="ssmzoo")


def test_in_process_failure_records_and_rolls_back(tmp_path, monkeypatch):
    (tmp_path / "zoo_half.py").write_text(textwrap.dedent("""
        import ssmzoo
        from torch import nn
        class U(nn.Module):
            '''A unit.'''
            def __init__(self, d_model: int):
                super().__init__()
        @ssmzoo.hookimpl
        def ssmzoo_register_units(registry):
            registry.unit("half-a", U)
        @ssmzoo.hookimpl
        def ssmzoo_register_variants(registry):
            registry.variant("half-v", "half-a")
            raise RuntimeError("boom in variants")
    """))
    (tmp_path / "zoo_fine.py").write_text(textwrap.dedent("""
        import ssmzoo
        from torch import nn
        class U(nn.Module):
            '''A unit.'''
            def __init__(self, d_model: int):
                super().__init__()
        @ssmzoo.hookimpl
        def ssmzoo_register_units(registry):
            registry.unit("fine", U)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SSMZOO_STRICT_PLUGINS", raising=False)
    reg = Registry()
    with pytest.warns(RuntimeWarning, match="boom in variants"):
        infos = load_plugins(reg, [_ep("half", "zoo_half"), _ep("fine", "zoo_fine")])
    by = {i.name: i for i in infos}
    assert by["half"].state == "failed" and "RuntimeError: boom in variants" in by["half"].error
    assert by["fine"].state == "loaded" and by["fine"].registered == [("unit", "fine")]
    assert reg.list_units() == ["fine"]  # half-a was rolled back with the rest of its plugin

    monkeypatch.setenv("SSMZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom in variants"):
        load_plugins(Registry(), [_ep("half", "zoo_half")])


def test_import_loads_no_plugin_and_nothing_heavy():
    code = textwrap.dedent("""
        import sys, time
        t = time.perf_counter()
        import ssmzoo
        dt = time.perf_counter() - t
        import ssmzoo.registry as r
        assert r._REGISTRY is None, "importing ssmzoo loaded the plugins"
        heavy = [m for m in ("triton", "ray", "matplotlib", "torch", "ssmzoo_b2s6", "sklearn")
                 if m in sys.modules]
        assert not heavy, heavy
        print(f"{dt * 1000:.1f}")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 1000


def test_slow_plugin_import_is_named_once(site, tmp_path, monkeypatch, capsys):
    import ssmzoo.plugins as plugins

    (tmp_path / "zoo_quick.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("ssmzoo_slow", "zoo_quick"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.setattr(plugins, "SLOW_IMPORT_SECONDS", 0.1)
    monkeypatch.setenv("SSMZOO_TEST_SLOW_SLEEP", "0.5")
    monkeypatch.delenv("SSMZOO_STRICT_PLUGINS", raising=False)
    infos = load_plugins(Registry(), [_ep("quick", "zoo_quick"), _ep("slow", "ssmzoo_slow")])
    assert [i.state for i in infos] == ["loaded", "loaded"]
    err = capsys.readouterr().err
    assert err.count("still importing plugin") == 1  # once, and not for the quick plugin
    assert "still importing plugin 'slow' (0.1 s)" in err
    assert "SSMZOO_BLOCK_PLUGINS=slow" in err and "--block-plugin slow" in err
