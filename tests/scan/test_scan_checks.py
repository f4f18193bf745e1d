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
