"""Grid files: read the TOML, validate every spec and key before any training, expand the cells.

A grid file names mixer specs (``variants``), task specs (``tasks``), ``seeds``, the model settings
(``[model]``), the training settings (``[train]``) and optional sweeps (``[sweep]``, a list of
values for any dotted setting: ``train.lr``, ``model.d_model``, ``task.seq_len``, ``variant.h``),
crossed with the rest. An error names the file, the line of the offending value and, for a name
or a key, the nearest valid one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssmzoo.errors import ConfigError, SSMZooError, UnknownKeyError, UnknownNameError, did_you_mean
from ssmzoo.grid.store import SQLITE_INT_MAX, SQLITE_INT_MIN
from ssmzoo.spec import parse

if TYPE_CHECKING:
    from ssmzoo.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GridConfig", "Cell", "load_grid", "parse_grid", "builtin_grids", "find_grid"]

TOP_KEYS = ("name", "description", "variants", "tasks", "seeds", "model", "train", "sweep")
SWEEP_SCOPES = ("train", "model", "task", "variant")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a variant on a task with one seed and one choice of swept values."""

    variant: str  # the variant spec as written (canonical), overrides of the sweep applied
    task: str  # the task spec as written (canonical), overrides of the sweep applied
    seed: int
    model: dict[str, Any]  # [model] settings, sweep applied
    train: dict[str, Any]  # the full resolved TrainConfig
    sweep: dict[str, Any] = field(default_factory=dict)  # {"train.lr": 0.003, ...}
    label_variant: str = ""  # the variant as listed in the file (for tables)
    label_task: str = ""  # the task as listed in the file (for tables)
    model_spec: str = ""  # the resolved model spec this cell trains

    @property
    def key(self) -> str:
        """A stable id of what the cell computes (the SQLite primary key)."""
        ident = {"variant": self.variant, "task": self.task, "seed": self.seed,
                 "model": self.model_spec, "train": self.train,
                 "as_listed": [self.label_variant, self.label_task]}
        text = json.dumps(ident, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "variant": self.variant, "task": self.task, "seed": self.seed,
                "model": self.model, "train": self.train, "sweep": self.sweep,
                "label_variant": self.label_variant, "label_task": self.label_task,
                "model_spec": self.model_spec}


@dataclass
class GridConfig:
    """A validated grid file."""

    name: str
    variants: list[str]
    tasks: list[str]
    seeds: list[int]
    model: dict[str, Any]
    train: dict[str, Any]
    sweep: dict[str, list[Any]]
    path: str = "<grid>"
    text: str = ""
    description: str = ""
    cells: list[Cell] = field(default_factory=list)


def builtin_grids() -> dict[str, Path]:
    """The grids shipped as package data (``ssmzoo/grids/NAME.toml``), by name."""
    from importlib import resources

    root = resources.files("ssmzoo.grids")
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".toml")}


