"""B2S6's claims as tests: it contains S6, its blocks are independent, its bias is per channel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

import ssmzoo
from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.models.inits import as_complex
from tests.helpers import assert_close

D = 12


def _s6_from_b2s6(b2s6: torch.nn.Module) -> torch.nn.Module:
    """An s6-alg2 holding b2s6(h=1, bias=false, complex=false)'s weights, copied across."""
    s6 = ssmzoo.build("s6-alg2", d_model=b2s6.d_model).double()
    n = b2s6.d_state
    with torch.no_grad():
        s6.x_proj.weight[0] = b2s6.dt_weight[0]                  # w: (d,)
        s6.x_proj.weight[1: 1 + n] = b2s6.B_weight[0]            # B rows: (n, d)
        s6.x_proj.weight[1 + n:] = b2s6.C_weight[0].T            # C rows: (n, d)
        s6.dt_bias.copy_(b2s6.dt_bias)
        s6.A_log.copy_(b2s6.A_log.expand(b2s6.d_model, n))
        s6.D.copy_(b2s6.D)
    return s6


def test_h1_without_bias_real_euler_is_s6_alg2() -> None:
    """PAPERS.md 1.2: h=1 and B_bias=0 is S6 (Algorithm 2), outputs and every gradient."""
    torch.manual_seed(0)
    b2s6 = ssmzoo.build("b2s6(h=1, bias=false, complex=false, discretization=euler)",
                        d_model=D).double()
    s6 = _s6_from_b2s6(b2s6)
    x = torch.randn(3, 29, D, dtype=torch.float64, requires_grad=True)
    y1, y2 = b2s6(x), s6(x)
    assert_close("output", y2, y1, rtol=1e-12)
    g = torch.randn_like(y1)
    gx1, gdtw, gB, gC, gb, gA, gD = torch.autograd.grad(
        (y1 * g).sum(), [x, b2s6.dt_weight, b2s6.B_weight, b2s6.C_weight, b2s6.dt_bias,
                         b2s6.A_log, b2s6.D])
    gx2, gW, gb2, gA2, gD2 = torch.autograd.grad(
        (y2 * g).sum(), [x, s6.x_proj.weight, s6.dt_bias, s6.A_log, s6.D])
    n = b2s6.d_state
    assert_close("dx", gx2, gx1, rtol=1e-12)
    assert_close("dw", gW[0], gdtw[0], rtol=1e-12)
    assert_close("dB_weight", gW[1: 1 + n], gB[0], rtol=1e-12)
    assert_close("dC_weight", gW[1 + n:].T, gC[0], rtol=1e-12)
    assert_close("ddt_bias", gb2, gb, rtol=1e-12)
    assert_close("dA", gA2.sum(0), gA, rtol=1e-12)
    assert_close("dD", gD2, gD, rtol=1e-12)


def test_zero_B_weight_leaves_each_channel_its_own_input_matrix() -> None:
    """PAPERS.md 1.2: B_weight = 0 gives channel i the fixed input matrix B_bias^(i), while Δ and
    C stay input-dependent; checked against the recurrence written out per channel."""
    torch.manual_seed(1)
    unit = ssmzoo.build("b2s6(h=3)", d_model=D).double()
    with torch.no_grad():
        unit.B_weight.zero_()
    x = torch.randn(2, 17, D, dtype=torch.float64)
    with torch.no_grad():
        y = unit(x)
        A = unit.effective_A()[0]                                             # (m,) shared
        xb = rearrange(x, "b l (h p) -> b l h p", h=3)
        dt = F.softplus(repeat(torch.einsum("blhp,hp->blh", xb, unit.dt_weight),
                               "b l h -> b l (h p)", p=4) + unit.dt_bias)     # (b, l, d)
        C = repeat(torch.einsum("blhp,hpm->blhm", xb.to(torch.complex128),
                                as_complex(unit.C_weight)), "b l h m -> b l (h p) m", p=4)
        Bi = as_complex(unit.B_bias)                                          # (d, m)
        h = torch.zeros(2, D, A.shape[0], dtype=torch.complex128)
        ys = []
        for t in range(17):
            dA = torch.exp(dt[:, t, :, None] * A)
            h = dA * h + (dA - 1) / A * Bi * x[:, t, :, None]
            ys.append(2 * (C[:, t] * h).sum(-1).real + unit.D * x[:, t])
        assert_close("per-channel recurrence", torch.stack(ys, 1), y, rtol=1e-10)
        assert (Bi[0] - Bi[1]).abs().max() > 0  # channels of one block have different matrices


