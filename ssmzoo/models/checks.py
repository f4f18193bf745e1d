"""Cheap checks of what a unit or model is given: shapes, dtypes, devices, states and token ids.

Every built-in unit and model calls them on the first lines of ``forward`` and ``step``, so that a
wrong input fails there, in one line that names the argument, what was expected and what was
given, instead of deep inside an einops pattern, a matmul or an FFT:

    unit 's6': input x expects shape (batch, length, 16), got (2, 5, 17)

Each raises :class:`~ssmzoo.errors.InputError`. They compare shapes, dtypes and devices only,
except the range checks of token ids and ``lengths``, which take one min/max reduction and one
host transfer per call (:func:`check_ranges` does several ranges in one), and which are skipped
while torch.compile or torch.jit traces (a traced graph cannot branch on a value). Plugins may call
them the same way (``docs/examples/ssmzoo-lru`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ssmzoo.errors import InputError

__all__ = ["check_sequence", "check_step_input", "check_step", "check_dtype", "check_features",
           "check_state", "expected_state", "layout_of", "check_token_ids", "check_lengths",
           "check_ranges", "token_id_bounds", "length_bounds", "TensorLayout", "ValueBounds",
           "INTEGER_DTYPES"]

# what ``dtype_of`` may be: a module (its first floating-point parameter), a tensor or a dtype
DtypeOf = nn.Module | Tensor | torch.dtype | None

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
# autocast casts each op's float16, bfloat16 and float32 inputs to its own dtype, but never a
# float64 one: among these, a mismatch is harmless under autocast
_AUTOCAST_REAL = (torch.float16, torch.bfloat16, torch.float32)
_AUTOCAST_COMPLEX = (torch.complex32, torch.complex64)
_CONVERT = {torch.float64: "double", torch.float32: "float", torch.float16: "half",
            torch.bfloat16: "bfloat16"}
_LAYOUT_CACHE = "_ssmzoo_state_layouts"  # attribute of a unit: {(batch, dtype, device): layout}


def dtype_name(dtype: torch.dtype) -> str:
    """``float32`` for ``torch.float32``."""
    return str(dtype).removeprefix("torch.")


def _shape(x: Tensor) -> str:
    return str(tuple(x.shape))


def _dims(dims: Sequence[int | str]) -> str:
    """("batch", "length", 16) -> "(batch, length, 16)"; ("batch",) -> "(batch,)"."""
    inner = ", ".join(str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


def _matches(x: Tensor, dims: Sequence[int | str]) -> bool:
    """The shape of x fits dims: same rank, and each int entry equal (str entries are free)."""
    return x.dim() == len(dims) and all(isinstance(d, str) or x.shape[i] == d
                                        for i, d in enumerate(dims))


def _kind(owner: str) -> str:
    """'unit' for "unit 's6'", 'model' for "model 'lm'": the word the conversion hint uses."""
    word = owner.split(" ", 1)[0]
    return word if word in ("unit", "model") else "module"


def _convert(dtype: torch.dtype) -> str:
    return f"{_CONVERT[dtype]}()" if dtype in _CONVERT else f"to({dtype})"


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def _reference(dtype_of: DtypeOf) -> tuple[torch.dtype, torch.device | None] | None:
    """The weights' dtype (and device) that an input must match, or None to match nothing."""
    if dtype_of is None:
        return None
    if isinstance(dtype_of, torch.dtype):
        return dtype_of, None
    if isinstance(dtype_of, Tensor):
        return dtype_of.dtype, dtype_of.device
    for p in dtype_of.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return None


def _not_a_tensor(owner: str, argument: str, expected: str, value: object) -> InputError:
    return InputError(owner, argument, f"a tensor of {expected}", type(value).__name__)


# ---- float inputs -----------------------------------------------------------------------------

