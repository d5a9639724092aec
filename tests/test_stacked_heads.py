"""Reading K stacked models' outputs at once (``members=True``), and the fused forward that hands them over as they are."""

from __future__ import annotations

import pytest
import torch

from backwardcompatibilityml import class_softmax
from backwardcompatibilityml.engine.stacked_loss import StackedLoss, by_family, non_finite_members
from backwardcompatibilityml.engine.stacking import StackedModel
from backwardcompatibilityml.engine.executors import SequentialExecutor
from backwardcompatibilityml.engine.vectorized import VectorizedExecutor
from backwardcompatibilityml.engine.vmap_support import family_losses
from backwardcompatibilityml.evaluation import labels_and_confidences
from backwardcompatibilityml.outputs import binary_probabilities, is_binary_output, log_probabilities
from conftest import MLP, make_batches
from test_vectorized import assert_same_results, context_of, digits_setup, run

K, N, C = 4, 6, 5


def per_member(function, outputs):
    """``function`` run on each member's output alone, stacked back."""
    first = outputs if isinstance(outputs, torch.Tensor) else outputs[0]
    results = [function(outputs[k] if isinstance(outputs, torch.Tensor) else tuple(t[k] for t in outputs))
               for k in range(first.shape[0])]
    if isinstance(results[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*results))
    return torch.stack(results)


def test_log_probabilities_of_members_equal_each_members():
    logits = torch.randn(K, N, C)
    torch.testing.assert_close(log_probabilities(logits, "h2", members=True),
                               per_member(lambda o: log_probabilities(o, "h2"), logits), rtol=0, atol=1e-6)
    triple = (logits, logits.softmax(-1), logits.log_softmax(-1))
    assert log_probabilities(triple, "h2", members=True) is triple[2]
    with pytest.raises(TypeError, match=r"h2 must return logits of shape \(K, N, C\) .* returned shape \(4, 6\)"):
        log_probabilities(logits[..., 0], "h2", members=True)
    with pytest.raises(TypeError, match=r"h2 must return logits of shape \(N, C\) .* returned shape \(4, 6, 5\)"):
        log_probabilities(logits, "h2")
    with pytest.raises(TypeError, match=r"log_softmax of shape \(4, 6\); expected \(K, N, C\)"):
        log_probabilities((logits, logits, logits[..., 0]), "h2", members=True)


@pytest.mark.parametrize("shape", [(K, N), (K, N, 1)])
def test_binary_probabilities_of_members_equal_each_members(shape):
    probs = torch.rand(*shape)
    assert is_binary_output(probs, members=True) and not is_binary_output(torch.rand(K, N, C), members=True)
    got = binary_probabilities(probs, "h2", members=True)
    assert got.shape == (K, N)
    assert torch.equal(got, per_member(lambda o: binary_probabilities(o, "h2"), probs))
    with pytest.raises(TypeError, match=r"shape \(K, N\) or \(K, N, 1\) .* returned shape \(4, 6, 2\)"):
        binary_probabilities(torch.rand(K, N, 2), "h2", members=True)
    with pytest.raises(TypeError, match=r"shape \(N,\) or \(N, 1\) for a binary loss"):
        binary_probabilities(torch.rand(K, N, 2), "h2")


def triple(logits):
    return logits, logits.softmax(-1), logits.log_softmax(-1)


@pytest.mark.parametrize("output", [
    torch.randn(K, N, C),
    torch.randn(K, C, N).transpose(1, 2),  # feature-major, as the fused layers give
    triple(torch.randn(K, N, C)),
    torch.rand(K, N),
    torch.rand(K, N, 1),
])
def test_labels_and_confidences_of_members_equal_each_members(output):
    labels, confidences, has_nan = labels_and_confidences(output, 0.5, "h2", members=True)
    want_labels, want_confidences, want_nan = per_member(lambda o: labels_and_confidences(o, 0.5, "h2"), output)
    assert labels.shape == confidences.shape == (K, N) and labels.dtype == torch.int64
    assert torch.equal(labels, want_labels)
    torch.testing.assert_close(confidences, want_confidences, rtol=0, atol=1e-6)
    assert has_nan.item() is False and not want_nan.any()
    # A NaN output of member 2 shows in member 2's confidences alone (the executor reads it there).
    with_nan = tuple(t.clone() for t in output) if isinstance(output, tuple) else output.clone()
    for t in (with_nan if isinstance(with_nan, tuple) else (with_nan,)):
        t[2, 3] = float("nan")
    _labels, confidences, has_nan = labels_and_confidences(with_nan, 0.5, "h2", members=True)
    assert has_nan.item() is True
    assert torch.isnan(confidences).any(dim=1).tolist() == [False, False, True, False]


