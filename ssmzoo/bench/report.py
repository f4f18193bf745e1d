"""Benchmark reports: a plain-text (and markdown) table and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ssmzoo.bench.measure import Ceilings
from ssmzoo.bench.runner import CaseReport

COLUMNS = ("backend", "ms", "peak MB", "GB/s", "x bytes", "x exp", "x mma", "vs base", "rel err",
           "# differ", "ref err")


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _rows(rep: CaseReport) -> list[list[str]]:
    rows = []
    for r in rep.results:
        if r.status != "ok":
            rows.append([r.backend, f"{r.status}: {r.reason}"])
            continue
        base = " (base)" if r.backend == rep.baseline else ""
        rows.append([
            r.backend + base, _fmt(r.ms, ".3f"),
            _fmt(r.peak_bytes / 2**20 if r.peak_bytes is not None else None, ".0f"),
            _fmt(r.gbps, ".3g"), _fmt(r.x_bytes, ".1f"), _fmt(r.x_exp, ".1f"),
            _fmt(r.x_mma, ".1f"), _fmt(r.vs_baseline, ".2f"), _fmt(r.err, ".1e"),
            _fmt(r.n_diff, "d"), _fmt(r.ref_err, ".1e"),
        ])
    return rows


def text(reports: Sequence[CaseReport], env: dict[str, str], ceil: Ceilings | None = None,
         markdown: bool = False) -> str:
    """The table: one block per case, one row per backend, floors and targets in the header."""
    lines = [" | ".join(f"{k} {v}" for k, v in env.items())]
    if ceil is not None:
        lines.append(f"ceilings: {ceil.bytes_per_s / 1e9:.0f} GB/s, "
                     f"{ceil.exps_per_s / 1e9:.0f} Gexp/s, "
                     f"{ceil.matmul_flops_per_s / 1e12:.1f} TFLOP/s matmul "
                     f"({'; '.join(f'{k}: {v}' for k, v in ceil.source.items())})")
    for rep in reports:
        c = rep.case
        floors = ", ".join(f"{k} {v:.3f} ms" for k, v in rep.floors_ms.items())
        lines += ["", f"## {c.name}  ({c.describe()}; {c.mode})",
                  f"floors: {floors}; {rep.bytes_moved / 1e6:.3g} MB moved"]
        if c.targets:
            lines.append("targets: " + ", ".join(f"{k}: {v} ms" for k, v in c.targets.items()))
        if c.note:
            lines.append(c.note)
        rows = _rows(rep)
        if markdown:
            lines += ["", "| " + " | ".join(COLUMNS) + " |",
                      "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(r + [""] * (len(COLUMNS) - len(r))) + " |" for r in rows]
            continue
        full = [r for r in rows if len(r) == len(COLUMNS)]  # refused rows are (name, reason)
        widths = [max([len(COLUMNS[i])] + [len(r[i]) for r in full]) for i in range(len(COLUMNS))]
        lines.append("  ".join(h.rjust(w) if i else h.ljust(w)
                               for i, (h, w) in enumerate(zip(COLUMNS, widths))))
        for r in rows:
            if len(r) != len(COLUMNS):
                lines.append(f"{r[0].ljust(widths[0])}  {r[1]}")
            else:
                lines.append("  ".join(v.rjust(w) if i else v.ljust(w)
                                       for i, (v, w) in enumerate(zip(r, widths))))
    lines.append("")
    lines.append("x bytes / x exp / x mma: time over the floor (each input read once and each "
                 "output written once at the measured bandwidth; one exp per state update on the "
                 "special-function units; the chunked SSD's matrix products at the measured matmul "
                 "rate). vs base: time over the baseline backend's; rel err: output vs baseline's "
                 "(# differ: its elements that differ); ref err: output vs the float64 reference "
                 "on the first batch row.")
    return "\n".join(lines)


def to_json(reports: Sequence[CaseReport], env: dict[str, str],
            ceil: Ceilings | None = None) -> dict[str, Any]:
    """Everything in the table, machine-readable."""
    return {
        "environment": env,
        "ceilings": asdict(ceil) if ceil is not None else None,
        "cases": [{
            "name": r.case.name, "op": r.case.op, "mode": r.case.mode, "dtype": r.case.dtype,
            "device": r.case.device, "shape": r.case.shape, "options": r.case.options,
            "targets_ms": r.case.targets, "bytes_moved": r.bytes_moved, "floors_ms": r.floors_ms,
            "baseline": r.baseline, "results": [asdict(x) for x in r.results],
        } for r in reports],
    }


def dumps(reports: Sequence[CaseReport], env: dict[str, str], ceil: Ceilings | None = None) -> str:
    return json.dumps(to_json(reports, env, ceil), indent=2)