def find_grid(name_or_path: str) -> Path:
    """A path to a grid file, or the built-in grid of that name (with the nearest on a typo)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    builtin = builtin_grids()
    stem = name_or_path[:-5] if name_or_path.endswith(".toml") else name_or_path
    if stem in builtin and not path.suffix:
        return builtin[stem]
    if path.suffix == ".toml" or "/" in name_or_path:
        raise ConfigError(f"no grid file at {str(path)!r}")

    class UnknownGridError(UnknownNameError):
        kind = "grid file or built-in grid"
        hint = "built-in: " + (", ".join(sorted(builtin)) or "none")

    raise UnknownGridError(name_or_path, builtin)


# ---- locating values in the TOML text ----------------------------------------------------------
def line_of(text: str, section: str | None, key: str, value: Any = None) -> int | None:
    """The 1-based line of ``key`` (or of ``value`` inside it) in ``[section]`` (None: top level)."""
    lines = text.splitlines()
    current: str | None = None
    start = None
    key_re = re.compile(r'^\s*(?:"([^"]+)"|\'([^\']+)\'|([A-Za-z0-9_.\-]+))\s*=')
    for i, line in enumerate(lines):
        m = re.match(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if m:
            current = m.group(1).strip()
            continue
        km = key_re.match(line)
        if km and current == section and next(g for g in km.groups() if g is not None) == key:
            start = i
            break
    if start is None:
        return None
    if value is None:
        return start + 1
    needles = [str(value)] if not isinstance(value, str) else [f'"{value}"', f"'{value}'", value]
    for i in range(start, len(lines)):
        if i > start and (key_re.match(lines[i]) or re.match(r"^\s*\[[^\[\]]+\]\s*(#.*)?$",
                                                             lines[i])):
            break
        if any(n in lines[i] for n in needles):
            return i + 1
    return start + 1


def _where(cfg_path: str, line: int | None) -> str:
    return f"{cfg_path}:{line}" if line else cfg_path


def _fail(cfg: GridConfig, section: str | None, key: str, value: Any, exc: BaseException) -> ConfigError:
    line = line_of(cfg.text, section, key, value)
    err = ConfigError(f"{_where(cfg.path, line)}: {exc}")
    err.line = line  # type: ignore[attr-defined]
    err.suggestions = getattr(exc, "suggestions", [])  # type: ignore[attr-defined]
    return err


# ---- reading ------------------------------------------------------------------------------------
def load_grid(name_or_path: str, *, registry: Registry | None = None) -> GridConfig:
    """Read and validate a grid file (or a built-in grid by name); the cells are expanded."""
    path = find_grid(name_or_path)
    return parse_grid(path.read_text(), path=str(path), registry=registry)


def parse_grid(text: str, *, path: str = "<grid>", registry: Registry | None = None) -> GridConfig:
    """Validate a grid's TOML text against the registry and expand its cells.

    Raises :class:`~ssmzoo.errors.ConfigError` naming ``path:line`` and the nearest valid name.
    """
    from ssmzoo.registry import get_registry

    registry = registry or get_registry()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    cfg = GridConfig(name=_grid_name(data, path, text), variants=[], tasks=[],
                     seeds=[], model={}, train={}, sweep={}, path=path, text=text,
                     description=str(data.get("description", "")))
    for key in data:
        if key not in TOP_KEYS:
            raise _fail(cfg, None, key, None, UnknownKeyError("grid file", key, TOP_KEYS))
    for key in ("model", "train", "sweep"):
        if not isinstance(data.get(key, {}), dict):
            raise ConfigError(f"{_where(path, line_of(text, None, key))}: {key} must be a table "
                              f"([{key}]), got {data[key]!r}")
    cfg.variants = _spec_list(cfg, data, "variants")
    cfg.tasks = _spec_list(cfg, data, "tasks")
    seeds = data.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool)
                                                      for s in seeds)):
        raise ConfigError(f"{_where(path, line_of(text, None, 'seeds'))}: seeds must be a "
                          f"non-empty list of ints, got {seeds!r}")
    for s in seeds:
        if not SQLITE_INT_MIN <= s <= SQLITE_INT_MAX:
            raise ConfigError(f"{_where(path, line_of(text, None, 'seeds', s))}: seeds: {s} is "
                              f"outside the integer range the results database stores "
                              f"[{SQLITE_INT_MIN}, {SQLITE_INT_MAX}]")
    cfg.seeds = list(dict.fromkeys(seeds))
    cfg.model, cfg.train = dict(data.get("model", {})), dict(data.get("train", {}))
    cfg.sweep = dict(data.get("sweep", {}))
    _validate(cfg, registry)
    return cfg


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _grid_name(data: dict[str, Any], path: str, text: str) -> str:
    """The grid's name: one folder name under ``runs/`` (letters, digits, ``.``, ``_``, ``-``)."""
    if "name" not in data:
        return Path(path).stem
    name = data["name"]
    where = _where(path, line_of(text, None, "name"))
    if not isinstance(name, str):
        raise ConfigError(f"{where}: name expects a string (a folder name), got {name!r} "
                          f"({type(name).__name__}); did you mean {str(name)!r}?")
    if not _NAME_RE.match(name) or ".." in name:
        fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("..", "")).strip(".-_") or "grid"
        raise ConfigError(f"{where}: name expects a folder name of letters, digits, '.', '_' and "
                          f"'-' (results go to runs/NAME), got {name!r}; did you mean {fixed!r}?")
    return name


def _spec_list(cfg: GridConfig, data: dict[str, Any], key: str) -> list[str]:
    items = data.get(key)
    if not (isinstance(items, list) and items and all(isinstance(s, str) for s in items)):
        raise ConfigError(f"{_where(cfg.path, line_of(cfg.text, None, key))}: {key} must be a "
                          f"non-empty list of spec strings, got {items!r}")
    out = []
    for s in items:
        try:
            out.append(str(parse(s)))
        except SSMZooError as exc:
            raise _fail(cfg, None, key, s, exc) from None
    if len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise ConfigError(f"{_where(cfg.path, line_of(cfg.text, None, key))}: {key} lists "
                          f"{dup!r} twice")
    return out