def check_dtype(owner: str, x: Tensor, dtype_of: DtypeOf, *, name: str = "x",
                what: str = "input") -> None:
    """``x`` is a floating-point tensor in the precision of ``dtype_of`` and on its device.

    ``dtype_of`` is a module (its first floating-point parameter), a tensor or a dtype (then the
    device is not checked); None checks only that x is floating point. Under autocast for x's
    device type, float16, bfloat16 and float32 are interchangeable (autocast casts each op's
    inputs); float64 never is: a float64 input beside float32 weights fails in a matmul (or, in an
    FFT, silently mixes precisions), and so does a float32 input beside float64 weights.
    """
    ref = _reference(dtype_of)
    argument = f"{what} {name}"
    if not x.is_floating_point():
        want = "" if ref is None else f" ({dtype_name(ref[0])}, as the {_kind(owner)}'s weights)"
        raise InputError(owner, argument, "a floating-point tensor", dtype_name(x.dtype),
                         message=f"{owner}: {argument} is {dtype_name(x.dtype)}; expects a "
                                 f"floating-point tensor{want}")
    if ref is None:
        return
    want, device = ref
    if x.dtype != want and not (x.dtype in _AUTOCAST_REAL and want in _AUTOCAST_REAL
                                and torch.is_autocast_enabled(x.device.type)):
        kind = _kind(owner)
        hint = f"convert one ({kind}.{_convert(x.dtype)} or {name}.{_convert(want)})"
        if x.dtype in _AUTOCAST_REAL and want in _AUTOCAST_REAL:
            hint += " or run under torch.autocast"
        raise InputError(owner, argument, dtype_name(want), dtype_name(x.dtype),
                         message=f"{owner}: {argument} is {dtype_name(x.dtype)} but the {kind}'s "
                                 f"weights are {dtype_name(want)}; {hint}")
    if device is not None and x.device != device:
        kind = _kind(owner)
        raise InputError(owner, argument, f"device {device}", str(x.device),
                         message=f"{owner}: {argument} is on {x.device} but the {kind}'s weights "
                                 f"are on {device}; move one ({kind}.to('{x.device}') or "
                                 f"{name}.to('{device}'))")


def check_sequence(owner: str, x: Tensor, d_model: int, *, dtype_of: DtypeOf = None,
                   name: str = "x") -> None:
    """``x`` is (batch, length, d_model) with length >= 1, and passes :func:`check_dtype`.

    A batch of 0 sequences is accepted (every built-in unit returns an empty batch for it).
    """
    argument = f"input {name}"
    if not isinstance(x, Tensor):
        raise _not_a_tensor(owner, argument, f"shape (batch, length, {d_model})", x)
    if x.dim() != 3 or x.shape[2] != d_model:
        raise InputError(owner, argument, f"shape (batch, length, {d_model})", _shape(x))
    if x.shape[1] == 0:
        raise InputError(owner, argument, "at least 1 step", "length 0",
                         message=f"{owner}: {argument} has length 0; expects at least 1 step")
    check_dtype(owner, x, dtype_of, name=name)


def check_step_input(owner: str, x_t: Tensor, d_model: int, *, dtype_of: DtypeOf = None,
                     name: str = "x_t") -> None:
    """``x_t`` (one token of each sequence) is (batch, d_model), and passes :func:`check_dtype`."""
    argument = f"step input {name}"
    if not isinstance(x_t, Tensor):
        raise _not_a_tensor(owner, argument, f"shape (batch, {d_model})", x_t)
    if x_t.dim() != 2 or x_t.shape[1] != d_model:
        raise InputError(owner, argument, f"shape (batch, {d_model})", _shape(x_t))
    check_dtype(owner, x_t, dtype_of, name=name, what="step input")


def check_features(owner: str, x: Tensor, d_input: int, *,
                   dims: Sequence[int | str] = ("batch", "length"), name: str = "x") -> None:
    """A model's float input: ``dims + (d_input,)`` (or ``dims`` alone when d_input is 1), in any
    floating-point precision (a model's encoder converts it to its own), with length >= 1."""
    argument = f"input {name}"
    full = (*dims, d_input)
    expected = f"shape {_dims(full)}" + (f" or {_dims(dims)}" if d_input == 1 else "")
    if not isinstance(x, Tensor):
        raise _not_a_tensor(owner, argument, expected, x)
    if not x.is_floating_point():
        raise InputError(owner, argument, "a floating-point tensor", dtype_name(x.dtype),
                         message=f"{owner}: {argument} is {dtype_name(x.dtype)}; expects a "
                                 f"floating-point tensor of {expected}")
    if not (_matches(x, full) or (d_input == 1 and _matches(x, dims))):
        raise InputError(owner, argument, expected, _shape(x))
    if "length" in dims:
        _check_length(owner, argument, x, list(dims).index("length"), "step")


def _check_length(owner: str, argument: str, x: Tensor, axis: int, unit: str) -> None:
    if x.shape[axis] == 0:
        raise InputError(owner, argument, f"at least 1 {unit}", "length 0",
                         message=f"{owner}: {argument} has length 0; expects at least 1 {unit}")


# ---- recurrent states ---------------------------------------------------------------------------

