"""The training loop: schedule, learning, determinism, divergence, errors."""

from __future__ import annotations

import math

import pytest
import torch

from ssmzoo.errors import ConfigError, HyperparameterTypeError, UnknownKeyError
from ssmzoo.train import TrainConfig, evaluate, lr_factor, run
from tests.train.tinyzoo import make_registry

TASK = "memory_scale(seq_len=8, n_train=512, n_val=128, n_test=128)"


@pytest.fixture(scope="module")
def reg():
    return make_registry()


def test_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(steps=100, warmup=10, min_lr=0.1)
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay after warmup
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=0.01)
    assert TrainConfig(steps=200, warmup=0.05).warmup_steps == 10


def test_config_validation_names_keys() -> None:
    with pytest.raises(UnknownKeyError, match="did you mean 'eval_every'"):
        TrainConfig.from_dict({"eval_evry": 3})
    with pytest.raises(HyperparameterTypeError, match="'steps' expects int"):
        TrainConfig.from_dict({"steps": "many"})
    with pytest.raises(HyperparameterTypeError, match="warmup"):
        TrainConfig.from_dict({"warmup": 1.5})


def test_learns_and_records_history(reg) -> None:
    cfg = {"steps": 120, "batch_size": 32, "lr": 1e-2, "eval_every": 40, "warmup": 5}
    res, resolved = run("tiny", TASK, model={"d_model": 16}, train=cfg, seed=0, registry=reg)
    assert res.status == "ok" and res.steps == 120
    assert [h["step"] for h in res.history] == [40, 80, 120]
    first, last = res.history[0], res.history[-1]
    assert last["mse"] < first["mse"]
    torch.manual_seed(0)  # the untrained model that run() started from
    untrained = reg.build_model(resolved["model"])
    task = reg.build_task(TASK)
    before = evaluate(untrained, task, task.split("val", 0), batch_size=64)["mse"]
    assert last["mse"] < 0.5 * before, (before, last)
    assert set(res.test) >= {"mse", "rel_error"} and res.n_params > 0
    assert resolved["model"].startswith("regressor(mixer=tiny")
    assert resolved["train"]["steps"] == 120 and resolved["seed"] == 0


def test_same_seed_same_run_other_seed_differs(reg) -> None:
    cfg = {"steps": 20, "batch_size": 16, "eval_every": 10}
    a, _ = run("tiny", TASK, train=cfg, seed=1, registry=reg)
    b, _ = run("tiny", TASK, train=cfg, seed=1, registry=reg)
    c, _ = run("tiny", TASK, train=cfg, seed=2, registry=reg)
    assert [h["mse"] for h in a.history] == [h["mse"] for h in b.history]
    assert a.history[-1]["mse"] != c.history[-1]["mse"]


def test_huge_lr_is_recorded_as_diverged(reg) -> None:
    res, _ = run("tiny", TASK, train={"steps": 50, "lr": 1e12, "grad_clip": 0, "warmup": 0},
                 registry=reg)
    assert res.status == "diverged" and res.steps < 50
    assert "step" in res.error and ("nan" in res.error or "inf" in res.error)


def test_evaluate_is_exact_over_batches(reg) -> None:
    task = reg.build_task("sdigits")
    model = reg.build_model("classifier(mixer=tiny, n_classes=10, d_input=1)")
    split = task.split("val", 0)
    whole = evaluate(model, task, split, batch_size=200)
    pieces = evaluate(model, task, split, batch_size=7)
    assert whole["accuracy"] == pytest.approx(pieces["accuracy"])
    assert whole["loss"] == pytest.approx(pieces["loss"], rel=1e-5)


def test_errors_before_training(reg) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            run("tiny", TASK, train={"device": "cuda"}, registry=reg)
    with pytest.raises(ConfigError, match="batch_size 1000 exceeds"):
        run("tiny", TASK, train={"batch_size": 1000}, registry=reg)


def test_optimizer_reads_parameter_hints(reg) -> None:
    from ssmzoo.train.loop import make_optimizer

    model = reg.build_model("regressor(mixer=tiny, d_model=8)")
    slow = model.stack.layers[0].past.weight
    slow._ssmzoo_optim = {"lr_scale": 0.1, "weight_decay": 0.0}
    opt = make_optimizer(model, TrainConfig(lr=1e-2, weight_decay=0.3))
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(slow)]["peak_lr"] == pytest.approx(1e-3)
    assert by_param[id(slow)]["weight_decay"] == 0.0
    fast = model.stack.layers[0].now.weight
    assert by_param[id(fast)]["peak_lr"] == pytest.approx(1e-2)
    assert by_param[id(fast)]["weight_decay"] == pytest.approx(0.3)
    assert by_param[id(model.dec.bias)]["weight_decay"] == 0.0  # vectors: no decay


def test_padded_splits_pass_lengths_to_the_model(reg) -> None:
    from ssmzoo.tasks import ClassificationTask, Split
    from ssmzoo.train import fit

    class Padded(ClassificationTask):
        def head(self):
            return {"n_classes": 2, "vocab_size": 5}

        def _make(self, split, seed):
            g = torch.Generator().manual_seed(seed)
            return Split(torch.randint(1, 5, (32, 6), generator=g), torch.randint(0, 2, (32,)),
                         torch.randint(1, 7, (32,), generator=g))

    seen = []
    model = reg.build_model("classifier(mixer=tiny, n_classes=2, vocab_size=5, d_model=4)")
    inner = model.forward
    model.forward = lambda x, lengths=None: (seen.append(lengths), inner(x))[1]
    res = fit(model, Padded(), TrainConfig(steps=2, batch_size=8, eval_every=0))
    assert res.status == "ok" and seen and all(s is not None and s.shape == (8,) for s in seen)


@pytest.mark.gpu
def test_cuda_bf16_autocast(reg) -> None:
    res, _ = run("tiny", TASK, train={"steps": 5, "batch_size": 16, "device": "cuda"},
                 registry=reg)
    assert res.status == "ok" and next(res.model.parameters()).is_cuda
    assert math.isfinite(res.val["mse"])
