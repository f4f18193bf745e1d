"""The benchmark harness and ``ssmzoo bench`` on CPU (tiny cases, so it runs anywhere)."""

from __future__ import annotations

import json
import time
from typing import ClassVar

import pytest
import torch

import ssmzoo.registry
from ssmzoo import bench
from ssmzoo.bench.measure import Ceilings
from ssmzoo.cli import main
from ssmzoo.scan.backend import ScanBackend
from ssmzoo.scan.reference import ReferenceBackend

# fixed ceilings so that no test spends time measuring the machine
CEIL = Ceilings(1e10, 1e9, 1e11, {"bytes_per_s": "test", "exps_per_s": "test",
                                  "matmul_flops_per_s": "test"})
TINY_SSD = bench.BenchCase("tiny-ssd", "ssd_scan", dict(batch=1, length=24, heads=2, headdim=4,
                                                        groups=1, d_state=3, chunk_size=8),
                           dtype="fp32", device="cpu")
TINY_SCAN = bench.BenchCase("tiny-scan", "selective_scan", dict(batch=1, dim=4, length=16,
                                                                d_state=3),
                            dtype="fp32", device="cpu", options=dict(B_bias=True, groups=2),
                            mode="fwdbwd")


def test_select_by_glob_and_unknown_names():
    names = [c.name for c in bench.select(["ssd-b8-*"])]
    assert names == ["ssd-b8-l4096-n16:fwd", "ssd-b8-l4096-n16:fwdbwd",
                     "ssd-b8-l4096-n128:fwd", "ssd-b8-l4096-n128:fwdbwd"]
    assert [c.name for c in bench.select(["ssd-cpu"], mode="fwd")] == ["ssd-cpu:fwd"]
    assert all(c.op == "selective_scan" and c.device == "cpu"
               for c in bench.select(op="selective_scan", device="cpu"))
    with pytest.raises(bench.UnknownCaseError, match="did you mean 'ssd-cpu:fwd'"):
        bench.select(["ssd-cpu:fwdd"])


def test_byte_floor_counts_each_input_and_output_once():
    s = TINY_SSD.shape
    b, l, h, p, g, n = (s[k] for k in ("batch", "length", "heads", "headdim", "groups", "d_state"))
    # x, dt, B, C, out (fp32) + A, D, dt_bias (fp32, per head)
    want = 4 * (b * l * h * p + b * l * h + 2 * b * l * g * n + b * l * h * p + 3 * h)
    assert TINY_SSD.bytes_moved() == want
    assert TINY_SCAN.exps() == 2 * 1 * 4 * 16 * 3  # one exp per update, recomputed backward
    assert bench.CASES["ssd-b8-l4096-n16:fwd"].targets  # the target numbers travel with it


def test_time_ms_measures_the_callable():
    t = bench.time_ms(lambda: time.sleep(0.01), "cpu", warmup=0, repeats=3)
    assert 9 < t.median_ms < 60 and t.repeats == 3 and t.min_ms <= t.median_ms <= t.max_ms


@pytest.mark.parametrize("case", [TINY_SSD, TINY_SCAN], ids=["ssd", "scan-fwdbwd"])
def test_run_case_times_every_backend_on_the_same_inputs(case):
    rep = bench.run_case(case, ["reference", "triton"], repeats=2, warmup=0, ceil=CEIL)
    by = {r.backend: r for r in rep.results}
    ref = by["reference"]
    assert ref.status == "ok" and ref.ms > 0 and rep.baseline == "reference"
    assert ref.vs_baseline == 1.0 and ref.err == 0.0
    assert ref.gbps == pytest.approx(rep.bytes_moved / (ref.ms * 1e-3) / 1e9)
    assert ref.x_bytes == pytest.approx(ref.ms / rep.floors_ms["bytes"])
    assert 0 < ref.ref_err < 1e-5 and ref.n_diff == 0  # fp32 vs the float64 reference
    if by["triton"].status != "ok":  # no GPU and no interpreter: it says why
        assert by["triton"].reason
    else:  # a different implementation: a small, nonzero error against the baseline's output
        assert 0 < by["triton"].err < 1e-4, by["triton"].err
        assert by["triton"].n_diff > 0 and 0 < by["triton"].ref_err < 1e-4
        assert by["triton"].out_rms == pytest.approx(ref.out_rms, rel=1e-4)
    table = bench.text([rep], {"device": "cpu"}, CEIL)
    assert case.name in table and "reference (base)" in table
    data = json.loads(bench.dumps([rep], {"device": "cpu"}, CEIL))
    assert data["cases"][0]["results"][0]["backend"] == "reference"


