"""The eight compatibility losses against DESIGN.md, written out by hand one instance at a time.

The expected values here use Python floats and ``math`` only (no torch loss,
no function of the package), with the conventions of information theory:
``0 log 0 = 0`` and ``0 log q = 0`` for any ``q``, even ``q = 0``. For the
binary losses, torch's ``BCELoss`` convention is kept: a log is clamped at
``-100`` so that a probability of exactly 0 or 1 gives a finite loss.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from backwardcompatibilityml.loss.functional import compatibility_loss
from loss_cases import BINARY, MULTICLASS, Fixed, build_loss

ALL = MULTICLASS + BINARY
REDUCTIONS = ["mean", "sum", "none"]
LAMBDAS = [0.0, 0.3, 1.0]
C = 4
build = functools.partial(build_loss, classes=C)


def log(value):
    return math.log(value) if value > 0 else -math.inf


def reduce(per_instance, reduction):
    if reduction == "mean":
        return sum(per_instance) / len(per_instance)
    if reduction == "sum":
        return sum(per_instance)
    return per_instance


def combine(base, dissonance, right, lambda_c):
    """``base + lambda_c * [h1 right] * dissonance``; a dissonance off the support adds nothing."""
    return base + (lambda_c * dissonance if lambda_c and right else 0.0)


def hand_multiclass(name, p1, p2, y, lambda_c, reduction):
    """Per-instance losses of DESIGN.md, from probabilities given as lists of lists."""
    losses = []
    for a, b, label in zip(p1, p2, y):
        base = -log(b[label])  # NLL = CE = KL(one_hot(y) || p2)
        right = max(range(len(a)), key=a.__getitem__) == label
        if name.startswith("BC"):
            dissonance = base
        elif "KL" in name:
            dissonance = sum(p * (log(p) - log(q)) for p, q in zip(a, b) if p > 0)
        else:
            dissonance = -sum(p * log(q) for p, q in zip(a, b) if p > 0)
        losses.append(combine(base, dissonance, right, lambda_c))
    return reduce(losses, reduction)


def clamped_log(value):
    return max(log(value), -100.0)


def bce(p, target):
    return -(target * clamped_log(p) + (1 - target) * clamped_log(1 - p))


def hand_binary(name, p1, p2, y, lambda_c, reduction, pivot=0.5):
    losses = []
    for a, b, label in zip(p1, p2, y):
        base = bce(b, label)
        right = float(a > pivot) == label
        dissonance = base if name.startswith("BC") else bce(b, a)
        losses.append(combine(base, dissonance, right, lambda_c))
    return reduce(losses, reduction)


def as_tensor(expected):
    return torch.tensor(expected, dtype=torch.float64)


def multiclass_outputs(seed, n=10):
    g = torch.Generator().manual_seed(seed)
    logits1 = torch.randn(n, C, generator=g, dtype=torch.float64)
    logits2 = torch.randn(n, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=g)
    y[: n // 2] = logits1[: n // 2].argmax(1)  # h1 right on half of the batch at least
    return logits1, logits2, y


def triple(logits):
    return logits, torch.softmax(logits, 1), torch.log_softmax(logits, 1)


def probabilities(logits):
    return (logits.exp() / logits.exp().sum(1, keepdim=True)).tolist()


# -- values against the hand formulas ----------------------------------------------------------
@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("lambda_c", LAMBDAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("convention", ["logits", "triple"])
def test_multiclass_matches_hand_formula(cls, lambda_c, reduction, convention):
    logits1, logits2, y = multiclass_outputs(seed=7)
    wrap = triple if convention == "triple" else (lambda logits: logits)
    loss = build(cls, Fixed(wrap(logits1)), Fixed(wrap(logits2)), lambda_c, reduction=reduction)
    got = loss(torch.zeros(len(y), 1), y)
    expected = hand_multiclass(cls.__name__, probabilities(logits1), probabilities(logits2), y.tolist(), lambda_c,
                               reduction)
    assert got.shape == (() if reduction != "none" else (len(y),))
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)


def binary_target(y, form):
    return {"long": y, "float": y.double(), "column": y[:, None], "bool": y.bool()}[form]


def binary_output(p, form):
    return {"flat": p, "column": p[:, None], "triple": (p.logit(), p, p.log())}[form]


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("lambda_c", LAMBDAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_form", ["long", "float", "column", "bool"])
@pytest.mark.parametrize("output_form", ["flat", "column", "triple"])
def test_binary_matches_hand_formula(cls, lambda_c, reduction, target_form, output_form):
    g = torch.Generator().manual_seed(9)
    p1 = torch.rand(10, generator=g, dtype=torch.float64) * 0.9 + 0.05
    p2 = torch.rand(10, generator=g, dtype=torch.float64) * 0.9 + 0.05
    y = torch.randint(0, 2, (10,), generator=g)
    loss = cls(Fixed(binary_output(p1, output_form)), Fixed(binary_output(p2, output_form)), lambda_c,
               reduction=reduction)
    got = loss(torch.zeros(10, 1), binary_target(y, target_form))
    expected = hand_binary(cls.__name__, p1.tolist(), p2.tolist(), [float(v) for v in y], lambda_c, reduction)
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)


# -- edge cases ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_support_leaves_the_base_loss_without_nan(cls, reduction):
    """h1 wrong everywhere: S is empty, the dissonance is 0 (DESIGN.md: sum over S / N, never / |S|)."""
    if cls in BINARY:
        p1 = torch.tensor([0.9, 0.2, 0.7], dtype=torch.float64)
        p2 = torch.tensor([0.4, 0.6, 0.3], dtype=torch.float64)
        y = torch.tensor([0, 1, 0])
        expected = hand_binary(cls.__name__, p1.tolist(), p2.tolist(), [0.0, 1.0, 0.0], 0.0, reduction)
        h1, h2 = Fixed(p1), Fixed(p2)
    else:
        logits1, logits2, _ = multiclass_outputs(seed=4, n=6)
        y = (logits1.argmax(1) + 1) % C
        expected = hand_multiclass(cls.__name__, probabilities(logits1), probabilities(logits2), y.tolist(), 0.0,
                                   reduction)
        h1, h2 = Fixed(logits1), Fixed(logits2)
    got = build(cls, h1, h2, 1.0, reduction=reduction)(torch.zeros(len(y), 1), y)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)


@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_batch_of_one(cls, reduction):
    logits1, logits2, _ = multiclass_outputs(seed=5, n=1)
    y = logits1.argmax(1)
    got = build(cls, Fixed(logits1), Fixed(logits2), 0.3, reduction=reduction)(torch.zeros(1, 1), y)
    expected = hand_multiclass(cls.__name__, probabilities(logits1), probabilities(logits2), y.tolist(), 0.3,
                               reduction)
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)


def zero_probability_batch():
    """h1 and h2 put probability exactly 0 on some classes, as a triple whose log_softmax is log(softmax)."""
    p1 = torch.tensor([[1.0, 0.0, 0.0, 0.0],   # h1 right and certain
                       [0.0, 0.7, 0.3, 0.0],   # h1 right, zeros elsewhere
                       [0.1, 0.2, 0.3, 0.4],   # h1 right, no zero
                       [0.0, 0.0, 0.9, 0.1]],  # h1 wrong
                      dtype=torch.float64)
    p2 = torch.tensor([[0.5, 0.5, 0.0, 0.0],   # -inf where h1 has 0
                       [0.0, 0.6, 0.4, 0.0],
                       [0.25, 0.25, 0.25, 0.25],
                       [0.5, 0.5, 0.0, 0.0]],  # -inf off the support
                      dtype=torch.float64)
    y = torch.tensor([0, 1, 3, 1])
    return p1, p2, y


@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("lambda_c", LAMBDAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_zero_probabilities_give_finite_losses_and_gradients(cls, lambda_c, reduction):
    """0 log 0 = 0: a class of probability 0 adds nothing (torch's kl_div and p * log q made NaN of it)."""
    p1, p2, y = zero_probability_batch()
    log_p2 = p2.log().requires_grad_(True)
    h2 = Fixed((log_p2, p2, log_p2))
    got = build(cls, Fixed((p1.log(), p1, p1.log())), h2, lambda_c, reduction=reduction)(torch.zeros(4, 1), y)
    expected = hand_multiclass(cls.__name__, p1.tolist(), p2.tolist(), y.tolist(), lambda_c, reduction)
    assert torch.isfinite(got).all(), got
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)
    (grad,) = torch.autograd.grad(got.sum(), log_p2)
    assert torch.isfinite(grad).all(), grad


