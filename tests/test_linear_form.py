"""The multi-class losses as linear forms: equal to the term-by-term core, and the stacked loss that uses them."""

from __future__ import annotations

import math

import pytest
import torch

from backwardcompatibilityml.engine.stacked_loss import StackedLoss, by_family
from backwardcompatibilityml.engine.vmap_support import family_losses
from backwardcompatibilityml.loss import (
    BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss, StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss, StrictImitationNLLLoss,
)
from backwardcompatibilityml.loss.functional import compatibility_loss
from backwardcompatibilityml.loss.linear_form import (
    LINEAR_BASES, family_lambdas, instance_coefficients, linear_form_loss, linear_weights,
)
from test_vectorized import context_of, digits_setup

C, N = 5, 12
FAMILIES = ["new-error", "new-error", "strict-imitation", "strict-imitation", "strict-imitation"]
LAMBDAS = [0.0, 0.6, 0.0, 0.3, 1.0]
PAIRS = {"nll": (BCNLLLoss, StrictImitationNLLLoss), "cross-entropy": (BCCrossEntropyLoss,
                                                                       StrictImitationCrossEntropyLoss),
         "kl-divergence": (BCKLDivergenceLoss, StrictImitationKLDivergenceLoss)}


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    log_p1 = torch.randn(N, C, generator=g, dtype=torch.float64).log_softmax(-1)
    logits2 = torch.randn(len(FAMILIES), N, C, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, C, (N,), generator=g)
    y[: N // 2] = log_p1[: N // 2].argmax(1)  # h1 right on at least half of the batch
    return log_p1, logits2, y


def term_by_term(log_p2, log_p1, y, base, reduction):
    return torch.stack([
        compatibility_loss(log_p2[k], log_p1, y, value, family=family, base=base, reduction=reduction,
                           num_classes=C)
        for k, (value, family) in enumerate(zip(LAMBDAS, FAMILIES))
    ])


def linear(log_p2, log_p1, y, base, reduction):
    instances = instance_coefficients(log_p1, y, base=base, num_classes=C)
    lambdas = family_lambdas(LAMBDAS, FAMILIES, dtype=torch.float64)
    return linear_form_loss(log_p2, *linear_weights(instances, lambdas, reduction=reduction))


@pytest.mark.parametrize("base", LINEAR_BASES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_form_equals_the_term_by_term_loss_and_its_gradient(base, reduction):
    log_p1, logits2, y = batch(seed=3)
    log_p2 = logits2.log_softmax(-1)
    expected = term_by_term(log_p2, log_p1, y, base, reduction)
    got = linear(log_p2, log_p1, y, base, reduction)
    assert got.shape == (len(FAMILIES),)
    assert torch.allclose(got, expected, atol=1e-12, rtol=0)
    grad = torch.autograd.grad(got.sum(), logits2, retain_graph=True)[0]
    assert torch.allclose(grad, torch.autograd.grad(expected.sum(), logits2)[0], atol=1e-12, rtol=0)
    # The families really differ: Strict Imitation's coefficients spread over the classes.
    assert not torch.allclose(got[1], got[3])


def test_the_kl_base_carries_h1s_entropy_on_the_support_only():
    log_p1, logits2, y = batch(seed=4)
    log_p1 = log_p1.clone()
    off = int((log_p1.argmax(1) != y).nonzero()[0])
    log_p1[off, (int(log_p1[off].argmax()) + 1) % C] = -float("inf")  # probability 0, off the support
    log_p2 = logits2.log_softmax(-1)
    expected = term_by_term(log_p2, log_p1, y, "kl-divergence", "mean")
    assert torch.isfinite(expected).all()
    assert torch.allclose(linear(log_p2, log_p1, y, "kl-divergence", "mean"), expected, atol=1e-12, rtol=0)
    instances = instance_coefficients(log_p1, y, base="kl-divergence", num_classes=C)
    assert instances.negative_entropy[off] == 0
    assert instance_coefficients(log_p1, y, base="nll").negative_entropy is None


def test_coefficients_of_a_whole_table_select_to_those_of_a_batch():
    log_p1, _, y = batch(seed=5)
    table = instance_coefficients(log_p1, y, base="kl-divergence", num_classes=C)
    index = torch.tensor([7, 0, 3, 3, 11])
    part = instance_coefficients(log_p1[index], y[index], base="kl-divergence", num_classes=C)
    chosen = table.select(index)
    assert torch.equal(chosen.rows, part.rows) and torch.equal(chosen.negative_entropy, part.negative_entropy)
    assert chosen.rows.shape == (3, 5, C)


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="families has 1"):
        family_lambdas([0.1, 0.2], ["new-error"])
    with pytest.raises(ValueError, match="family must be one of"):
        family_lambdas([0.1], ["old-error"])
    with pytest.raises(ValueError, match=r"lambda_c\[1\]"):
        family_lambdas([0.0, -0.1], ["new-error", "new-error"])
    with pytest.raises(TypeError, match=r"lambda_c\[0\]"):
        family_lambdas(["0.5"], ["new-error"])
    log_p1, _, y = batch(seed=6)
    with pytest.raises(ValueError, match="base must be one of"):
        instance_coefficients(log_p1, y, base="binary-cross-entropy")
    with pytest.raises(ValueError, match="num_classes is required"):
        instance_coefficients(log_p1, y, base="kl-divergence")
    with pytest.raises(ValueError, match="the model returned 5 classes but num_classes=6"):
        instance_coefficients(log_p1, y, base="kl-divergence", num_classes=6)
    with pytest.raises(ValueError, match="reduction must be one of"):
        linear_weights(instance_coefficients(log_p1, y, base="nll"), family_lambdas([1.0], ["new-error"],
                            dtype=torch.float64), reduction="none")


# -- the stacked loss of the training loop -----------------------------------------------------
def stacked_setup(digits_data, base="cross-entropy"):
    h1, h2, train, test = digits_setup(digits_data)
    context, jobs = context_of(h1, h2, train, test, losses=PAIRS[base],
                               loss_kwargs={"num_classes": 10} if base == "kl-divergence" else None)
    jobs = by_family(jobs)
    losses = family_losses(context.families, context.h1, context.h2)
    return context, jobs, losses, train


def term_by_term_loss(jobs, losses, context):
    loss = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    loss.lambdas = None  # the term-by-term path only
    return loss


@pytest.mark.parametrize("base", LINEAR_BASES)
def test_stacked_loss_reads_a_table_and_equals_the_term_by_term_loss(digits_data, base):
    context, jobs, losses, train = stacked_setup(digits_data, base)
    loss = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    assert loss.lambdas is not None and loss.table is not None
    assert loss.table.rows.shape == (3, len(context.references["training"]), 10)
    exact = term_by_term_loss(jobs, losses, context)
    ids, x, y = train[1]
    log_p2 = torch.randn(len(jobs), len(y), 10, dtype=torch.float64).log_softmax(-1).float().requires_grad_()
    got, expected = loss(log_p2, ids, y, x), exact(log_p2, ids, y, x)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    grad = torch.autograd.grad(got.sum(), log_p2)[0]
    assert torch.allclose(grad, torch.autograd.grad(expected.sum(), log_p2)[0], atol=1e-7, rtol=0)


def test_stacked_loss_without_a_table_or_for_unknown_ids_works_from_the_batch(digits_data):
    context, jobs, losses, train = stacked_setup(digits_data)
    exact = term_by_term_loss(jobs, losses, context)
    ids, x, y = train[2]
    log_p2 = torch.randn(len(jobs), len(y), 10).log_softmax(-1)
    expected = exact(log_p2, ids, y, x)
    with_table = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    unknown = ids + 10_000  # not in the reference: h1 runs on the batch
    assert torch.allclose(with_table(log_p2, unknown, y, x), expected, atol=1e-6, rtol=0)
    h1_output = context.references["training"].outputs.for_batch(ids, x)
    no_reference = StackedLoss(jobs, losses, context.device)
    assert no_reference.table is None
    assert torch.allclose(no_reference(log_p2, None, y, h1_output=h1_output), expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="h1_output is required"):
        no_reference(log_p2, ids, y, x)
    with pytest.raises(ValueError, match="h2 returned 31 rows for a batch of 32 targets"):
        with_table(log_p2[:, 1:], ids, y, x)


def test_an_infinite_log_probability_the_loss_masks_does_not_fail_the_member(digits_data):
    context, jobs, losses, train = stacked_setup(digits_data)
    loss = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    ids, x, y = train[0]
    log_p2 = torch.randn(len(jobs), len(y), 10).log_softmax(-1)
    # A class that is neither the label nor where a New Error member's coefficients are: probability 0.
    other = (y[0] + 1) % 10
    log_p2[0, 0, other] = -float("inf")
    coefficients = loss.table.select(context.references["training"].rows_of(ids)).rows
    assert coefficients[:2, 0, other].eq(0).all(), "the linear form multiplies -inf by 0 there"
    got = loss(log_p2, ids, y, x)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, term_by_term_loss(jobs, losses, context)(log_p2, ids, y, x), atol=1e-6, rtol=0)


