"""Length extension of a character LM: identity, Δ scaling, constant and calibrated A scaling.

The experiment of Mamba Modulation (PAPERS.md 2.2, claim 8 of section 5) at toy scale: a small
language model trained at one context length is evaluated at longer ones, unchanged and with each
length-extension method of :mod:`ssmzoo.extend`:

- ``identity``: the model as trained;
- ``delta``: the naive control Δ -> Δ·L_train/L_test (:func:`~ssmzoo.extend.naive_delta_scaling`);
- ``constant``: one power-form scale s for every layer (A -> -|A|^s), the best of a few candidates
  on the calibration split;
- ``calibrated``: per-layer power-form scales found by SPSA on the calibration split
  (:func:`~ssmzoo.calibrate_scales`), separately for each target length, as the paper does;
- ``delta-calibrated``: the same SPSA over per-layer Δ scales (MambaExtend's search).

Calibration uses the validation part of the corpus and the perplexities are measured on the test
part, so no method is scored on the text it was tuned on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from ssmzoo.errors import HyperparameterTypeError, did_you_mean

__all__ = ["METHODS", "extension_rows", "extension_metrics", "extension_table"]

METHODS = ("identity", "delta", "constant", "calibrated", "delta-calibrated")


def _windows(path: str, length: int, split: str) -> Any:
    from ssmzoo.tasks.real import Chars

    return Chars(path=path, seq_len=length).split(split)


def extension_rows(model: nn.Module, *, train_length: int, lengths: Sequence[int],
                   methods: Sequence[str] = ("identity", "delta", "constant", "calibrated"),
                   path: str = "", calib_windows: int = 2, eval_windows: int = 4,
                   calib_steps: int = 10, constant_candidates: Sequence[float] = (0.25, 0.5, 0.75),
                   batch_size: int = 2, seed: int = 0,
                   max_scale: float = 1.0) -> list[dict[str, Any]]:
    """Perplexity of ``model`` at each length under each method; the model is left unscaled.

    Args:
        model: a language model (token ids (b, l) -> logits (b, l, 256)) whose units own an A.
        train_length: the context length it was trained at (for the ``delta`` control).
        lengths: the context lengths to evaluate at.
        methods: any of :data:`METHODS`.
        path: the text file (empty: the corpus that ships with Python), as the ``chars`` task.
        calib_windows: calibration windows (from the validation part) per length.
        eval_windows: evaluation windows (from the test part) per length.
        calib_steps: SPSA steps per length.
        constant_candidates: the global scales the ``constant`` method chooses from.
        batch_size: windows per forward pass.
        seed: seeds the SPSA.
        max_scale: the upper clip of the calibrated scales (1 in the paper, which can then only
            slow the decays of modes with |A| > 1; above 1 lets them speed up).

    Returns one row per (method, length): ``method``, ``length``, ``perplexity``, ``scales``.
    """
    from ssmzoo.extend import calibrate_scales, lm_perplexity, modulate, naive_delta_scaling

    for m in methods:
        if m not in METHODS:
            raise HyperparameterTypeError("length extension", "methods",
                                          " | ".join(METHODS) + did_you_mean(m, METHODS), m)
    rows: list[dict[str, Any]] = []
    for length in lengths:
        test = _windows(path, length, "test")
        calib = _windows(path, length, "val")
        n_cal = min(calib_windows, len(calib))
        calib_ids = type(calib)(calib.inputs[:n_cal], calib.targets[:n_cal])

        def score(data: Any, length: int = length, limit: int = 0) -> float:
            return lm_perplexity(model, data, length, batch_size=batch_size, max_windows=limit)

        for method in methods:
            modulate(model, 1.0, mode="power")
            scales: list[float] = []
            if method == "delta":
                naive_delta_scaling(model, train_length, length)
                scales = [train_length / length]
            elif method == "constant":
                pool = [c for c in (*constant_candidates, 1.0, 1.25, 1.5, 2.0) if c <= max_scale]
                best = min(pool,
                           key=lambda s: (modulate(model, s), score(calib_ids))[1])
                modulate(model, best)
                scales = [best]
            elif method in ("calibrated", "delta-calibrated"):
                cal = calibrate_scales(model, calib_ids, length, steps=calib_steps, seed=seed,
                                       mode="power" if method == "calibrated" else "delta",
                                       batch_size=batch_size, bounds=(0.01, max_scale))
                scales = cal.scales
            rows.append({"method": method, "length": length,
                         "perplexity": score(test, limit=eval_windows),
                         "scales": scales})
    modulate(model, 1.0, mode="power")
    return rows


def extension_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Flat metrics for a grid row.

    - ``ppl@L/method`` for every row;
    - ``calibrated_gain``: the identity perplexity over the calibrated one at the longest length
      (> 1: calibration helped);
    - ``identity_rise``: the identity perplexity at the longest length over the one at the
      shortest (the training length in the grid): how badly the unchanged model fails. The two
      are measured on different windows of the test part, so a value near 1 means "no failure",
      not "no change";
    - ``scale@L/method`` (one scale) or ``scale@L/method/i`` (layer i) for the scaled methods.
    """
    out = {f"ppl@{r['length']}/{r['method']}": float(r["perplexity"]) for r in rows}
    lengths = sorted({r["length"] for r in rows})
    longest = lengths[-1] if lengths else 0
    ident = out.get(f"ppl@{longest}/identity")
    cal = out.get(f"ppl@{longest}/calibrated")
    if ident is not None and cal is not None and cal > 0:
        out["calibrated_gain"] = ident / cal
    first = out.get(f"ppl@{lengths[0]}/identity") if lengths else None
    if ident is not None and first and len(lengths) > 1:
        out["identity_rise"] = ident / first
    for r in rows:
        scales = list(r.get("scales") or [])
        key = f"scale@{r['length']}/{r['method']}"
        if len(scales) == 1:
            out[key] = float(scales[0])
        else:
            out.update({f"{key}/{i}": float(v) for i, v in enumerate(scales)})
    return out


def extension_table(metrics: Sequence[dict[str, float]]) -> str:
    """A markdown table (method x length, mean ± std of the perplexity over the given runs)."""
    import statistics

    keys = sorted({k for m in metrics for k in m if k.startswith("ppl@")},
                  key=lambda k: (int(k[4:].split("/")[0]), k))
    lengths = list(dict.fromkeys(int(k[4:].split("/")[0]) for k in keys))
    methods = [m for m in METHODS if any(k.endswith("/" + m) for k in keys)]
    lines = ["| method | " + " | ".join(f"ppl @ {L}" for L in lengths) + " |",
             "|---|" + "---:|" * len(lengths)]
    for method in methods:
        cells = []
        for L in lengths:
            vals = [m[f"ppl@{L}/{method}"] for m in metrics if f"ppl@{L}/{method}" in m]
            vals = [v for v in vals if math.isfinite(v)]
            if not vals:
                cells.append("—")
                continue
            mean = statistics.fmean(vals)
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{mean:.2f} ± {std:.2f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
