"""Every exception ssmzoo raises on purpose, in one place.

Each message names what was wrong, what was expected and what was given, and where a valid name
is close, suggests it (``no unit named 'b2s7'; did you mean 'b2s6'?``). All of them derive from
:class:`SSMZooError`, so the CLI can print one readable line and exit 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SSMZooError(Exception):
    """Base class of every error ssmzoo raises deliberately."""


def nearest(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The valid names closest to ``name`` (difflib ratio), best first."""
    return difflib.get_close_matches(name, sorted(set(candidates)), n=n, cutoff=cutoff)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``), or ``""`` when nothing is close."""
    close = nearest(name, candidates)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


class UnknownNameError(SSMZooError, KeyError):
    """A unit, variant, model, backend, task or plugin name that is not registered."""

    kind = "name"
    hint = ""
    list_known = False  # name every valid choice in the message (for short lists)

    def __init__(self, name: str, candidates: Iterable[str] = (), *, hint: str | None = None):
        self.name = name
        self.candidates = sorted(set(candidates))
        self.suggestions = nearest(name, self.candidates)
        msg = f"no {self.kind} named {name!r}{did_you_mean(name, self.candidates)}"
        hint = self.hint if hint is None else hint
        if self.list_known:
            msg += "; known: " + (", ".join(self.candidates) or "none")
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnknownUnitError(UnknownNameError):
    kind = "unit"
    hint = "see `ssmzoo list`"


class UnknownModelError(UnknownNameError):
    kind = "model"
    hint = "see `ssmzoo list --models`"


class UnknownBackendError(UnknownNameError):
    kind = "backend"
    list_known = True
    hint = "see `ssmzoo backends`"


class UnknownTaskError(UnknownNameError):
    kind = "task"
    hint = "see `ssmzoo list --tasks`"


class UnknownPluginError(UnknownNameError):
    kind = "plugin"
    hint = "see `ssmzoo plugins`"


class UnknownKeyError(SSMZooError, KeyError):
    """A hyperparameter that the named unit (or task, model) does not declare."""

    def __init__(self, owner: str, key: str, valid: Iterable[str]):
        self.owner, self.key, self.valid = owner, key, sorted(set(valid))
        msg = f"{owner} has no hyperparameter {key!r}{did_you_mean(key, self.valid)}"
        if self.valid:
            msg += f" (valid: {', '.join(self.valid)})"
        super().__init__(msg)

    def __str__(self) -> str:
        return str(self.args[0])


class HyperparameterTypeError(SSMZooError, TypeError):
    """A hyperparameter given a value of the wrong type or outside its choices."""

    def __init__(self, owner: str, key: str, expected: str, value: object):
        self.owner, self.key, self.expected, self.value = owner, key, expected, value
        super().__init__(f"{owner}: hyperparameter {key!r} expects {expected}, got {value!r}")


class HyperparameterValueError(HyperparameterTypeError, ValueError):
    """A hyperparameter of the right type outside its declared range, or breaking a rule that
    ties it to another (``dt_min <= dt_max``).

    Both a ``TypeError`` (as every hyperparameter error) and a ``ValueError``.
    """

    def __init__(self, owner: str, key: str, expected: str, value: object, *,
                 message: str | None = None):
        super().__init__(owner, key, expected, value)
        if message is not None:
            self.args = (message,)

    @classmethod
    def rule(cls, owner: str, values: dict[str, object], expects: str) -> HyperparameterValueError:
        """The error of a broken rule between several hyperparameters."""
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return cls(owner, ", ".join(values), expects, shown,
                   message=f"{owner}: hyperparameters {shown} break the rule: {expects}")


class MissingHyperparameterError(SSMZooError, TypeError):
    """A required hyperparameter (no default) that the spec did not give."""

    def __init__(self, owner: str, key: str):
        self.owner, self.key = owner, key
        super().__init__(f"{owner}: hyperparameter {key!r} is required and has no default")


class SpecSyntaxError(SSMZooError, ValueError):
    """A spec string that does not parse; says where (column, caret line) and what was expected."""

    def __init__(self, text: str, pos: int, expected: str, found: str):
        self.text, self.pos, self.expected, self.found = text, pos, expected, found
        self.column = pos + 1
        super().__init__(
            f"bad spec {text!r} at column {self.column}: expected {expected}, found {found}\n"
            f"  {text}\n  {' ' * pos}^"
        )


class DuplicateNameError(SSMZooError, ValueError):
    """A name registered twice; names both plugins."""

    def __init__(self, kind: str, name: str, first: str, second: str):
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} {name!r} is registered twice: by plugin {first!r} and by plugin {second!r}"
        )


class PluginError(SSMZooError):
    """A plugin failed to import or register (raised only under SSMZOO_STRICT_PLUGINS=1)."""


class ScanArgumentError(SSMZooError, ValueError):
    """A scan argument with the wrong shape, dtype or device."""

    def __init__(self, function: str, argument: str, expected: str, actual: str):
        self.function, self.argument = function, argument
        self.expected, self.actual = expected, actual
        super().__init__(f"{function}: argument {argument!r} expected {expected}, got {actual}")


class InputError(SSMZooError, ValueError):
    """An input of a unit's or model's ``forward`` or ``step`` (or the state given to ``step``)
    with the wrong shape, dtype, device or values; names the argument, the expected and the
    actual value (``unit 's6': input x expects shape (batch, length, 16), got (2, 5, 17)``).

    Raised by the checks in :mod:`ssmzoo.models.checks`, before any computation.
    """

    def __init__(self, owner: str, argument: str, expected: str, actual: str, *,
                 message: str | None = None):
        self.owner, self.argument, self.expected, self.actual = owner, argument, expected, actual
        super().__init__(message if message is not None else
                         f"{owner}: {argument} expects {expected}, got {actual}")


class BackendUnavailableError(SSMZooError, RuntimeError):
    """A backend that was named explicitly but cannot run this call; says why."""

    def __init__(self, backend: str, op: str, reason: str):
        self.backend, self.op, self.reason = backend, op, reason
        super().__init__(f"backend {backend!r} cannot run this {op} call: {reason}")


class NoBackendError(SSMZooError, RuntimeError):
    """``backend="auto"`` found no backend able to run the call; lists each one's reason."""

    def __init__(self, op: str, reasons: dict[str, str]):
        self.op, self.reasons = op, reasons
        detail = "; ".join(f"{k}: {v}" for k, v in reasons.items()) or "no backend is registered"
        super().__init__(f"no backend can run this {op} call ({detail})")


class CheckpointError(SSMZooError, OSError):
    """A saved model directory that is missing, corrupt or does not match its config."""


class ConfigError(SSMZooError, ValueError):
    """A grid or training configuration with a bad value; names the file and line where known."""


class DataError(SSMZooError, FileNotFoundError):
    """A task's data directory or file that is missing or malformed; says what is expected where."""


class OptionalDependencyError(SSMZooError, ImportError):
    """An optional dependency that is not installed; gives the install command."""

    def __init__(self, package: str, feature: str, extra: str | None = None):
        self.package, self.feature, self.extra = package, feature, extra
        cmd = f"pip install 'ssmzoo[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs {package}, which is not installed: {cmd}")