def test_cli_lists_and_rejects(capsys):
    assert main(["bench", "--list", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ssd-cpu:fwd" in out and "scan-cpu:fwdbwd" in out
    assert main(["bench", "--case", "sdd-cpu:fwd"]) == 1
    assert "did you mean 'ssd-cpu:fwd'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--case", "ssd-b8-l4096-n16:fwd"]) == 1
        assert "no CUDA device" in capsys.readouterr().err


def test_cli_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "ceilings", lambda device: CEIL)
    monkeypatch.setitem(bench.CASES, TINY_SSD.name, TINY_SSD)
    path = tmp_path / "r.json"
    assert main(["bench", "ssd", "--case", "tiny-ssd", "-b", "reference", "--repeats", "1",
                 "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["cases"][0]["name"] == "tiny-ssd"
    assert data["cases"][0]["results"][0]["status"] == "ok"
    assert "tiny-ssd" in capsys.readouterr().out


def test_text_of_a_case_where_every_backend_refused():
    rep = bench.run_case(TINY_SCAN, ["cuda"], repeats=1, warmup=0, ceil=CEIL)
    assert [r.status for r in rep.results] == ["refused"] and rep.results[0].reason
    table = bench.text([rep], {"device": "cpu"}, CEIL)
    assert "cuda" in table and "refused" in table


class _ReusedBuffer(ScanBackend):
    """The reference's output written into one buffer it returns on every call, scaled by the
    call count (as a backend with a static output buffer would leave it: each call overwrites
    what the previous returned)."""

    ops: ClassVar[tuple[str, ...]] = ("ssd_scan",)

    def __init__(self):
        self.buf, self.calls = None, 0

    def supports_ssd_scan(self, call):
        return True, ""

    def ssd_scan(self, call):
        self.calls += 1
        out = ReferenceBackend().ssd_scan(call)
        if self.buf is None:
            self.buf = torch.empty_like(out)
        with torch.no_grad():
            self.buf.copy_(out * self.calls)
        return self.buf


class _Twin(ScanBackend):
    """Another name for the reference: the same roundings in the same order, bit for bit."""

    ops: ClassVar[tuple[str, ...]] = ("ssd_scan",)

    def supports_ssd_scan(self, call):
        return True, ""

    def ssd_scan(self, call):
        return ReferenceBackend().ssd_scan(call)


@pytest.fixture
def registry(monkeypatch):
    reg = ssmzoo.registry.Registry()
    reg.backend("reference", ReferenceBackend())
    monkeypatch.setattr(ssmzoo.registry, "get_registry", lambda: reg)
    return reg


def test_check_keeps_a_copy_of_each_output(registry):
    """A backend that hands out one buffer and overwrites it on later calls: the check compares
    the first call's output (kept aside), not what the timed calls left in the buffer."""
    registry.backend("reused", _ReusedBuffer())
    rep = bench.run_case(TINY_SSD, ["reference", "reused"], repeats=3, warmup=1, ceil=CEIL)
    by = {r.backend: r for r in rep.results}
    assert registry.get_backend("reused").calls >= 5  # first + warmup + timed + peak-memory
    assert by["reused"].err == 0.0 and by["reused"].n_diff == 0
    assert by["reused"].ref_err == by["reference"].ref_err


def test_identical_outputs_still_show_their_error_against_float64(registry):
    """Two backends that agree bit for bit read 0.0 against each other (what the H100 showed
    for the Triton SSD and mamba_ssm's in bf16); the float64 column still gives each one's
    error, so agreement is told apart from a check that compared nothing."""
    registry.backend("twin", _Twin())
    case = bench.BenchCase("tiny-ssd-bf16", "ssd_scan", TINY_SSD.shape, dtype="bf16",
                           device="cpu")
    rep = bench.run_case(case, ["reference", "twin"], repeats=1, warmup=0, ceil=CEIL)
    ref, twin = (r for r in rep.results)
    assert twin.err == 0.0 and twin.n_diff == 0
    assert 1e-4 < twin.ref_err < 5e-2 and twin.ref_err == ref.ref_err  # bf16 rounding, shown
    table = bench.text([rep], {"device": "cpu"}, CEIL)
    assert "ref err" in table and "# differ" in table
