"""Compatibility losses against formulas written out independently here."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn as nn

from backwardcompatibilityml.loss import (
    BCBinaryCrossEntropyLoss,
    BCCrossEntropyLoss,
    BCKLDivergenceLoss,
    BCNLLLoss,
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)
from conftest import BinaryMLP, CountingModel, MLP
from loss_cases import BINARY, MULTICLASS, Fixed, build_loss

NUM_CLASSES = 5
build = functools.partial(build_loss, classes=NUM_CLASSES)


def expected_multiclass(cls_name, logits1, logits2, y, lambda_c):
    """The loss written from its definition with plain tensor maths (no torch.nn.functional losses)."""
    p1 = logits1.exp() / logits1.exp().sum(1, keepdim=True)
    p2 = logits2.exp() / logits2.exp().sum(1, keepdim=True)
    n = y.shape[0]
    true_p2 = p2[torch.arange(n), y]
    base = -true_p2.log()  # NLL = CE = KL(one-hot || p2)
    support = p1.argmax(1) == y
    if cls_name.startswith("BC"):
        dissonance = base
    elif "KL" in cls_name:
        dissonance = (p1 * (p1.log() - p2.log())).sum(1)
    else:
        dissonance = -(p1 * p2.log()).sum(1)
    return base.mean() + lambda_c * dissonance[support].sum() / n


def expected_binary(cls_name, p1, p2, y, lambda_c):
    n = y.shape[0]
    yf = y.float()
    base = -(yf * p2.log() + (1 - yf) * (1 - p2).log())
    support = (p1 > 0.5).float() == yf
    if cls_name.startswith("BC"):
        dissonance = base
    else:
        dissonance = -(p1 * p2.log() + (1 - p1) * (1 - p2).log())
    return base.mean() + lambda_c * dissonance[support].sum() / n


def random_batch(n=16, seed=0, h1_right=None):
    g = torch.Generator().manual_seed(seed)
    logits1 = torch.randn(n, NUM_CLASSES, generator=g, dtype=torch.float64)
    logits2 = torch.randn(n, NUM_CLASSES, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    if h1_right is True:
        y = logits1.argmax(1)
    elif h1_right is False:
        y = (logits1.argmax(1) + 1) % NUM_CLASSES
    return logits1, logits2, y


@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("h1_right", [None, True, False])
@pytest.mark.parametrize("lambda_c", [0.0, 0.3, 1.0])
def test_multiclass_value_matches_formula(cls, h1_right, lambda_c):
    logits1, logits2, y = random_batch(seed=3, h1_right=h1_right)
    h2 = Fixed(logits2)
    loss = build(cls, Fixed(logits1), h2, lambda_c)(torch.zeros(len(y), 1), y)
    expected = expected_multiclass(cls.__name__, logits1, logits2, y, lambda_c)
    assert torch.allclose(loss, expected, atol=1e-10), (loss, expected)


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("h1_right", [None, True, False])
@pytest.mark.parametrize("column", [False, True])
def test_binary_value_matches_formula(cls, h1_right, column):
    g = torch.Generator().manual_seed(5)
    p1 = torch.rand(20, generator=g, dtype=torch.float64) * 0.9 + 0.05
    p2 = torch.rand(20, generator=g, dtype=torch.float64) * 0.9 + 0.05
    y = torch.randint(0, 2, (20,), generator=g)
    if h1_right is True:
        y = (p1 > 0.5).long()
    elif h1_right is False:
        y = (p1 <= 0.5).long()
    shape = (lambda p: p[:, None]) if column else (lambda p: p)
    loss = cls(Fixed(shape(p1)), Fixed(shape(p2)), 0.7)(torch.zeros(20, 1), y)
    assert torch.allclose(loss, expected_binary(cls.__name__, p1, p2, y, 0.7), atol=1e-10)


@pytest.mark.parametrize("cls", MULTICLASS)
def test_lambda_zero_is_plain_base_loss(cls):
    logits1, logits2, y = random_batch(seed=11)
    loss = build(cls, Fixed(logits1), Fixed(logits2), 0.0)(torch.zeros(len(y), 1), y)
    assert torch.allclose(loss, nn.functional.cross_entropy(logits2, y), atol=1e-10)


@pytest.mark.parametrize("cls", BINARY)
def test_binary_lambda_zero_is_plain_bce(cls):
    p1, p2 = torch.full((4,), 0.8, dtype=torch.float64), torch.tensor([0.2, 0.6, 0.9, 0.4], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    loss = cls(Fixed(p1), Fixed(p2), 0)(torch.zeros(4, 1), y)
    assert torch.allclose(loss, nn.functional.binary_cross_entropy(p2, y.double()))


def test_empty_support_gives_zero_dissonance_not_nan():
    logits1, logits2, y = random_batch(seed=2, h1_right=False)
    for cls in MULTICLASS:
        loss = build(cls, Fixed(logits1), Fixed(logits2), 1.0)(torch.zeros(len(y), 1), y)
        assert math.isfinite(loss.item())
        assert torch.allclose(loss, nn.functional.cross_entropy(logits2, y), atol=1e-10)


@pytest.mark.parametrize(
    "ne, si",
    [
        (BCNLLLoss, StrictImitationNLLLoss),
        (BCCrossEntropyLoss, StrictImitationCrossEntropyLoss),
        (BCKLDivergenceLoss, StrictImitationKLDivergenceLoss),
        (BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
    ],
)
def test_strict_imitation_differs_from_new_error_for_soft_h1(ne, si):
    torch.manual_seed(0)
    if ne is BCBinaryCrossEntropyLoss:
        h1, h2, x = BinaryMLP(6, 8), BinaryMLP(6, 8), torch.randn(32, 6)
        y = (h1(x) > 0.5).long()  # h1 right everywhere; its probabilities are not 0/1
    else:
        h1, h2, x = MLP(6, 8, NUM_CLASSES), MLP(6, 8, NUM_CLASSES), torch.randn(32, 6)
        y = h1(x).argmax(1)
    values, grads = [], []
    for cls in (ne, si):
        h2.zero_grad()
        loss = build(cls, h1, h2, 0.8)(x, y)
        loss.backward()
        values.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in h2.parameters()]))
    assert abs(values[0] - values[1]) > 1e-4
    assert (grads[0] - grads[1]).abs().max() > 1e-5


@pytest.mark.parametrize("cls", MULTICLASS + BINARY)
def test_gradients_flow_to_h2_only_and_are_finite(cls):
    torch.manual_seed(1)
    binary = cls in BINARY
    h1 = BinaryMLP(6, 8) if binary else MLP(6, 8, NUM_CLASSES)
    h2 = BinaryMLP(6, 8) if binary else MLP(6, 8, NUM_CLASSES)
    x = torch.randn(24, 6)
    y = torch.randint(0, 2 if binary else NUM_CLASSES, (24,))
    h1.train()
    loss = build(cls, h1, h2, 0.5)(x, y)
    loss.backward()
    assert all(p.grad is None for p in h1.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in h2.parameters())
    assert h1.training, "h1's train/eval mode is restored after the loss"
    assert list(build(cls, h1, h2, 0.5).parameters()) == [], "the loss owns no model parameters"


@pytest.mark.parametrize("cls", MULTICLASS)
def test_each_model_runs_once_per_call(cls):
    h1, h2 = CountingModel(MLP(6, 8, NUM_CLASSES)), CountingModel(MLP(6, 8, NUM_CLASSES))
    loss_fn = build(cls, h1, h2, 0.5)
    x, y = torch.randn(10, 6), torch.randint(0, NUM_CLASSES, (10,))
    loss_fn(x, y).backward()
    assert (h1.calls, h2.calls) == (1, 1)
    loss_fn(x, y, h1_output=torch.randn(10, NUM_CLASSES))
    assert (h1.calls, h2.calls) == (1, 2), "a given h1_output spares h1's forward"


def test_triple_output_equals_logits_output():
    torch.manual_seed(4)
    h1_logits, h2_logits = MLP(6, 8, NUM_CLASSES), MLP(6, 8, NUM_CLASSES)
    h1_triple, h2_triple = MLP(6, 8, NUM_CLASSES, triple=True), MLP(6, 8, NUM_CLASSES, triple=True)
    h1_triple.load_state_dict(h1_logits.state_dict())
    h2_triple.load_state_dict(h2_logits.state_dict())
    x, y = torch.randn(12, 6), torch.randint(0, NUM_CLASSES, (12,))
    for cls in MULTICLASS:
        a = build(cls, h1_logits, h2_logits, 0.6)(x, y)
        b = build(cls, h1_triple, h2_triple, 0.6)(x, y)
        assert torch.allclose(a, b, atol=1e-6)


def test_reductions_are_consistent():
    logits1, logits2, y = random_batch(seed=8)
    h1, h2 = Fixed(logits1), Fixed(logits2)
    none = StrictImitationCrossEntropyLoss(h1, h2, 0.4, reduction="none")(torch.zeros(len(y), 1), y)
    mean = StrictImitationCrossEntropyLoss(h1, h2, 0.4)(torch.zeros(len(y), 1), y)
    total = StrictImitationCrossEntropyLoss(h1, h2, 0.4, reduction="sum")(torch.zeros(len(y), 1), y)
    assert none.shape == (len(y),)
    assert torch.allclose(none.mean(), mean) and torch.allclose(none.sum(), total)


@pytest.mark.parametrize("bad, error, word", [
    (-0.1, ValueError, "lambda_c"), (float("nan"), ValueError, "lambda_c"), (float("inf"), ValueError, "lambda_c"),
    ("0.5", TypeError, "lambda_c"), (True, TypeError, "lambda_c"),
])
def test_bad_lambda_c(bad, error, word):
    with pytest.raises(error, match=word):
        BCCrossEntropyLoss(MLP(2, 2, 2), MLP(2, 2, 2), bad)


def test_bad_inputs_name_the_problem():
    h1, h2 = MLP(6, 8, NUM_CLASSES), MLP(6, 8, NUM_CLASSES)
    loss = BCCrossEntropyLoss(h1, h2, 0.5)
    with pytest.raises(ValueError, match="batch size"):
        loss(torch.randn(10, 6), torch.randint(0, NUM_CLASSES, (9,)))
    with pytest.raises(ValueError, match="integer class indices"):
        loss(torch.randn(10, 6), torch.rand(10))
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        loss(torch.randn(10, 6), [1] * 10)
    with pytest.raises(TypeError, match="h2 must return"):
        BCCrossEntropyLoss(h1, lambda x: {"logits": x}, 0.5)(torch.randn(3, 6), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="h1 must return"):
        BCCrossEntropyLoss(lambda x: "nope", h2, 0.5)(torch.randn(3, 6), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="h1 must be"):
        BCCrossEntropyLoss(None, h2, 0.5)
    with pytest.raises(ValueError, match="reduction"):
        BCCrossEntropyLoss(h1, h2, 0.5, reduction="avg")
    with pytest.raises(TypeError, match="num_classes"):
        BCKLDivergenceLoss(h1, h2, 0.5, num_classes=2.5)
    with pytest.raises(ValueError, match="num_classes"):
        BCKLDivergenceLoss(h1, h2, 0.5, num_classes=3)(torch.randn(4, 6), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="discriminant_pivot"):
        BCBinaryCrossEntropyLoss(h1, h2, 0.5, discriminant_pivot=1.5)
    with pytest.raises(TypeError, match="binary loss"):
        BCBinaryCrossEntropyLoss(BinaryMLP(6, 4), h2, 0.5)(torch.randn(4, 6), torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("cls", MULTICLASS)
def test_a_multiclass_loss_warns_that_it_cannot_use_a_discriminant_pivot(cls, recwarn):
    h1, h2 = MLP(4, 3, 3), MLP(4, 3, 3)
    build_loss(cls, h1, h2, 0.5, classes=3, discriminant_pivot=0.5)  # the default: nothing to say
    assert not [w for w in recwarn if "discriminant_pivot" in str(w.message)]
    with pytest.warns(UserWarning, match=f"discriminant_pivot=0.7 has no effect on {cls.__name__}"):
        build_loss(cls, h1, h2, 0.5, classes=3, discriminant_pivot=0.7)


@pytest.mark.parametrize("cls", BINARY)
def test_a_binary_loss_takes_its_discriminant_pivot_without_a_warning(cls, recwarn):
    cls(BinaryMLP(4, 3), BinaryMLP(4, 3), 0.5, discriminant_pivot=0.7)
    assert not [w for w in recwarn if "discriminant_pivot" in str(w.message)]


def test_discriminant_pivot_moves_the_support():
    p1 = torch.tensor([0.6, 0.6, 0.6, 0.6], dtype=torch.float64)
    p2 = torch.tensor([0.3, 0.4, 0.7, 0.2], dtype=torch.float64)
    y = torch.tensor([1, 1, 1, 1])
    low = BCBinaryCrossEntropyLoss(Fixed(p1), Fixed(p2), 1.0, discriminant_pivot=0.5)(torch.zeros(4, 1), y)
    high = BCBinaryCrossEntropyLoss(Fixed(p1), Fixed(p2), 1.0, discriminant_pivot=0.7)(torch.zeros(4, 1), y)
    base = nn.functional.binary_cross_entropy(p2, y.double())
    assert torch.allclose(low, 2 * base) and torch.allclose(high, base)
