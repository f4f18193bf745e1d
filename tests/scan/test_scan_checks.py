"""Flags must be bools and dtype mixes follow the documented rule (issue 23, class 5)."""

from __future__ import annotations

import pytest
import torch

import ssmzoo
from ssmzoo.errors import ScanArgumentError


def _ss_args(dtype=torch.float32, a_dtype=None):
    b, d, n, l = 1, 2, 3, 4
    u = torch.randn(b, d, l, dtype=dtype)
    return (u, torch.rand(b, d, l, dtype=dtype), -torch.rand(d, n, dtype=a_dtype or dtype),
            torch.randn(b, n, l, dtype=dtype), torch.randn(b, n, l, dtype=dtype))


def _ssd_args(dtype=torch.float32, a_dtype=None):
    b, l, h, p, g, n = 1, 4, 2, 3, 1, 2
    return (torch.randn(b, l, h, p, dtype=dtype), torch.rand(b, l, h, dtype=dtype),
            -torch.rand(h, dtype=a_dtype or dtype), torch.randn(b, l, g, n, dtype=dtype),
            torch.randn(b, l, g, n, dtype=dtype))


@pytest.mark.parametrize("flag", ["delta_softplus", "return_last_state"])
def test_selective_scan_flag_must_be_bool(flag):
    with pytest.raises(ScanArgumentError) as e:
        ssmzoo.selective_scan(*_ss_args(), **{flag: "no"}, backend="reference")
    msg = str(e.value)
    assert e.value.argument == flag and "bool" in msg and "'no'" in msg and "str" in msg


@pytest.mark.parametrize("flag", ["dt_softplus", "return_final_states"])
def test_ssd_scan_flag_must_be_bool(flag):
    with pytest.raises(ScanArgumentError) as e:
        ssmzoo.ssd_scan(*_ssd_args(), **{flag: "no"}, backend="reference")
    assert e.value.argument == flag and "'no'" in str(e.value)


def test_float64_A_beside_float32_u_is_refused_by_name():
    with pytest.raises(ScanArgumentError) as e:
        ssmzoo.selective_scan(*_ss_args(a_dtype=torch.float64), backend="reference")
    assert e.value.argument == "A" and "float64" in str(e.value) and "float32" in str(e.value)
    with pytest.raises(ScanArgumentError) as e:
        ssmzoo.ssd_scan(*_ssd_args(a_dtype=torch.float64), backend="reference")
    assert e.value.argument == "A"


def test_float64_D_beside_float32_u_is_refused():
    u, delta, A, B, C = _ss_args()
    with pytest.raises(ScanArgumentError) as e:
        ssmzoo.selective_scan(u, delta, A, B, C, D=torch.ones(2, dtype=torch.float64),
                              backend="reference")
    assert e.value.argument == "D"


def test_documented_mixes_are_allowed():
    # float32 A beside bfloat16 u (mamba_ssm's habit) and float32 A beside float64 u
    u, delta, _, B, C = _ss_args(torch.bfloat16)
    A = -torch.rand(2, 3)
    out = ssmzoo.selective_scan(u, delta, A, B, C, D=torch.ones(2), delta_softplus=True,
                                backend="reference")
    assert out.dtype == torch.bfloat16 and out.shape == u.shape
    out64 = ssmzoo.selective_scan(*_ss_args(torch.float64, torch.float32), backend="reference")
    assert out64.dtype == torch.float64
    x, dt, _, Bs, Cs = _ssd_args(torch.bfloat16)
    y = ssmzoo.ssd_scan(x, dt.float(), -torch.rand(2), Bs, Cs, backend="reference")
    assert y.shape == x.shape and y.dtype == torch.bfloat16


@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("shape", [(0, 2, 3), (2, 0, 3), (2, 2, 0)], ids=["b0", "d0", "n0"])
def test_zero_batch_dim_or_d_state_give_empty_outputs_and_zero_grads(backend, shape):
    if backend == "numba":
        pytest.importorskip("numba")
    b, d, n = shape
    l = 4
    u = torch.randn(b, d, l, requires_grad=True)
    delta = torch.rand(b, d, l, requires_grad=True)
    A = (-torch.rand(d, n)).requires_grad_()
    B, C = (torch.randn(b, n, l, requires_grad=True) for _ in range(2))
    out, h = ssmzoo.selective_scan(u, delta, A, B, C, D=torch.full((d,), 2.0),
                                   return_last_state=True, discretization="zoh", backend=backend)
    assert out.shape == (b, d, l) and h.shape == (b, d, n)
    (out.sum() + h.sum()).backward()
    assert A.grad.shape == (d, n) and B.grad.shape == (b, n, l)
    # with d_state 0 the state is empty and out = D·u: du = D, dΔ = 0
    torch.testing.assert_close(u.grad, torch.full_like(u, 2.0))
    assert delta.grad.abs().sum() == 0


def test_length_zero_is_refused_with_a_message():
    u, delta, A, B, C = (t[..., :0] if t.dim() == 3 else t for t in _ss_args())
    with pytest.raises(ScanArgumentError, match="length"):
        ssmzoo.selective_scan(u, delta, A, B, C, backend="reference")
