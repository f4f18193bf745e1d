"""Generators: shapes, determinism per (seed, split), the semantics of each label, the metrics."""

from __future__ import annotations

import math

import pytest
import torch

import ssmzoo
from ssmzoo.errors import HyperparameterTypeError, UnknownKeyError, UnknownTaskError
from ssmzoo.tasks import IGNORE_INDEX
from ssmzoo.tasks.functions import PRIMES, haar_basis

SMALL = "n_train=64, n_val=16, n_test=16"


def build(spec: str):
    return ssmzoo.build_task(spec)


@pytest.mark.parametrize("spec", [
    f"mqar(seq_len=32, num_kv=4, vocab=64, {SMALL})",
    f"selective_copy(seq_len=20, num_tokens=4, vocab=10, {SMALL})",
    f"induction(seq_len=24, vocab=8, {SMALL})",
    f"keep_nth(seq_len=12, n=3, vocab=5, {SMALL})",
    f"keep_nth(seq_len=12, n=3, vocab=5, positions=true, {SMALL})",
    f"coef_recovery(seq_len=40, n_coef=6, {SMALL})",
    f"memory_scale(seq_len=10, sigma1=0.1, sigma2=10.0, {SMALL})",
    f"haar(seq_len=32, levels=2, {SMALL})",
])
def test_deterministic_and_distinct_splits(spec: str) -> None:
    a, b = build(spec), build(spec)
    tr, tr2 = a.split("train", 3), b.split("train", 3)
    assert torch.equal(tr.inputs, tr2.inputs) and torch.equal(tr.targets, tr2.targets)
    assert not torch.equal(tr.inputs[:16], a.split("val", 3).inputs)
    assert not torch.equal(tr.inputs, a.split("train", 4).inputs)
    assert len(tr) == 64 and len(a.split("test", 3)) == 16


def test_mqar_layout_matches_zoology() -> None:
    task = build("mqar(seq_len=32, num_kv=4, vocab=40, random_non_queries=false, n_train=50)")
    s = task.split("train", 0)
    x, y = s.inputs, s.targets
    assert x.shape == y.shape == (50, 32)
    keys, values = x[:, 0:8:2], x[:, 1:8:2]
    assert ((keys >= 1) & (keys < 20)).all() and ((values >= 20) & (values < 40)).all()
    for i in range(50):
        assert len(set(keys[i].tolist())) == 4 and len(set(values[i].tolist())) == 4
        labelled = (y[i] != IGNORE_INDEX).nonzero().flatten()
        assert len(labelled) == 4 and (labelled >= 8).all()
        for pos in labelled.tolist():  # the query at pos is a key; its label is that key's value
            k = int(x[i, pos])
            j = keys[i].tolist().index(k)
            assert int(y[i, pos]) == int(values[i, j])
        others = torch.ones(32, dtype=torch.bool)
        others[:8] = False
        others[labelled] = False
        assert (x[i, others] == 0).all()


def test_mqar_gaps_follow_the_power_law() -> None:
    # power_a = 0.01: gaps concentrate near the pairs; power_a = 1: uniform
    near = build("mqar(seq_len=128, num_kv=2, vocab=300, power_a=0.01, n_train=2000)")
    flat = build("mqar(seq_len=128, num_kv=2, vocab=300, power_a=1.0, n_train=2000)")
    def mean_pos(t):
        y = t.split("train", 0).targets
        return (y != IGNORE_INDEX).nonzero()[:, 1].float().mean()
    assert mean_pos(near) < mean_pos(flat) - 10


def test_selective_copy_labels_are_the_data_in_order() -> None:
    s = build("selective_copy(seq_len=20, num_tokens=4, vocab=10, n_train=30)").split("train", 1)
    for x, y in zip(s.inputs, s.targets):
        data = x[:20][x[:20] >= 2]
        assert data.tolist() == y[20:].tolist() and (x[20:] == 1).all()
        assert (y[:20] == IGNORE_INDEX).all()


def test_induction_label_follows_first_trigger() -> None:
    s = build("induction(seq_len=24, vocab=8, n_train=40)").split("train", 2)
    for x, y in zip(s.inputs, s.targets):
        trig = (x == 7).nonzero().flatten().tolist()
        assert len(trig) == 2 and trig[-1] == 23
        assert int(y[-1]) == int(x[trig[0] + 1]) and (y[:-1] == IGNORE_INDEX).all()


