"""The unit contract, as a function a plugin's own tests can call.

ssmzoo's registry-wide tests check every installed unit with the same rules; a plugin author runs
them from the plugin's own test suite without a checkout of ssmzoo::

    import ssmzoo.testing

    def test_lru_keeps_the_contract():
        ssmzoo.testing.check_unit("lru")          # raises ContractViolation, a sentence per rule

Required of every unit (the rules in :data:`RULES`, in order):

- ``builds``: the name builds with its defaults at ``d_model`` (16 by default);
- ``forward``: (batch, length, d_model) in gives the same shape and dtype out, finite;
- ``gradients``: backward reaches the input and every trainable parameter, finite and not all zero;
- ``step``: ``init_state``/``step`` token by token equals ``forward`` in float64;
- ``state_size``: ``state_size()`` counts the floats of ``init_state(1)``;
- ``save_load``: ``save`` then :func:`ssmzoo.load` rebuilds the same spec and output;
- ``spec``: the built spec prints canonically and resolves to itself;
- ``describe``: every declared hyperparameter has a one-line doc.

Optional, checked when the unit has them: ``spectrum`` (a module exposing ``effective_A()`` through
the ``SpectrumScaled`` mixin follows all three scaling modes). ``require=("paper", "spectrum")``
makes a paper reference and spectrum support required too, as ssmzoo's built-ins are held to.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ContractViolation", "ContractReport", "RULES", "check_unit", "stepwise", "state_floats"]


class ContractViolation(AssertionError):
    """A unit broke one or more contract rules; ``report`` has a sentence per broken rule."""

    def __init__(self, report: ContractReport) -> None:
        self.report = report
        super().__init__(str(report))


@dataclass
class ContractReport:
    """What :func:`check_unit` found: the rules that held, the ones skipped and why, the broken."""

    name: str
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        head = (f"unit {self.name!r}: {len(self.passed)} contract rules held, "
                f"{len(self.failed)} broken")
        lines = [head] + [f"  - {rule}: {why}" for rule, why in self.failed.items()]
        lines += [f"  (skipped {rule}: {why})" for rule, why in self.skipped.items()]
        return "\n".join(lines)


class _Broken(Exception):
    """One rule's failure: the sentence is the message."""


class _Skip(Exception):
    """A rule that does not apply to this unit: the message says why."""


@dataclass
class _Context:
    name: str
    d_model: int
    length: int
    seed: int
    require: frozenset[str]
    unit: Any = None


def _torch() -> Any:
    import torch

    return torch


def _build(ctx: _Context, dtype: Any) -> Any:
    import ssmzoo

    torch = _torch()
    torch.manual_seed(ctx.seed)
    return ssmzoo.build(ctx.name, d_model=ctx.d_model).to(dtype)


def _input(ctx: _Context, dtype: Any, grad: bool = False) -> Any:
    torch = _torch()
    gen = torch.Generator().manual_seed(ctx.seed + 1)
    return torch.randn(2, ctx.length, ctx.d_model, dtype=dtype, generator=gen, requires_grad=grad)


def stepwise(unit: Any, x: Any) -> Any:
    """``unit.step`` token by token over x (batch, length, d_model), stacked like forward's."""
    torch = _torch()
    state = unit.init_state(x.shape[0])
    ys = []
    for t in range(x.shape[1]):
        y_t, state = unit.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, dim=1)                                              # (b, l, d)


def _rel(ref: Any, out: Any) -> float:
    torch = _torch()
    r, o = ref.detach().to(torch.float64), out.detach().to(torch.float64)
    den = float(r.square().mean().sqrt())
    num = float((o - r).square().mean().sqrt())
    return num / den if den > 0 else num


def _rule_builds(ctx: _Context) -> None:
    ctx.unit = _build(ctx, _torch().float32)


def _rule_forward(ctx: _Context) -> None:
    torch = _torch()
    x = _input(ctx, torch.float32)
    y = ctx.unit(x)
    if tuple(y.shape) != tuple(x.shape) or y.dtype != x.dtype:
        raise _Broken(f"forward of a {tuple(x.shape)} float32 input returned "
                      f"{tuple(y.shape)} {y.dtype}; expected the input's shape and dtype")
    if not bool(torch.isfinite(y).all()):
        raise _Broken("forward returned non-finite values on a standard normal input")


def _rule_gradients(ctx: _Context) -> None:
    torch = _torch()
    x = _input(ctx, torch.float32, grad=True)
    y = ctx.unit(x)
    (y * torch.randn_like(y)).sum().backward()
    if x.grad is None or not bool(torch.isfinite(x.grad).all()):
        raise _Broken("backward gave the input no finite gradient")
    for pname, p in ctx.unit.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            raise _Broken(f"parameter {pname!r} got no gradient (unused, or detached)")
        if not bool(torch.isfinite(p.grad).all()):
            raise _Broken(f"the gradient of parameter {pname!r} is not finite")
        if float(p.grad.abs().sum()) == 0.0:
            raise _Broken(f"the gradient of parameter {pname!r} is exactly zero")


def _rule_step(ctx: _Context) -> None:
    torch = _torch()
    unit = _build(ctx, torch.float64)
    x = _input(ctx, torch.float64)
    with torch.no_grad():
        err = _rel(unit(x), stepwise(unit, x))
    if not err <= 1e-8:
        raise _Broken(f"step() token by token differs from forward() by {err:.2e} (relative "
                      "RMS, float64); expected at most 1e-8")


