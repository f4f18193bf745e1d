"""The Δ-gradient measurement of B2S6's Theorem 3: checked against a plain loop, then its slopes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmzoo.repro.dt_gradients import (
    DrawSpec,
    draw,
    gradient_means,
    length_sweep,
    loglog_slope,
    scale_sweep,
)


def loop_gradients(u: torch.Tensor, p: dict[str, torch.Tensor]) -> dict[str, float]:
    """The same three means from the paper's recurrences, written out step by step."""
    s, t, L = u.shape
    A, B, C = p["A"], p["B"], p["C"]
    w = p["w"][None].expand(s, t).clone().requires_grad_(True)
    b6 = p["b"][None].expand(s, t).clone().requires_grad_(True)
    b4 = p["b"][None].expand(s, t).clone().requires_grad_(True)
    x6 = torch.zeros(s, t, A.shape[1], dtype=torch.complex128)
    x4 = torch.zeros_like(x6)
    dt4 = F.softplus(b4)[..., None]                                  # (s, t, 1)
    for k in range(L):
        uk = u[:, :, k, None]                                        # (s, t, 1)
        dt6 = F.softplus(w[..., None] * uk + b6[..., None])          # (s, t, 1)
        x6 = torch.exp(dt6 * A) * x6 + (torch.exp(dt6 * A) - 1) / A * B * uk * uk
        x4 = torch.exp(dt4 * A) * x4 + (torch.exp(dt4 * A) - 1) / A * B * uk
    y6 = 2 * (u[:, :, -1, None] * C * x6).sum(-1).real               # (s, t)
    y4 = 2 * (C * x4).sum(-1).real                                   # (s, t)
    gw, gb6 = torch.autograd.grad(y6.sum(), (w, b6))
    (gb4,) = torch.autograd.grad(y4.sum(), (b4,))
    return {"s6_w": float(gw.abs().mean()), "s6_b": float(gb6.abs().mean()),
            "s4d_b": float(gb4.abs().mean())}


def test_measurement_matches_a_plain_loop() -> None:
    spec = DrawSpec(trials=3, samples=4, n_modes=3, w_std=0.3)
    p = draw(spec, seed=5)
    u = torch.randn(4, 3, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got, want = gradient_means(u, p), loop_gradients(u, p)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_draws_are_seeded_and_in_the_left_half_plane() -> None:
    a, b = draw(DrawSpec(trials=4), 0), draw(DrawSpec(trials=4), 0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert bool((a["A"].real < 0).all())
    assert not torch.equal(a["A"], draw(DrawSpec(trials=4), 1)["A"])


def test_loglog_slope() -> None:
    x = [1.0, 2.0, 4.0, 8.0]
    assert loglog_slope(x, [3 * v**2.5 for v in x]) == pytest.approx(2.5)


@pytest.mark.slow
def test_slopes_in_the_input_scale_near_3_and_2() -> None:
    rows = scale_sweep([0.25, 0.5, 1.0, 2.0], length=48, spec=DrawSpec(trials=10, samples=8))
    c = [r["c"] for r in rows]
    assert loglog_slope(c, [r["ratio_w"] for r in rows]) == pytest.approx(3.0, abs=0.35)
    assert loglog_slope(c, [r["ratio_b"] for r in rows]) == pytest.approx(2.0, abs=0.25)


@pytest.mark.slow
def test_slope_in_the_length_near_one_half() -> None:
    rows = length_sweep([64, 256, 1024], spec=DrawSpec(trials=16, samples=8))
    slope = loglog_slope([r["length"] for r in rows], [r["ratio_b"] for r in rows])
    assert 0.3 < slope < 0.7, slope
    assert all(math.isclose(r["length"] * math.exp(r["b"]), 1.0) for r in rows)
