"""Timing, memory and the machine's ceilings.

- :func:`time_ms`: median milliseconds of a callable: CUDA events around each call on a GPU (after a
  warm-up, every call synchronised), ``time.perf_counter`` with repeats on a CPU.
- :func:`peak_memory`: extra device memory one call allocates at its peak (GPU only).
- :func:`ceilings`: memory bandwidth, transcendental (exp) rate and matrix rate of the device, the
  denominators of the floors; measured where that is meaningful, datasheet-derived where not
  (each value says which).
- :func:`environment`: device, versions and date, printed beside every table.
"""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache

import torch

# Hopper's special-function units: 16 MUFU results per clock per SM (CUDA programming guide,
# arithmetic instruction throughput, compute capability 9.0); the H100 SXM boosts to 1.98 GHz.
SFU_PER_CLOCK_PER_SM = 16
HOPPER_CLOCK_HZ = 1.98e9


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device | str, *, warmup: int = 3,
            repeats: int = 20, min_time_s: float = 0.0) -> Timing:
    """Median time of ``fn()`` in ms over ``repeats`` calls (more while under ``min_time_s``)."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_time_s:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 10 * repeats:
            break
    return Timing(statistics.median(times), min(times), max(times), len(times))


def peak_memory(fn: Callable[[], object], device: torch.device | str) -> int | None:
    """Bytes allocated by one ``fn()`` call at its peak, above what was allocated before it
    (None on a CPU, where torch keeps no such counter)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    _sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return int(torch.cuda.max_memory_allocated(device) - base)


@dataclass(frozen=True)
class Ceilings:
    """What the floors divide by; ``source`` says how each number was obtained."""

    bytes_per_s: float
    exps_per_s: float
    matmul_flops_per_s: float
    source: dict[str, str]


@cache
def ceilings(device_type: str) -> Ceilings:
    """The device's memory bandwidth, exp rate and matrix rate (cached per device type)."""
    if device_type == "cuda":
        return _cuda_ceilings()
    return _cpu_ceilings()


def _copy_rate(device: torch.device, n: int) -> float:
    """Bytes per second of a copy of n fp32 (read + write)."""
    a = torch.rand(n, device=device)
    b = torch.empty_like(a)
    t = time_ms(lambda: b.copy_(a), device, warmup=1, repeats=5).median_ms
    return 2 * n * 4 / (t * 1e-3)


def _matmul_rate(device: torch.device, n: int, dtype: torch.dtype) -> float:
    m = torch.randn(n, n, device=device).to(dtype)
    t = time_ms(lambda: m @ m, device, warmup=1, repeats=5).median_ms
    return 2 * n**3 / (t * 1e-3)


def _cuda_ceilings() -> Ceilings:
    dev = torch.device("cuda")
    bw = _copy_rate(dev, 1 << 28)  # 1 GiB of fp32: far past L2
    mm = _matmul_rate(dev, 8192, torch.bfloat16)
    torch.cuda.empty_cache()
    props = torch.cuda.get_device_properties(dev)
    clock = getattr(props, "clock_rate", 0) * 1e3 or HOPPER_CLOCK_HZ  # kHz when present
    exps = props.multi_processor_count * SFU_PER_CLOCK_PER_SM * clock
    return Ceilings(bw, exps, mm, {
        "bytes_per_s": "measured: 1 GiB device-to-device copy, read + write",
        "exps_per_s": f"{props.multi_processor_count} SMs x {SFU_PER_CLOCK_PER_SM} SFU/clock x "
                      f"{clock / 1e9:.2f} GHz",
        "matmul_flops_per_s": "measured: 8192^3 bf16 torch.matmul",
    })


def _cpu_ceilings() -> Ceilings:
    cpu = torch.device("cpu")
    n = 1 << 24  # 64 MiB of fp32
    a = torch.rand(n)
    te = time_ms(lambda: torch.exp(a), cpu, warmup=1, repeats=5).median_ms
    bw, mm = _copy_rate(cpu, n), _matmul_rate(cpu, 1024, torch.float32)
    return Ceilings(bw, n / (te * 1e-3), mm, {
        "bytes_per_s": "measured: 64 MiB copy, read + write",
        "exps_per_s": "measured: torch.exp over 16M fp32",
        "matmul_flops_per_s": "measured: 1024^3 fp32 torch.matmul",
    })


def environment(device_type: str) -> dict[str, str]:
    """Device, library versions and the date (UTC), for the header of every report."""
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "device": device_type}
    if device_type == "cuda" and torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name()
        info["cuda"] = str(torch.version.cuda)
    else:
        import platform

        info["device"] = f"CPU {platform.processor() or platform.machine()}, " \
                         f"{torch.get_num_threads()} threads"
    for mod in ("triton", "mamba_ssm"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # absent, or broken on this machine: say so rather than fail
            info[mod] = "not importable"
    return info


def as_dict(c: Ceilings) -> dict[str, object]:
    return asdict(c)