def test_a_batchs_weights_are_computed_once_and_kept_within_the_limit(digits_data, monkeypatch):
    import backwardcompatibilityml.engine.stacked_loss as stacked_loss_module

    context, jobs, losses, train = stacked_setup(digits_data)
    calls = []
    original = stacked_loss_module.linear_weights
    monkeypatch.setattr(stacked_loss_module, "linear_weights", lambda *a, **k: calls.append(1) or original(*a, **k))
    exact = term_by_term_loss(jobs, losses, context)
    log_p2 = torch.randn(len(jobs), 32, 10).log_softmax(-1)
    loss = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    for epoch in range(3):
        for ids, x, y in train[:2]:
            assert torch.allclose(loss(log_p2, ids, y, x), exact(log_p2, ids, y, x), atol=1e-6, rtol=0)
    assert len(calls) == 2, "once per batch, not per epoch"
    calls.clear()
    monkeypatch.setattr(stacked_loss_module, "KEPT_LIMIT_BYTES", len(jobs) * 32 * 10 * 4)  # room for one batch
    limited = StackedLoss(jobs, losses, context.device, reference=context.references["training"])
    for epoch in range(3):
        for ids, x, y in train[:2]:
            assert torch.allclose(limited(log_p2, ids, y, x), exact(log_p2, ids, y, x), atol=1e-6, rtol=0)
    assert len(calls) == 1 + 3, "the first batch is kept, the second computed every time"