def test_blocks_select_from_their_own_inputs_only() -> None:
    """Δ, B and C of block j are computed from block j's inputs: perturbing block 0 leaves the
    other blocks' outputs unchanged."""
    torch.manual_seed(2)
    unit = ssmzoo.build("b2s6(h=4)", d_model=D).double()
    x = torch.randn(2, 11, D, dtype=torch.float64)
    x2 = x.clone()
    x2[..., :3] = torch.randn(2, 11, 3, dtype=torch.float64)
    with torch.no_grad():
        y, y2 = unit(x), unit(x2)
    assert torch.allclose(y[..., 3:], y2[..., 3:], atol=1e-13)
    assert not torch.allclose(y[..., :3], y2[..., :3])
    s6 = ssmzoo.build("s6", d_model=D).double()  # contrast: S6's B, C mix every channel
    with torch.no_grad():
        assert not torch.allclose(s6(x)[..., 3:], s6(x2)[..., 3:])


def test_a_is_one_diagonal_shared_by_every_channel() -> None:
    unit = ssmzoo.build("b2s6", d_model=16)
    A = unit.effective_A()
    assert A.is_complex() and A.shape == (16, 8)
    assert torch.equal(A, A[:1].expand_as(A))
    assert torch.allclose(A[0].real, torch.full((8,), -0.5))                  # S4D-Lin
    assert torch.allclose(A[0].imag, torch.pi * torch.arange(8.0))
    assert unit.A_log.shape == (8,)


def test_euler_and_zoh_differ_at_first_order_in_delta() -> None:
    """ZOH's (exp(ΔA) - 1)/A = Δ(1 + ΔA/2 + ...): the gap to Euler shrinks linearly with Δ."""
    from ssmzoo.models.inits import inv_softplus

    torch.manual_seed(3)
    zoh = ssmzoo.build("b2s6(h=4)", d_model=D).double()
    euler = ssmzoo.build("b2s6-euler(h=4)", d_model=D).double()
    x = torch.randn(2, 9, D, dtype=torch.float64)
    gaps = []
    for dt in (1e-3, 1e-2):
        with torch.no_grad():
            zoh.dt_weight.zero_()
            zoh.dt_bias.fill_(float(inv_softplus(torch.tensor(dt, dtype=torch.float64))))
            euler.load_state_dict(zoh.state_dict())
            ssm = zoh(x) - zoh.D * x                                    # the SSM part only
            gaps.append(float((zoh(x) - euler(x)).norm() / ssm.norm()))
    assert 0 < gaps[0] < gaps[1] < 0.5
    assert 5 < gaps[1] / gaps[0] < 20, gaps


def test_h_must_divide_d_model_and_says_which_do() -> None:
    with pytest.raises(HyperparameterTypeError, match=r"divisor of d_model=12 \(1, 2, 3, 4, 6, 12\)"):
        ssmzoo.build("b2s6(h=5)", d_model=12)


def test_optimiser_hints_of_b2s6() -> None:
    model = ssmzoo.build_model("lm(mixer=mamba(core=b2s6(h=4, dt_lr_scale=0.25)), d_model=16, "
                               "n_layers=1, vocab_size=11)")
    groups = ssmzoo.param_groups(model, lr=1e-2, weight_decay=0.1)
    where = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    core = "layers.0.mixer.core."
    assert where[core + "dt_weight"] == (pytest.approx(2.5e-3), 0.1)
    assert where[core + "dt_bias"] == (pytest.approx(2.5e-3), 0.0)
    for name in ("A_log", "A_imag", "D", "B_bias"):
        assert where[core + name] == (1e-2, 0.0), name
    for name in ("B_weight", "C_weight"):
        assert where[core + name] == (1e-2, 0.1), name
    assert where["layers.0.mixer.in_proj.weight"] == (1e-2, 0.1)
    assert where["layers.0.norm.weight"] == (1e-2, 0.0)
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_params
    torch.optim.AdamW(groups)  # the groups are what AdamW takes


def test_train_dt_false_freezes_the_selection_of_delta() -> None:
    unit = ssmzoo.build("b2s6(train_dt=false)", d_model=16)
    assert not unit.dt_weight.requires_grad and not unit.dt_bias.requires_grad
    names = {n for g in ssmzoo.param_groups(unit, 1e-3) for n in g["names"]}
    assert "dt_weight" not in names and "B_weight" in names


def test_describe_b2s6_lists_hyperparameters_paper_and_variants() -> None:
    text = str(ssmzoo.describe("b2s6"))
    for key in ("h", "d_state", "bias", "complex", "discretization", "init", "dt_lr_scale"):
        assert f"\n    {key} " in text, key
    assert "Block-Biased Mamba" in text
    for variant in ("b2s6-nobias", "b2s6-real", "b2s6-h1", "b2s6-euler"):
        assert variant in text
    for name in ssmzoo.list_units("*"):
        if ssmzoo.describe(name).kind == "variant":
            assert ssmzoo.describe(name).doc, f"variant {name} has no doc"