def state_floats(state: object) -> int:
    """Floats held by a state of tensors in dicts, lists or tuples (complex counts twice)."""
    torch = _torch()
    if isinstance(state, torch.Tensor):
        return state.numel() * (2 if state.is_complex() else 1)
    if isinstance(state, dict):
        return sum(state_floats(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_floats(v) for v in state)
    raise _Broken(f"init_state() holds a {type(state).__name__}; expected tensors in dicts, "
                  "lists or tuples")


def _rule_state_size(ctx: _Context) -> None:
    counted, declared = state_floats(ctx.unit.init_state(1)), int(ctx.unit.state_size())
    if counted != declared or counted <= 0:
        raise _Broken(f"state_size() says {declared} floats, init_state(1) holds {counted}")


def _rule_save_load(ctx: _Context) -> None:
    import ssmzoo

    torch = _torch()
    unit = _build(ctx, torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        unit.save(Path(tmp) / "unit")
        again = ssmzoo.load(Path(tmp) / "unit")
    if again.ssmzoo_spec != unit.ssmzoo_spec:
        raise _Broken(f"load rebuilt {again.ssmzoo_spec!r}, saved {unit.ssmzoo_spec!r}")
    x = _input(ctx, torch.float64)
    with torch.no_grad():
        if not torch.equal(unit(x), again(x)):
            raise _Broken("the loaded unit's output differs from the saved one's")


def _rule_spec(ctx: _Context) -> None:
    import ssmzoo
    from ssmzoo.spec import parse

    text = ctx.unit.ssmzoo_spec
    if str(parse(text)) != text:
        raise _Broken(f"the built spec {text!r} does not print canonically")
    for source in (text, ctx.name):
        if str(ssmzoo.get_registry().resolve(source)) != text:
            raise _Broken(f"{source!r} resolves to "
                          f"{str(ssmzoo.get_registry().resolve(source))!r}, not {text!r}")


def _rule_describe(ctx: _Context) -> None:
    import ssmzoo

    desc = ssmzoo.describe(ctx.name)
    missing = [hp.name for hp in desc.hparams if not hp.doc]
    if missing:
        raise _Broken("hyperparameters without a doc line in the factory's Args: section: "
                      + ", ".join(missing))
    if "paper" in ctx.require and not desc.paper:
        raise _Broken("no paper= reference in the registration (required here)")


def _rule_spectrum(ctx: _Context) -> None:
    from ssmzoo.models import spectral_modules

    torch = _torch()
    unit = _build(ctx, torch.float64)
    mods = spectral_modules(unit)
    if not mods:
        if "spectrum" in ctx.require:
            raise _Broken("no module exposes effective_A() and spectrum_scale (the "
                          "SpectrumScaled mixin; required here)")
        raise _Skip("no module exposes effective_A() (optional: the SpectrumScaled mixin)")
    x = _input(ctx, torch.float64)
    with torch.no_grad():
        before = unit(x)
        for mode in ("power", "linear", "delta"):
            for _, m in mods:
                m.spectrum_mode = mode
                m.spectrum_scale = torch.tensor(0.6, dtype=torch.float64)
            after = unit(x)
            if float((after - before).abs().max()) <= 1e-6:
                raise _Broken(f"spectrum scaling in mode {mode!r} did not change the output")
            err = _rel(after, stepwise(unit, x))
            if not err <= 1e-8:
                raise _Broken(f"with {mode!r} spectrum scaling, step() differs from forward() "
                              f"by {err:.2e}")


RULES: dict[str, Callable[[_Context], None]] = {
    "builds": _rule_builds,
    "forward": _rule_forward,
    "gradients": _rule_gradients,
    "step": _rule_step,
    "state_size": _rule_state_size,
    "save_load": _rule_save_load,
    "spec": _rule_spec,
    "describe": _rule_describe,
    "spectrum": _rule_spectrum,
}


def check_unit(name: str, *, d_model: int = 16, length: int = 13, seed: int = 0,
               rules: Iterable[str] | None = None,
               require: Iterable[str] = ()) -> ContractReport:
    """Check a registered unit or variant against the contract; raise if any rule breaks.

    Args:
        name: a unit, variant or spec (``"lru"``, ``"lru-long(d_state=8)"``)
        d_model: the width to build at
        length: the sequence length of the test inputs (odd, shorter than any chunk)
        seed: seeds the build and the inputs
        rules: a subset of :data:`RULES` to run (default: all)
        require: optional features to require: ``"paper"``, ``"spectrum"``

    Returns the :class:`ContractReport` when every rule held; raises :class:`ContractViolation`
    with a sentence per broken rule otherwise. A rule after a failed ``builds`` is not run.
    """
    from ssmzoo.errors import did_you_mean

    chosen = list(RULES) if rules is None else list(rules)
    for rule in chosen:
        if rule not in RULES:
            raise ValueError(f"check_unit(rules=...): no rule named {rule!r}"
                             f"{did_you_mean(rule, RULES)}; the rules: {', '.join(RULES)}")
    extra = set(require) - {"paper", "spectrum"}
    if extra:
        raise ValueError(f"check_unit(require=...): expected 'paper' or 'spectrum', got "
                         f"{sorted(extra)}")
    ctx = _Context(name, d_model, length, seed, frozenset(require))
    report = ContractReport(name)
    if "builds" not in chosen:
        chosen.insert(0, "builds")
    for rule in chosen:
        try:
            RULES[rule](ctx)
        except _Skip as why:
            report.skipped[rule] = str(why)
        except _Broken as why:
            report.failed[rule] = str(why)
        except Exception as err:  # a crash inside a rule is that rule's failure
            report.failed[rule] = f"raised {type(err).__name__}: {err}"
        else:
            report.passed.append(rule)
        if rule == "builds" and rule in report.failed:
            break
    if report.failed:
        raise ContractViolation(report)
    return report
