"""Optimiser parameter groups from the hints that units leave on their parameters.

Units never know the optimiser (s4d.py's habit): a parameter may carry ``p._ssmzoo_optim``, a dict
with ``weight_decay``, ``lr_scale`` and ``lr_max``. :func:`param_groups` reads them::

    opt = torch.optim.AdamW(ssmzoo.param_groups(model, lr=3e-3, weight_decay=0.1))

Without hints a parameter gets the base learning rate, and the base weight decay only if it has
two or more dimensions (no decay on biases and norm weights, as mamba_ssm and timm do).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ssmzoo.errors import HyperparameterTypeError

__all__ = ["param_groups", "HINT_ATTR", "HINT_KEYS"]

HINT_ATTR = "_ssmzoo_optim"
HINT_KEYS = ("weight_decay", "lr_scale", "lr_max")


def _settings(name: str, p: nn.Parameter, lr: float, weight_decay: float) -> tuple[float, float]:
    hint = getattr(p, HINT_ATTR, None) or {}
    for key in hint:
        if key not in HINT_KEYS:
            from ssmzoo.errors import did_you_mean

            raise HyperparameterTypeError(
                "param_groups", f"{name}.{HINT_ATTR}",
                f"keys among {', '.join(HINT_KEYS)}{did_you_mean(key, HINT_KEYS)}", key)
    wd = float(hint.get("weight_decay", weight_decay if p.dim() >= 2 else 0.0))
    plr = lr * float(hint.get("lr_scale", 1.0))
    if "lr_max" in hint:
        plr = min(plr, float(hint["lr_max"]))
    return plr, wd


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """AdamW parameter groups for ``model``: one group per distinct (lr, weight_decay).

    Each group is ``{"params": [...], "lr": ..., "weight_decay": ..., "names": [...]}`` (``names``
    lists the parameter names, for logging; torch optimisers keep extra keys). Frozen parameters
    (``requires_grad=False``) are left out. Groups come in the order their first parameter appears.
    """
    if lr <= 0:
        raise HyperparameterTypeError("param_groups", "lr", "a positive float", lr)
    if weight_decay < 0:
        raise HyperparameterTypeError("param_groups", "weight_decay", "a float >= 0", weight_decay)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        plr, wd = _settings(name, p, lr, weight_decay)
        group = groups.setdefault((plr, wd), {"params": [], "lr": plr, "weight_decay": wd,
                                              "names": []})
        group["params"].append(p)
        group["names"].append(name)
    return list(groups.values())
