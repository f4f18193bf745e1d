"""Grid files are validated before any training: nearest names, file and line, expansion."""

from __future__ import annotations

import pytest

from ssmzoo.errors import ConfigError, UnknownNameError
from ssmzoo.grid import builtin_grids, find_grid, load_grid, parse_grid, run_grid
from tests.grid.conftest import FAST_TASK, TOKEN_TASK

GOOD = f"""
name = "demo"
variants = ["tiny", "tiny(scale=2.0)"]
tasks = ["{FAST_TASK}",
         "{TOKEN_TASK}"]
seeds = [0, 1]

[model]
d_model = 8

[train]
steps = 4
batch_size = 8

[sweep]
"train.lr" = [1e-3, 1e-2]
"variant.scale" = [0.5, 1.0]
"""


def test_expands_the_cross_product(tiny_registry) -> None:
    cfg = parse_grid(GOOD, registry=tiny_registry)
    assert len(cfg.cells) == 2 * 2 * 2 * 2 * 2
    keys = [c.key for c in cfg.cells]
    assert len(set(keys)) == len(keys)
    c = cfg.cells[0]
    assert c.seed == 0 and c.sweep == {"train.lr": 1e-3, "variant.scale": 0.5}
    assert c.variant == "tiny(scale=0.5)" and c.label_variant == "tiny"
    assert c.train["lr"] == 1e-3 and c.train["steps"] == 4
    assert c.model_spec.startswith("regressor(mixer=tiny(scale=0.5)")
    # the key is stable: same text, same keys
    assert [x.key for x in parse_grid(GOOD, registry=tiny_registry).cells] == keys


def _error(text: str, reg) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_grid(text, path="g.toml", registry=reg)
    return info.value


@pytest.mark.parametrize("old,new,line,hint", [
    ('"tiny(scale=2.0)"', '"tinny(scale=2.0)"', 3, "did you mean 'tiny'"),
    (f'"{TOKEN_TASK}"', f'"{TOKEN_TASK.replace("keep_nth", "keep_nht")}"', 5,
     "did you mean 'keep_nth'"),
    ("batch_size = 8", "batchsize = 8", 13, "did you mean 'batch_size'"),
    ("d_model = 8", "dmodel = 8", 9, "did you mean 'd_model'"),
    ('"variant.scale"', '"variant.scal"', 17, "has no hyperparameter 'scal'"),
    ('"train.lr"', '"trian.lr"', 16, "did you mean 'train'"),
    ("seeds = [0, 1]", "seeds = [0, 1]\nvariant = 3", 7, "did you mean 'variants'"),
])
def test_errors_name_the_line_and_the_nearest(tiny_registry, old, new, line, hint) -> None:
    text = GOOD.replace(old, new)
    assert text != GOOD
    err = _error(text, tiny_registry)
    assert str(err).startswith(f"g.toml:{line}:"), str(err)
    assert hint in str(err)


def test_misspelt_variant_fails_before_any_training(tiny_registry, write_grid, tmp_path) -> None:
    path = write_grid(GOOD.replace('"tiny(scale=2.0)"', '"tiny-hlaf"'))
    with pytest.raises(ConfigError, match="did you mean 'tiny-half'"):
        run_grid(str(path), out=tmp_path / "out", registry=tiny_registry, progress=False)
    assert not (tmp_path / "out").exists()  # nothing was trained or written


def test_bad_values_are_reported(tiny_registry) -> None:
    assert "not valid TOML" in str(_error("variants = [", tiny_registry))
    assert "seeds must be" in str(_error(GOOD.replace("seeds = [0, 1]", "seeds = []"),
                                         tiny_registry))
    err = _error(GOOD.replace("steps = 4", 'steps = "four"'), tiny_registry)
    assert str(err).startswith("g.toml:12:") and "'steps' expects int" in str(err)
    err = _error(GOOD.replace("d_model = 8", 'd_model = "wide"'), tiny_registry)
    assert str(err).startswith("g.toml:9:") and "d_model" in str(err)
    err = _error(GOOD.replace('"tiny",', '"tiny(", '), tiny_registry)
    assert "g.toml:3:" in str(err) and "bad spec" in str(err)
    err = _error(GOOD.replace("n_train=128", "n_train=128, num_kv=3", 1), tiny_registry)
    assert str(err).startswith("g.toml:4:") and "has no hyperparameter 'num_kv'" in str(err)


def test_builtin_grids_are_found_by_name() -> None:
    assert "quickstart" in builtin_grids()
    assert find_grid("quickstart").name == "quickstart.toml"
    with pytest.raises(UnknownNameError, match="did you mean 'quickstart'"):
        find_grid("quikstart")


def test_quickstart_validates_against_the_installed_zoo() -> None:
    cfg = load_grid("quickstart")
    assert len(cfg.seeds) == 2 and "sdigits" in cfg.tasks
    assert {"s4d", "s6", "b2s6", "b2s6-nobias", "mamba2"} >= set(cfg.variants)
    assert len(cfg.variants) >= 3


@pytest.mark.parametrize("name", sorted(builtin_grids()))
def test_every_builtin_grid_validates(name: str) -> None:
    from ssmzoo.registry import get_registry

    cfg = load_grid(name, registry=get_registry())
    assert cfg.cells and cfg.name