def test_the_fused_forward_hands_the_stacked_head_its_outputs_unflattened(monkeypatch):
    """8 members x 40 rows: enough rows for the class-major softmax (forced on, whatever this CPU)."""
    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 64)
    members, rows = 8, 40
    stacked = StackedModel(MLP(8, 6, C), members, torch.device("cpu"), fused=True)
    assert stacked.fused is not None
    seen = []

    def stacked_head(outputs):
        seen.append(outputs)
        return log_probabilities(outputs, "h2", members=True)

    x = torch.randn(rows, 8)
    row_wise = stacked.stacked_forward(lambda output: log_probabilities(output, "h2"))
    both = stacked.stacked_forward(lambda output: log_probabilities(output, "h2"), stacked_head)
    got = both(stacked.params, stacked.buffers, x)
    (outputs,) = seen
    assert outputs.shape == (members, rows, C) and outputs.stride(1) == 1  # the fused layers' (K, C, N) memory
    assert got.stride() == outputs.stride(), "the log-probabilities keep that layout (computed in place)"
    torch.testing.assert_close(got, row_wise(stacked.params, stacked.buffers, x), rtol=0, atol=1e-6)
    unfused = StackedModel(MLP(8, 6, C), members, torch.device("cpu"))
    unfused.stacked_forward(lambda output: log_probabilities(output, "h2"), stacked_head)(
        unfused.params, unfused.buffers, x)
    assert len(seen) == 1, "vmap runs the row-wise head per member"


def test_the_stacked_loss_keeps_weights_in_the_layout_of_h2s_log_probabilities(digits_data):
    h1, h2, train, test = digits_setup(digits_data)
    context, jobs = context_of(h1, h2, train, test)
    jobs = by_family(jobs)
    losses = family_losses(context.families, context.h1, context.h2)
    loss = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    ids, x, y = train[0]
    memory = torch.randn(len(jobs), 10, len(y))  # (K, C, N), as the fused layers write it
    feature_major = memory.log_softmax(1).transpose(1, 2)
    rows = feature_major.contiguous()
    assert feature_major.stride() != rows.stride()
    got_feature_major, got_rows = loss(feature_major, ids, y, x), loss(rows, ids, y, x)
    torch.testing.assert_close(got_feature_major, got_rows, rtol=0, atol=1e-5)
    kept = {key[1]: weights for key, (weights, _offsets) in loss._kept.items()}
    assert set(kept) == {feature_major.stride(), rows.stride()}
    for stride, weights in kept.items():
        assert weights.stride() == stride
    torch.testing.assert_close(kept[feature_major.stride()], kept[rows.stride()], rtol=0, atol=0)
    with pytest.raises(ValueError, match="h2 returned 5 classes per row where h1's outputs .* hold 10"):
        loss(torch.randn(len(jobs), len(y), 5).log_softmax(-1), ids, y, x)


def test_members_in_batches_too_small_for_a_register_equal_sequential(digits_data, monkeypatch):
    """42 members x 8 rows: the fused outputs' classes are moved first (one copy) for the softmax."""
    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 64)
    leading = []
    classes_leading = class_softmax._classes_leading
    monkeypatch.setattr(class_softmax, "_classes_leading",
                        lambda x: leading.append((tuple(x.shape), classes_leading(x)[1])) or classes_leading(x))
    x, y = digits_data
    h1, h2, _train, test = digits_setup(digits_data)
    train = make_batches(x[:64], y[:64], 8)
    context, jobs = context_of(h1, h2, train, test, stepsize=0.05, epochs=1)
    assert len(jobs) == 42
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert ((42, 8, 10), 0) in leading, "the classes of 42 x 8 rows were moved first"
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)



@pytest.mark.parametrize("numbers, members, expected", [
    ([1.0, 2.0, 3.0], None, []),
    ([1.0, float("nan"), 3.0], None, [1]),
    ([float("inf"), float("-inf"), 3.0], None, [0, 1]),  # their sum is NaN: both found
    ([1e308, 1e308, 1.0], None, []),  # finite values whose sum overflows: checked one by one
    ([1.0, float("nan"), 3.0], [0, 2], []),  # a failed member, no longer live, is not reported again
    ([1.0, float("nan"), float("inf")], [0, 2], [2]),
    ([1.0, float("nan")], [0, 1], [1]),
])
def test_non_finite_members_are_found_by_one_sum(numbers, members, expected):
    assert non_finite_members(numbers, members) == expected