@pytest.mark.parametrize("label", [C, -1])
def test_instance_coefficients_refuse_a_label_outside_the_classes(label):
    """F.one_hot raised a RuntimeError naming no argument ("Class values must be smaller than num_classes")."""
    log_p1, _logits2, y = batch(3)
    y[1] = label
    with pytest.raises(ValueError, match=f"target holds class {label}"):
        instance_coefficients(log_p1, y, base="cross-entropy")


def test_zero_probabilities_of_h1_keep_the_linear_form_finite():
    """0 log 0 = 0 in h1's negative entropy (the KL base): it was NaN, and NaN for every member."""
    log_p1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2], [0.5, 0.0, 0.5]], dtype=torch.float64).log()
    y = torch.tensor([0, 1, 2])  # h1 right on the first two (the third's argmax is class 0)
    instances = instance_coefficients(log_p1, y, base="kl-divergence", num_classes=3)
    by_hand = [0.0, 0.8 * math.log(0.8) + 0.2 * math.log(0.2), 0.0]
    assert torch.allclose(instances.negative_entropy, torch.tensor(by_hand, dtype=torch.float64), atol=1e-12)
    log_p2 = torch.randn(2, 3, 3, dtype=torch.float64).log_softmax(-1)
    lambdas = family_lambdas([0.5, 0.5], ["new-error", "strict-imitation"], dtype=torch.float64)
    got = linear_form_loss(log_p2, *linear_weights(instances, lambdas))
    expected = torch.stack([
        compatibility_loss(log_p2[k], log_p1, y, 0.5, family=family, base="kl-divergence", num_classes=3)
        for k, family in enumerate(["new-error", "strict-imitation"])
    ])
    assert torch.isfinite(got).all() and torch.allclose(got, expected, atol=1e-12)
