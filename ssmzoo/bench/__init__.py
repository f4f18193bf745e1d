"""``ssmzoo bench``: every available backend for each scan, side by side on the same inputs.

For each case (a scan call: shapes, dtype, options, forward or forward+backward) the harness makes
one set of random inputs, runs every backend that implements the op (a backend that refuses the
call is listed with its reason), and reports the median time, the peak extra memory, the effective
bandwidth, the ratios to the byte floor (each input read once, each output written once), the exp
floor (one exp per state update) and, for SSD, the matrix-product floor, the ratio to a baseline
backend (mamba_ssm's when present) and the output's error against the baseline's.

From Python (what ``benchmarks/*.py`` scripts call)::

    from ssmzoo import bench
    cases = bench.select(["ssd-b8-*"])                 # built-in cases, by glob
    reports = bench.run(cases, backends=["triton", "mamba_ssd"])
    print(bench.text(reports, bench.environment("cuda"), bench.ceilings("cuda")))

A case of one's own is a :class:`BenchCase`; ``run_case(case, backends)`` times it.
"""

from __future__ import annotations

from ssmzoo.bench.cases import CASES, BenchCase, UnknownCaseError, select
from ssmzoo.bench.measure import Ceilings, Timing, ceilings, environment, peak_memory, time_ms
from ssmzoo.bench.report import dumps, text, to_json
from ssmzoo.bench.runner import CaseReport, Result, backends_for, run, run_case

__all__ = [
    "CASES", "BenchCase", "UnknownCaseError", "select", "Ceilings", "Timing", "ceilings",
    "environment", "peak_memory", "time_ms", "dumps", "text", "to_json", "CaseReport", "Result",
    "backends_for", "run", "run_case",
]