def test_keep_nth_target_and_positions() -> None:
    plain = build("keep_nth(seq_len=12, n=3, vocab=5, n_train=20)")
    s = plain.split("train", 0)
    assert torch.equal(s.targets, s.inputs[:, 2])
    assert plain.head() == {"n_classes": 5, "vocab_size": 5, "pool": "last"}
    pe = build("keep_nth(seq_len=12, n=3, vocab=5, positions=true, pe_dim=4, n_train=20)")
    x, y, _ = next(pe.split("train", 0).batches(20))
    assert x.shape == (20, 12, 9) and pe.head()["d_input"] == 9
    assert torch.equal(x[:, :, :5].argmax(-1), s.inputs)  # same tokens, one-hot
    assert torch.equal(x[0, :, 5:], x[7, :, 5:]) and not torch.equal(x[0, 0, 5:], x[0, 1, 5:])
    assert torch.equal(y, s.targets)


def test_coef_recovery_is_a_sum_of_prime_cosines() -> None:
    s = build("coef_recovery(seq_len=50, n_coef=3, n_train=8)").split("train", 0)
    t = torch.arange(50) * 2 * math.pi / 50
    expect = sum(s.targets[:, i:i + 1] * torch.cos(PRIMES[i] * t) for i in range(3))
    torch.testing.assert_close(s.inputs[..., 0], expect, rtol=1e-5, atol=1e-5)


def test_memory_scale_target_and_metric() -> None:
    task = build("memory_scale(seq_len=10, sigma1=0.5, sigma2=3.0, n_train=4000)")
    s = task.split("train", 0)
    torch.testing.assert_close(s.targets[:, 0], s.inputs[:, 0, 0].abs() / 0.5)
    assert abs(float(s.inputs[:, 0, 0].std()) - 0.5) < 0.05
    assert abs(float(s.inputs[:, 1:, 0].std()) - 3.0) < 0.1
    out = s.targets + 0.25
    assert task.finalize({k: a / n for k, (a, n) in task.metric_terms(out, s.targets).items()})[
        "rel_error"] == pytest.approx(0.25)


def test_haar_basis_orthonormal_and_targets() -> None:
    H = haar_basis(16, 3)  # (8, 16)
    torch.testing.assert_close(H @ H.T / 16, torch.eye(8), rtol=0, atol=1e-6)
    task = build("haar(seq_len=16, levels=3, n_train=8)")
    s = task.split("train", 0)
    torch.testing.assert_close(s.targets, s.inputs[..., 0] @ H.T / 4.0)
    assert s.inputs.shape == (8, 16, 2) and task.head() == {"d_input": 2, "d_output": 8}


def test_token_metrics_ignore_unlabelled_positions() -> None:
    task = build(f"induction(seq_len=8, vocab=4, {SMALL})")
    y = torch.full((2, 8), IGNORE_INDEX)
    y[:, -1] = torch.tensor([1, 2])
    logits = torch.zeros(2, 8, 4)
    logits[0, -1, 1] = 10.0  # right
    logits[1, -1, 0] = 10.0  # wrong
    logits[:, :-1, 3] = 50.0  # unlabelled positions: ignored
    terms = task.metric_terms(logits, y)
    assert terms["accuracy"] == (1.0, 2.0)
    final = task.finalize({k: a / n for k, (a, n) in terms.items()})
    assert final["perplexity"] == pytest.approx(math.exp(final["loss"]))
    assert float(task.loss(logits, y)) == pytest.approx(final["loss"], rel=1e-5)


def test_bad_hyperparameters_name_the_argument() -> None:
    with pytest.raises(HyperparameterTypeError, match="num_kv"):
        build("mqar(seq_len=16, num_kv=5)")
    with pytest.raises(UnknownKeyError, match="did you mean 'num_kv'"):
        build("mqar(num_kvs=5)")
    with pytest.raises(UnknownTaskError, match="did you mean 'mqar'"):
        build("mqra")
    with pytest.raises(ValueError, match="did you mean 'val'"):
        build(f"induction({SMALL})").split("vall", 0)