class TensorLayout(NamedTuple):
    """What a state tensor must be: its shape, dtype and device (not its values)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


def layout_of(state: Any) -> Any:
    """The state with each tensor replaced by its :class:`TensorLayout` (dicts, lists, tuples
    kept; any other leaf kept as it is, and not checked)."""
    if isinstance(state, Tensor):
        return TensorLayout(tuple(state.shape), state.dtype, state.device)
    if isinstance(state, dict):
        return {k: layout_of(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(layout_of(v) for v in state)
    return state


def expected_state(unit: nn.Module, batch: int) -> Any:
    """The layout of ``unit.init_state(batch)`` (see :func:`layout_of`), for :func:`check_state`.

    Cached on the unit per batch size and the dtype and device of its first parameter (so that
    ``unit.double()`` or ``unit.to("cuda")`` is seen): a step checks its state without allocating
    one.
    """
    ref = next(unit.parameters(), None)
    key = (batch, None if ref is None else ref.dtype, None if ref is None else ref.device)
    cache = unit.__dict__.get(_LAYOUT_CACHE)
    if cache is None:
        cache = unit.__dict__[_LAYOUT_CACHE] = {}
    layout = cache.get(key)
    if layout is None:
        if len(cache) >= 8:  # a few batch sizes at a time; generation uses one
            cache.clear()
        with torch.no_grad():
            layout = cache[key] = layout_of(unit.init_state(batch))
    return layout


def _same_dtype(got: torch.dtype, want: torch.dtype, device: torch.device) -> bool:
    if got == want:
        return True
    # under autocast a step may hand back a state in the autocast dtype, or float32 for a
    # half-precision init_state: as for inputs, only float64 (complex128) must match exactly
    return ((got in _AUTOCAST_REAL and want in _AUTOCAST_REAL)
            or (got in _AUTOCAST_COMPLEX and want in _AUTOCAST_COMPLEX)) \
        and torch.is_autocast_enabled(device.type)


def check_state(owner: str, state: Any, expected: Any, *, name: str = "state",
                batch: int | None = None) -> None:
    """``state`` has the structure of ``expected`` (dict keys, list lengths) and each tensor its
    shape, dtype and device; ``expected`` is a state of tensors or its :func:`layout_of`, usually
    :func:`expected_state`. ``batch`` only makes the message name ``init_state(batch)``."""
    source = "" if batch is None else f" (as init_state({batch}) gives)"
    _walk_state(owner, state, expected, f"step {name}", source)


def _walk_state(owner: str, state: Any, expected: Any, path: str, source: str) -> None:
    if isinstance(expected, Tensor):
        expected = layout_of(expected)
    if isinstance(expected, TensorLayout):
        shape = str(tuple(expected.shape))
        if not isinstance(state, Tensor):
            raise InputError(owner, path, f"a {dtype_name(expected.dtype)} tensor of shape "
                             f"{shape}{source}", type(state).__name__)
        if tuple(state.shape) != tuple(expected.shape):
            raise InputError(owner, path, f"shape {shape}{source}", _shape(state))
        if not _same_dtype(state.dtype, expected.dtype, state.device):
            raise InputError(owner, path, f"dtype {dtype_name(expected.dtype)}{source}",
                             dtype_name(state.dtype))
        if state.device != expected.device:
            raise InputError(owner, path, f"device {expected.device}{source}", str(state.device))
    elif isinstance(expected, dict):
        keys = ", ".join(repr(k) for k in expected)
        if not isinstance(state, dict):
            raise InputError(owner, path, f"a dict with keys {keys}{source}", type(state).__name__)
        if state.keys() != expected.keys():
            got = ", ".join(repr(k) for k in state) or "none"
            raise InputError(owner, path, f"a dict with keys {keys}{source}", f"keys {got}")
        for k, v in expected.items():
            _walk_state(owner, state[k], v, f"{path}[{k!r}]", source)
    elif isinstance(expected, (list, tuple)):
        n = len(expected)
        want = f"a {type(expected).__name__} of {n} {'entry' if n == 1 else 'entries'}{source}"
        if not isinstance(state, (list, tuple)):
            raise InputError(owner, path, want, type(state).__name__)
        if len(state) != n:
            raise InputError(owner, path, want, f"a {type(state).__name__} of {len(state)}")
        for i, (s, e) in enumerate(zip(state, expected)):
            _walk_state(owner, s, e, f"{path}[{i}]", source)
    # any other leaf of init_state (a plugin's counter, None) is the unit's own business


def check_step(owner: str, unit: nn.Module, x_t: Tensor, state: Any, d_model: int, *,
               dtype_of: DtypeOf = None, name: str = "x_t") -> None:
    """The checks at the top of a unit's ``step``: :func:`check_step_input` on ``x_t``, then
    :func:`check_state` of ``state`` against ``unit.init_state(batch)`` (its cached layout)."""
    check_step_input(owner, x_t, d_model, dtype_of=dtype_of, name=name)
    batch = x_t.shape[0]
    check_state(owner, state, expected_state(unit, batch), batch=batch)


# ---- token ids and lengths ----------------------------------------------------------------------

class ValueBounds(NamedTuple):
    """Integer values that must lie in [low, high], and the words of the error if one does not."""

    values: Tensor
    low: int
    high: int
    argument: str  # "input ids"
    noun: str      # "token id"
    context: str   # "for vocab_size 256 (ids must be in [0, 256))"


def token_id_bounds(ids: Tensor, vocab_size: int, *, name: str = "ids") -> ValueBounds:
    """The range of token ids, for :func:`check_ranges`: [0, vocab_size)."""
    return ValueBounds(ids, 0, vocab_size - 1, f"input {name}", "token id",
                       f"for vocab_size {vocab_size} (ids must be in [0, {vocab_size}))")


def length_bounds(lengths: Tensor, length: int, *, name: str = "lengths") -> ValueBounds:
    """The range of valid lengths of padded sequences, for :func:`check_ranges`: [1, length]."""
    return ValueBounds(lengths, 1, length, f"input {name}", f"{name} value",
                       f"for inputs of length {length} ({name} must be in [1, {length}])")


def check_ranges(owner: str, *bounds: ValueBounds) -> None:
    """Each tensor's values lie in its bounds: one min/max reduction per tensor and one host
    transfer per device for all of them; skipped while torch.compile or torch.jit traces."""
    if _tracing():
        return
    by_device: dict[torch.device, list[ValueBounds]] = {}
    for b in bounds:
        if b.values.numel():
            by_device.setdefault(b.values.device, []).append(b)
    for group in by_device.values():
        stats = torch.cat([torch.stack(torch.aminmax(b.values)).long() for b in group]).tolist()
        for i, b in enumerate(group):
            lo, hi = stats[2 * i], stats[2 * i + 1]
            if lo < b.low or hi > b.high:
                bad = lo if lo < b.low else hi
                raise InputError(owner, b.argument, f"values in [{b.low}, {b.high}]", str(bad),
                                 message=f"{owner}: {b.noun} {bad} out of range {b.context}")


def check_token_ids(owner: str, ids: Tensor, vocab_size: int, *,
                    dims: Sequence[int | str] = ("batch", "length"), name: str = "ids",
                    what: str = "input", check_range: bool = True) -> None:
    """``ids`` is an integer tensor of shape ``dims`` (str entries free, int entries exact) with
    length >= 1 where dims has a "length", and (with ``check_range``) every id in [0, vocab_size):
    the one check here that reads values (one reduction and one host transfer)."""
    argument = f"{what} {name}"
    if not isinstance(ids, Tensor):
        raise _not_a_tensor(owner, argument, f"shape {_dims(dims)}", ids)
    if ids.dtype not in INTEGER_DTYPES:
        raise InputError(owner, argument, "integer token ids", dtype_name(ids.dtype),
                         message=f"{owner}: {argument} is {dtype_name(ids.dtype)}; expects "
                                 f"integer token ids in [0, {vocab_size}) (e.g. int64)")
    if not _matches(ids, dims):
        raise InputError(owner, argument, f"shape {_dims(dims)}", _shape(ids))
    if "length" in dims:
        _check_length(owner, argument, ids, list(dims).index("length"), "token")
    if check_range:
        check_ranges(owner, token_id_bounds(ids, vocab_size, name=name))


def check_lengths(owner: str, lengths: Tensor, batch_shape: Sequence[int], length: int, *,
                  name: str = "lengths", check_range: bool = True) -> None:
    """``lengths`` (valid positions of padded sequences) is an integer tensor of ``batch_shape``
    ((batch,), or (batch, 2) for pairs) and (with ``check_range``) every value in [1, length]."""
    argument = f"input {name}"
    shape = str(tuple(batch_shape))
    if not isinstance(lengths, Tensor):
        raise _not_a_tensor(owner, argument, f"shape {shape}", lengths)
    if lengths.dtype not in INTEGER_DTYPES:
        raise InputError(owner, argument, "an integer tensor", dtype_name(lengths.dtype),
                         message=f"{owner}: {argument} is {dtype_name(lengths.dtype)}; expects "
                                 f"integer lengths in [1, {length}] of shape {shape}")
    if tuple(lengths.shape) != tuple(batch_shape):
        raise InputError(owner, argument, f"shape {shape} (one per sequence)", _shape(lengths))
    if check_range:
        check_ranges(owner, length_bounds(lengths, length, name=name))