@pytest.mark.parametrize("family", ["new-error", "strict-imitation"])
@pytest.mark.parametrize("base", ["nll", "cross-entropy", "kl-divergence"])
def test_stacked_functional_core_with_zero_probabilities(family, base):
    p1, p2, y = zero_probability_batch()
    log_p2 = p2.log().expand(3, 4, C).clone().requires_grad_(True)
    lambdas = torch.tensor(LAMBDAS, dtype=torch.float64)
    got = compatibility_loss(log_p2, p1.log(), y, lambdas, family=family, base=base, num_classes=C)
    name = ("BC" if family == "new-error" else "StrictImitation") + ("KL" if base == "kl-divergence" else "NLL")
    expected = [hand_multiclass(name, p1.tolist(), p2.tolist(), y.tolist(), value, "mean") for value in LAMBDAS]
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)
    (grad,) = torch.autograd.grad(got.sum(), log_p2)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_probabilities_of_exactly_zero_and_one(cls, reduction):
    p1 = torch.tensor([1.0, 0.0, 0.7, 0.2, 0.5], dtype=torch.float64)
    p2 = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, 1, 0, 1])
    got = cls(Fixed(p1), Fixed(p2), 1.0, reduction=reduction)(torch.zeros(5, 1), y)
    expected = hand_binary(cls.__name__, p1.tolist(), p2.tolist(), [float(v) for v in y], 1.0, reduction)
    assert torch.allclose(got, as_tensor(expected), atol=1e-10, rtol=0)
    (grad,) = torch.autograd.grad(got.sum(), p2)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("dtypes", [(torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_binary_models_of_different_dtypes(cls, dtypes):
    """h1 and h2 need not share a floating dtype (the multi-class losses never asked it; BCE raised)."""
    p1 = torch.tensor([0.7, 0.2, 0.6], dtype=dtypes[0])
    p2 = torch.tensor([0.6, 0.3, 0.1], dtype=dtypes[1])
    y = torch.tensor([1, 0, 0])
    got = cls(Fixed(p1), Fixed(p2), 0.5)(torch.zeros(3, 1), y)
    assert got.dtype == dtypes[1]
    expected = hand_binary(cls.__name__, p1.tolist(), p2.tolist(), [1.0, 0.0, 0.0], 0.5, "mean")
    assert got.item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("label", [-1, -100, C, C + 3])
def test_labels_outside_the_classes_are_a_value_error_naming_y(cls, label):
    logits1, logits2, _ = multiclass_outputs(seed=6, n=3)
    y = torch.tensor([0, label, 1])
    with pytest.raises(ValueError, match=f"y holds class {label}"):
        build(cls, Fixed(logits1), Fixed(logits2), 0.5)(torch.zeros(3, 1), y)


@pytest.mark.parametrize("cls", MULTICLASS)
def test_h1_and_h2_of_different_class_counts_are_a_value_error(cls):
    """Broadcasting raised a RuntimeError naming no model ("The size of tensor a (3) must match...")."""
    logits1, logits2, _ = multiclass_outputs(seed=7, n=4)
    y = torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=rf"h1 returned {C} classes and h2 {C + 1}; both models must score"):
        build(cls, Fixed(logits1), Fixed(torch.cat([logits2, logits2[:, :1]], dim=1)), 0.5)(torch.zeros(4, 1), y)


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("target, shown", [(2.0, "y holds 2;"), (-1.0, "y holds -1;"), (float("nan"), "y holds NaN")])
def test_binary_targets_outside_zero_and_one_are_a_value_error_naming_y(cls, target, shown):
    """torch's binary_cross_entropy raised a RuntimeError naming no argument (a device-side assert on a GPU)."""
    p1, p2 = torch.tensor([0.9, 0.2, 0.6]), torch.tensor([0.7, 0.4, 0.3])
    with pytest.raises(ValueError, match=shown):
        cls(Fixed(p1), Fixed(p2), 0.5)(torch.zeros(3, 1), torch.tensor([1.0, target, 0.0]))
    soft = cls(Fixed(p1), Fixed(p2), 0.5)(torch.zeros(3, 1), torch.tensor([1.0, 0.25, 0.0]))
    assert torch.isfinite(soft), "soft targets in [0, 1] stay allowed"


@pytest.mark.parametrize("base", ["nll", "cross-entropy", "kl-divergence"])
def test_stacked_member_of_lambda_zero_is_its_base_loss_when_the_dissonance_is_infinite(base):
    """h2 puts probability 0 on a class h1 gives mass: Strict Imitation's dissonance is +inf on S.

    The member of lambda_c = 0 must still have its base loss, as the float lambda_c = 0 gives
    (0 * inf made it NaN), and the other members +inf (the true value).
    """
    log_p1 = torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.5, 0.3]], dtype=torch.float64).log()
    p2 = torch.tensor([[0.9, 0.0, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    log_p2 = p2.log().expand(3, 2, 3).clone().requires_grad_(True)
    y = torch.tensor([0, 1])  # h1 right on both
    lambdas = torch.tensor(LAMBDAS, dtype=torch.float64)
    got = compatibility_loss(log_p2, log_p1, y, lambdas, family="strict-imitation", base=base, num_classes=3)
    plain = compatibility_loss(log_p2[0], log_p1, y, 0.0, family="strict-imitation", base=base, num_classes=3)
    assert got[0].item() == pytest.approx(-(math.log(0.9) + math.log(0.3)) / 2) == plain.item()
    assert torch.isinf(got[1:]).all()
    (grad,) = torch.autograd.grad(got[0], log_p2)
    assert torch.isfinite(grad).all()
