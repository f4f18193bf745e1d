"""S4D's convolution and recurrence agree; S4D's inits; S6 and Mamba match mamba_ssm's recipe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import ssmzoo
from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.models.inits import s4d_A_init
from tests.helpers import assert_close


@pytest.mark.parametrize("init", ["lin", "inv", "real"])
def test_s4d_fft_scan_and_step_agree_float64(init: str) -> None:
    torch.manual_seed(1)
    fft = ssmzoo.build(f"s4d(init={init}, d_state=8)", d_model=6).double()
    scan = ssmzoo.build(f"s4d(init={init}, d_state=8, mode=scan)", d_model=6).double()
    scan.load_state_dict(fft.state_dict())
    x = torch.randn(3, 41, 6, dtype=torch.float64, requires_grad=True)
    y_fft, y_scan = fft(x), scan(x)
    assert_close("fft vs scan", y_scan, y_fft, rtol=1e-10)
    g = torch.randn_like(y_fft)
    grads_fft = torch.autograd.grad((y_fft * g).sum(), [x, *fft.parameters()])
    grads_scan = torch.autograd.grad((y_scan * g).sum(), [x, *scan.parameters()])
    names = ["x"] + [n for n, _ in fft.named_parameters()]
    for n, a, b in zip(names, grads_fft, grads_scan):
        assert_close(f"d{n}", b, a, rtol=1e-10)
    with torch.no_grad():
        state, ys = fft.init_state(3), []
        for t in range(x.shape[1]):
            y_t, state = fft.step(x[:, t], state)
            ys.append(y_t)
        assert_close("fft vs recurrence", torch.stack(ys, 1), y_fft, rtol=1e-10)


def test_s4d_kernel_is_the_zoh_impulse_response() -> None:
    """K_l = 2 Re sum_n C B (e^{ΔA} - 1)/A e^{lΔA}: the response to a unit impulse (minus D)."""
    torch.manual_seed(2)
    unit = ssmzoo.build("s4d(d_state=4)", d_model=3).double()
    impulse = torch.zeros(1, 17, 3, dtype=torch.float64)
    impulse[:, 0] = 1
    with torch.no_grad():
        response = unit(impulse)[0].T - unit.D[:, None] * impulse[0].T    # (d, l)
        assert_close("kernel", unit.kernel(17), response, rtol=1e-12)


def test_s4d_inits_are_the_papers() -> None:
    n = torch.arange(4.0)
    log_re, im = s4d_A_init(4, "lin")
    assert torch.allclose(-torch.exp(log_re), torch.full((4,), -0.5))
    assert torch.allclose(im, math.pi * n)
    _, im = s4d_A_init(4, "inv")
    assert torch.allclose(im, (8 / math.pi) * (8 / (1 + 2 * n) - 1))
    log_re, im = s4d_A_init(4, "real")
    assert torch.allclose(-torch.exp(log_re), -(n + 1)) and not im.any()
    with pytest.raises(HyperparameterTypeError, match="even"):
        ssmzoo.build("s4d(d_state=5)", d_model=4)


def test_s6_follows_mamba_ssm_recipe() -> None:
    torch.manual_seed(3)
    unit = ssmzoo.build("s6", d_model=32)
    assert unit.dt_rank == 2  # ceil(32 / 16)
    assert torch.allclose(-torch.exp(unit.A_log), -torch.arange(1.0, 17).expand(32, 16))
    dt = F.softplus(unit.dt_bias)
    assert dt.min() >= 1e-4 * 0.999 and dt.max() <= 0.1 * 1.001
    assert torch.equal(unit.D, torch.ones(32))
    block = ssmzoo.build("mamba", d_model=16)
    assert block.d_inner == 32 and block.conv1d.kernel_size == (4,) and block.core.d_model == 32
    assert block.in_proj.bias is None and block.out_proj.bias is None


def test_s6_alg2_is_a_broadcast_rank_one_delta() -> None:
    """Algorithm 2: Δ = softplus(w·u + b_i), the same w·u for every channel."""
    torch.manual_seed(4)
    unit = ssmzoo.build("s6-alg2", d_model=8).double()
    assert unit.dt_rank == 1 and not hasattr(unit, "dt_proj")
    x = torch.randn(5, 8, dtype=torch.float64)
    raw, _, _ = unit._selection(x)
    w = unit.x_proj.weight[0]
    assert torch.allclose(raw, (x @ w)[:, None].expand(5, 8))
    with pytest.raises(HyperparameterTypeError, match="dt_broadcast"):
        ssmzoo.build("s6(dt_rank=2, dt_broadcast=true)", d_model=8)


def test_real_unit_rejects_oscillating_init() -> None:
    with pytest.raises(HyperparameterTypeError, match="complex=true"):
        ssmzoo.build("s6(init=lin)", d_model=8)
    with pytest.raises(HyperparameterTypeError, match="complex=true"):
        ssmzoo.build("b2s6(complex=false, init=lin)", d_model=8)


def test_mamba_with_any_core_is_causal() -> None:
    """Changing a later input leaves earlier outputs untouched (conv padding + scan)."""
    torch.manual_seed(5)
    for spec in ("mamba", "mamba-b2s6", "mamba-s4d", "mamba2"):
        unit = ssmzoo.build(spec, d_model=16).double()
        x = torch.randn(1, 12, 16, dtype=torch.float64)
        x2 = x.clone()
        x2[:, 7:] += 1
        with torch.no_grad():
            assert torch.allclose(unit(x)[:, :7], unit(x2)[:, :7], atol=1e-12), spec
            assert not torch.allclose(unit(x)[:, 7:], unit(x2)[:, 7:]), spec


def test_mamba_core_must_be_a_core() -> None:
    with pytest.raises(HyperparameterTypeError, match=r"core spec \(b2s6, s4d, s6"):
        ssmzoo.build("mamba(core=mamba2)", d_model=16)
    assert ssmzoo.build("mamba(core=b2s6-nobias)", d_model=16).ssmzoo_spec == \
        "mamba(core=b2s6(bias=false))"