def _validate(cfg: GridConfig, registry: Registry) -> None:
    """Resolve every spec and key, then every cell's model spec; nothing is trained."""
    from ssmzoo.train import TrainConfig, model_spec

    originals = dict(zip(cfg.variants, _raw(cfg, "variants")))
    for v in cfg.variants:
        try:
            registry.resolve(v)
        except SSMZooError as exc:
            raise _fail(cfg, None, "variants", originals.get(v, v), exc) from None
    task_originals = dict(zip(cfg.tasks, _raw(cfg, "tasks")))
    kinds = {}
    for t in cfg.tasks:
        try:
            kinds[t] = registry.build_task(t).kind
        except SSMZooError as exc:
            raise _fail(cfg, None, "tasks", task_originals.get(t, t), exc) from None
    try:
        base_train = TrainConfig.from_dict(cfg.train)
    except SSMZooError as exc:
        key = getattr(exc, "key", None) or ""
        raise _fail(cfg, "train", key, None, exc) from None
    declared: set[str] = set()
    for kind in set(kinds.values()):
        declared |= {h.name for h in registry.get_model(kind).hparams}
    for key in cfg.model:
        if key not in declared or key == "mixer":
            raise _fail(cfg, "model", key, None, UnknownKeyError(
                f"[model] (models {', '.join(sorted(set(kinds.values())))})", key,
                declared - {"mixer"}))
    for key, values in cfg.sweep.items():
        scope, _, name = key.partition(".")
        if scope not in SWEEP_SCOPES or not name:
            raise ConfigError(f"{_where(cfg.path, line_of(cfg.text, 'sweep', key))}: sweep key "
                              f"{key!r} must be one of {', '.join(s + '.NAME' for s in SWEEP_SCOPES)}"
                              f"{did_you_mean(scope, SWEEP_SCOPES)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{_where(cfg.path, line_of(cfg.text, 'sweep', key))}: sweep "
                              f"{key!r} must be a non-empty list, got {values!r}")
    cells: list[Cell] = []
    combos = list(itertools.product(*cfg.sweep.values())) if cfg.sweep else [()]
    for seed in cfg.seeds:
        for t in cfg.tasks:
            for v in cfg.variants:
                for combo in combos:
                    sweep = dict(zip(cfg.sweep, combo))
                    cells.append(_cell(cfg, registry, v, t, seed, sweep, base_train, model_spec))
    cfg.cells = cells


def _raw(cfg: GridConfig, key: str) -> list[str]:
    data = tomllib.loads(cfg.text)
    return list(data.get(key, []))


def _cell(cfg: GridConfig, registry: Registry, variant: str, task: str, seed: int,
          sweep: dict[str, Any], base_train: Any, model_spec: Any) -> Cell:
    from ssmzoo.train import TrainConfig

    v, t = parse(variant), parse(task)
    model, train = dict(cfg.model), base_train.to_dict()
    for key, value in sweep.items():
        scope, _, name = key.partition(".")
        if scope == "variant":
            v = v.replace(**{name: value})
        elif scope == "task":
            t = t.replace(**{name: value})
        elif scope == "model":
            model[name] = value
        else:
            train[name] = value
    try:
        train = TrainConfig.from_dict(train, owner="[train] (with the sweep)").to_dict()
        registry.resolve(v)
        task_obj = registry.build_task(t)
        spec = registry.resolve_model(model_spec(task_obj, v, model, registry=registry,
                                                 strict=False))
    except SSMZooError as exc:
        bad = getattr(exc, "key", None)
        swept = [k for k in sweep if k.partition(".")[2] == bad] or list(sweep)
        section, k = ("model", bad) if bad in cfg.model else ("sweep", swept[0] if swept else "")
        raise _fail(cfg, section, k, None, ConfigError(
            f"cell (variant {variant}, task {task}{_sweep_text(sweep)}): {exc}")) from None
    if sweep:
        for key in sweep:
            scope, _, name = key.partition(".")
            if scope == "model" and name not in {h.name for h in registry.get_model(task_obj.kind).hparams}:
                raise ConfigError(f"{_where(cfg.path, line_of(cfg.text, 'sweep', key))}: sweep "
                                  f"{key!r}: model {task_obj.kind!r} has no hyperparameter {name!r}")
    return Cell(variant=str(v), task=str(t), seed=seed, model=model, train=train, sweep=sweep,
                label_variant=variant, label_task=task, model_spec=str(spec))


def _sweep_text(sweep: dict[str, Any]) -> str:
    return "".join(f", {k}={v!r}" for k, v in sweep.items())

