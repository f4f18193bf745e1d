"""Key maps between another implementation's state dict and an ssmzoo model's, as tables.

A :class:`KeyMap` is a list of rows ``(source key, ssmzoo key)``; ``{i}`` in a row stands for the
layer index. Renaming is all a row does (every source this library reads stores its tensors in
ssmzoo's shapes), and it is checked both ways:

- source -> ssmzoo: every source tensor must be used by a row, and every tensor of the rebuilt
  model must come from one, except those the model owns alone (``own``: buffers such as
  ``spectrum_scale``, kept as built). Nothing is dropped silently.
- ssmzoo -> source: every tensor of the model must have a row.

Rows whose ssmzoo key the model lacks (a bias its config turns off, an untied head) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import Tensor

from ssmzoo.errors import CheckpointError

__all__ = ["KeyMap"]


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)") + r"\Z")


@dataclass(frozen=True)
class KeyMap:
    """``rows``: (source key, ssmzoo key) templates; ``source``: the source's name, for errors."""

    source: str
    rows: tuple[tuple[str, str], ...]

    def __add__(self, other: KeyMap) -> KeyMap:
        return KeyMap(self.source, self.rows + other.rows)

    def prefixed(self, source_prefix: str, ssmzoo_prefix: str) -> KeyMap:
        """The same rows below a prefix on each side (a mixer's rows inside a layer)."""
        return KeyMap(self.source, tuple((source_prefix + s, ssmzoo_prefix + z)
                                         for s, z in self.rows))

    def _rename(self, keys: Iterable[str], side: int) -> dict[str, str]:
        """key on ``side`` (0: source, 1: ssmzoo) -> key on the other side, for every key that a
        row matches."""
        pats = [(_pattern(row[side]), row[1 - side]) for row in self.rows]
        out = {}
        for key in keys:
            for pat, other in pats:
                m = pat.match(key)
                if m:
                    out[key] = other.replace("{i}", m.group("i")) if "i" in m.groupdict() \
                        else other
                    break
        return out

    def to_ssmzoo(self, state: dict[str, Tensor], expected: dict[str, Tensor], *,
                  own: Callable[[str], bool] = lambda key: False,
                  where: str = "") -> dict[str, Tensor]:
        """The source ``state`` under ssmzoo's keys, checked against the rebuilt model's state
        dict ``expected`` (keys and shapes); tensors for which ``own(key)`` holds are taken from
        ``expected`` when the source has none."""
        names = self._rename(state, 0)
        at = f" in {where}" if where else ""
        unused = sorted(set(state) - set(names))
        if unused:
            raise CheckpointError(
                f"{self.source} checkpoint{at} has tensors ssmzoo has no place for: "
                f"{_few(unused)}; a feature of the source that ssmzoo's model lacks is refused, "
                "never dropped")
        out: dict[str, Tensor] = {}
        for key, new in names.items():
            if new not in expected:
                raise CheckpointError(
                    f"{self.source} checkpoint{at}: tensor {key!r} maps to {new!r}, which the "
                    "model its config describes does not have (the config and the weights "
                    "disagree)")
            if tuple(state[key].shape) != tuple(expected[new].shape):
                raise CheckpointError(
                    f"{self.source} checkpoint{at}: tensor {key!r} has shape "
                    f"{tuple(state[key].shape)}, the model its config describes expects "
                    f"{tuple(expected[new].shape)} for {new!r}")
            out[new] = state[key]
        missing = sorted(k for k in set(expected) - set(out) if not own(k))
        if missing:
            back = self._rename(missing, 1)  # ssmzoo key -> the source's name for it
            named = [f"{back[k]!r} (ssmzoo {k!r})" if k in back else repr(k) for k in missing]
            raise CheckpointError(f"{self.source} checkpoint{at} lacks tensors: {_few(named)}")
        for k in set(expected) - set(out):
            out[k] = expected[k]
        return out

    def to_source(self, state: dict[str, Tensor], *,
                  own: Callable[[str], bool] = lambda key: False) -> dict[str, Tensor]:
        """An ssmzoo state dict under the source's keys; ``own`` keys are left out."""
        keys = [k for k in state if not own(k)]
        names = self._rename(keys, 1)
        unmapped = sorted(set(keys) - set(names))
        if unmapped:
            raise CheckpointError(f"cannot write a {self.source} checkpoint: no {self.source} "
                                  f"tensor for {_few(unmapped)}")
        return {names[k]: state[k] for k in keys}

    def table(self) -> str:
        """The rows as a two-column text table (for docs and ``describe``)."""
        width = max(len(s) for s, _ in self.rows)
        return "\n".join(f"{s:<{width}}  {z}" for s, z in self.rows)


def _few(names: list[str], n: int = 6) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more
