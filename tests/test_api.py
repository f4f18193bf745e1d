"""The top-level helpers: build with keyword overrides, listings of models and tasks."""

from __future__ import annotations

import pytest

import ssmzoo
from ssmzoo.errors import SSMZooError


def test_build_takes_keyword_overrides() -> None:
    assert ssmzoo.build("b2s6", 32, h=4).ssmzoo_spec == ssmzoo.build("b2s6(h=4)", 32).ssmzoo_spec
    # overrides apply to named variants too, and replace what the spec says
    assert "h=2" in ssmzoo.build("b2s6-nobias(h=4)", 32, h=2).ssmzoo_spec


def test_build_overrides_are_validated() -> None:
    with pytest.raises(SSMZooError, match="hh"):
        ssmzoo.build("b2s6", 32, hh=4)


def test_list_models_and_tasks() -> None:
    assert ssmzoo.list_models() == ["classifier", "lm", "regressor"]
    tasks = ssmzoo.list_tasks()
    assert {"mqar", "sdigits", "listops", "pathfinder"} <= set(tasks)
    assert ssmzoo.list_tasks("l*") == [t for t in tasks if t.startswith("l")]
