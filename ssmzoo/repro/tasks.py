"""Grid cells that are more than one training run: a measurement, and train-then-extend.

A task here has, besides the :class:`~ssmzoo.tasks.base.Task` protocol, a method
``run_cell(mixer, *, model, train, seed, progress, registry) -> (TrainResult, resolved)`` with the
signature and the result of :func:`ssmzoo.train.run`. A grid runner calls it instead of
``ssmzoo.train.run`` when the task has it (:func:`ssmzoo.grid.cell.run_cell` does), so the cell
is stored, resumed and reported like any other.

- ``dt_gradients``: no training; measures the log-log slope of the S6/S4D gradient ratio of
  B2S6's Theorem 3 (:mod:`ssmzoo.repro.dt_gradients`) and reports it as the cell's ``slope``.
- ``length_extension``: trains the language model on ``chars`` at ``seq_len`` as usual, then
  measures its perplexity at longer lengths under each extension method
  (:mod:`ssmzoo.repro.length_extension`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ssmzoo.errors import HyperparameterTypeError
from ssmzoo.tasks.base import RegressionTask, Split
from ssmzoo.tasks.real import Chars

if TYPE_CHECKING:
    from ssmzoo.registry import Registry
    from ssmzoo.train import TrainConfig, TrainResult

__all__ = ["DtGradients", "LengthExtension"]


class DtGradients(RegressionTask):
    """Growth of S6's gradients in its Δ parameters relative to S4D's (B2S6 Thm 3, App. E.1).

    A measurement, not a training run: the cell's variant only labels the row. ``sweep=scale``
    varies the input scale c at a fixed length; ``sweep=length`` varies L with w = 0 and L·e^b
    fixed. Metrics: ``slope`` (least squares, log-log) and the ratio at every point. The paper's
    slopes are 3 (ratio w), 2 (ratio b, in c) and 1/2 (ratio b, in L).

    Args:
        sweep: scale (vary c) or length (vary L with L·e^b fixed).
        ratio: w (E|dy_S6/dw| / E|dy_S4D/db|) or b (E|dy_S6/db| / E|dy_S4D/db|).
        scales: input scales c of the scale sweep.
        lengths: lengths L of the length sweep.
        seq_len: length of the scale sweep.
        trials: random draws of (A, B, C, w, b).
        samples: input sequences per draw.
        n_modes: complex modes of A.
        w_std: standard deviation of w in the scale sweep.
    """

    metric: ClassVar[str] = "slope"
    higher_is_better: ClassVar[bool] = True

    def __init__(self, sweep: Literal["scale", "length"] = "scale", ratio: Literal["w", "b"] = "b",
                 scales: list[float] | None = None, lengths: list[int] | None = None,
                 seq_len: int = 100, trials: int = 30, samples: int = 32, n_modes: int = 8,
                 w_std: float = 0.05):
        super().__init__()
        if sweep == "length" and ratio != "b":
            raise HyperparameterTypeError("task 'dt_gradients'", "ratio", "'b' with sweep=length "
                                          "(w = 0 there)", ratio)
        self.sweep, self.ratio, self.seq_len = sweep, ratio, seq_len
        self.scales = list(scales or [0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
        self.lengths = list(lengths or [64, 128, 256, 512, 1024])
        self.trials, self.samples, self.n_modes, self.w_std = trials, samples, n_modes, w_std

    def head(self) -> dict[str, Any]:
        return {"d_input": 1, "d_output": 1}

    def _make(self, split: str, seed: int) -> Split:
        import torch

        return Split(torch.zeros(1, 1, 1), torch.zeros(1, 1))  # nothing is trained

    def measure(self, seed: int = 0) -> tuple[float, list[dict[str, float]]]:
        """(slope, rows): the fitted log-log slope and the measured points."""
        from ssmzoo.repro.dt_gradients import DrawSpec, length_sweep, loglog_slope, scale_sweep

        spec = DrawSpec(trials=self.trials, samples=self.samples, n_modes=self.n_modes,
                        w_std=self.w_std if self.sweep == "scale" else 0.0)
        if self.sweep == "scale":
            rows = scale_sweep(self.scales, length=self.seq_len, spec=spec, seed=seed)
            x = [r["c"] for r in rows]
        else:
            rows = length_sweep(self.lengths, spec=spec, seed=seed)
            x = [r["length"] for r in rows]
        return loglog_slope(x, [r[f"ratio_{self.ratio}"] for r in rows]), rows

    def run_cell(self, mixer: Any, *, model: dict[str, Any] | None = None,
                 train: TrainConfig | dict[str, Any] | None = None, seed: int = 0,
                 progress: Any = None, registry: Registry | None = None,
                 ) -> tuple[TrainResult, dict[str, Any]]:
        from ssmzoo.spec import parse
        from ssmzoo.train import TrainResult

        start = time.perf_counter()
        slope, rows = self.measure(seed)
        key = "c" if self.sweep == "scale" else "length"
        points = {f"ratio_{self.ratio}@{key}={r[key]:g}": r[f"ratio_{self.ratio}"] for r in rows}
        metrics = {"slope": slope, **points}
        result = TrainResult("ok", 0, val=metrics, test=metrics,
                             wall_time=time.perf_counter() - start)
        resolved = {"variant": str(parse(mixer)), "task": self.ssmzoo_spec, "model": "",
                    "train": {}, "seed": seed}
        return result, resolved


class LengthExtension(Chars):
    """A character LM trained at ``seq_len``, then evaluated at longer lengths (Mamba Modulation).

    Trains exactly as ``chars(seq_len=...)``, then reports the test perplexity at each of
    ``lengths`` under each method (``ppl@L/method``) and ``calibrated_gain``, the identity
    perplexity over the calibrated one at the longest length (the main metric; > 1 means the
    calibrated per-layer A scales helped).

    Args:
        path: a text file; empty for the corpus that ships with Python.
        seq_len: training window length.
        max_train: keep at most this many training windows (0 for all).
        lengths: evaluation lengths beyond the training length.
        methods: length-extension methods (identity, delta, constant, calibrated, delta-calibrated).
        calib_steps: SPSA steps per length.
        calib_windows: calibration windows (validation part) per length.
        eval_windows: evaluation windows (test part) per length.
        max_scale: upper clip of the calibrated scales (1 as in the paper).
    """

    metric: ClassVar[str] = "calibrated_gain"
    higher_is_better: ClassVar[bool] = True

    def __init__(self, path: str = "", seq_len: int = 256, max_train: int = 0,
                 lengths: list[int] | None = None, methods: list[str] | None = None,
                 calib_steps: int = 10, calib_windows: int = 2, eval_windows: int = 4,
                 max_scale: float = 1.0):
        super().__init__(path=path, seq_len=seq_len, max_train=max_train)
        self.lengths = list(lengths or [1024, 2048, 4096])
        self.methods = list(methods or ["identity", "delta", "constant", "calibrated"])
        self.calib_steps, self.calib_windows = calib_steps, calib_windows
        self.eval_windows, self.max_scale = eval_windows, max_scale
        self.path_text = path

    def run_cell(self, mixer: Any, *, model: dict[str, Any] | None = None,
                 train: TrainConfig | dict[str, Any] | None = None, seed: int = 0,
                 progress: Any = None, registry: Registry | None = None,
                 ) -> tuple[TrainResult, dict[str, Any]]:
        from ssmzoo.repro.length_extension import extension_metrics, extension_rows
        from ssmzoo.train import run

        result, resolved = run(mixer, self, model=model, train=train, seed=seed,
                               progress=progress, registry=registry)
        if result.status != "ok" or result.model is None:
            return result, resolved
        start = time.perf_counter()
        net = result.model.cpu() if not _on_cuda(result.model) else result.model
        rows = extension_rows(net, train_length=self.seq_len,
                              lengths=[self.seq_len, *self.lengths], methods=self.methods,
                              path=self.path_text, calib_windows=self.calib_windows,
                              eval_windows=self.eval_windows, calib_steps=self.calib_steps,
                              seed=seed, max_scale=self.max_scale)
        result.test = {**result.test, **extension_metrics(rows)}
        result.wall_time += time.perf_counter() - start
        return result, resolved


def _on_cuda(model: Any) -> bool:
    return any(p.is_cuda for p in model.parameters())
