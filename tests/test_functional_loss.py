"""The functional loss core: stacked members against the loss classes, and its argument checks."""

from __future__ import annotations

import functools
import ast
import inspect

import pytest
import torch

import backwardcompatibilityml.loss.strict_imitation as strict_imitation_module
from backwardcompatibilityml.loss import BCCrossEntropyLoss, BCKLDivergenceLoss, CompatibilityLoss, StrictImitationNLLLoss
from backwardcompatibilityml.loss.functional import compatibility_loss
from backwardcompatibilityml.outputs import binary_probabilities, log_probabilities
from loss_cases import BINARY, MULTICLASS, Fixed, build_loss

C, N, K = 5, 12, 4
LAMBDAS = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
build = functools.partial(build_loss, classes=C)


def multiclass_batch(seed):
    g = torch.Generator().manual_seed(seed)
    logits1 = torch.randn(N, C, generator=g, dtype=torch.float64)
    logits2 = torch.randn(K, N, C, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, C, (N,), generator=g)
    y[: N // 2] = logits1[: N // 2].argmax(1)  # h1 right on at least half of the batch
    return logits1, logits2, y


@pytest.mark.parametrize("cls", MULTICLASS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_stacked_multiclass_equals_each_class_loss(cls, reduction):
    logits1, logits2, y = multiclass_batch(seed=1)
    loss = build(cls, Fixed(logits1), Fixed(logits2[0]), 0.5, reduction=reduction)
    arguments = loss.functional_arguments()
    stacked = compatibility_loss(
        log_probabilities(logits2.reshape(K * N, C)).reshape(K, N, C), log_probabilities(logits1), y, LAMBDAS,
        **arguments,
    )
    assert stacked.shape == ((K, N) if reduction == "none" else (K,))
    grads = torch.autograd.grad(stacked.sum(), logits2)[0]
    for k in range(K):
        member = logits2[k].detach().requires_grad_(True)
        one = build(cls, Fixed(logits1), Fixed(member), float(LAMBDAS[k]), reduction=reduction)(
            torch.zeros(N, 1), y)
        assert torch.allclose(stacked[k], one, atol=1e-12)
        assert torch.allclose(grads[k], torch.autograd.grad(one.sum(), member)[0], atol=1e-12)


@pytest.mark.parametrize("cls", BINARY)
@pytest.mark.parametrize("pivot", [0.5, 0.7])
def test_stacked_binary_equals_each_class_loss(cls, pivot):
    g = torch.Generator().manual_seed(2)
    p1 = torch.rand(N, generator=g, dtype=torch.float64) * 0.9 + 0.05
    p2 = (torch.rand(K, N, generator=g, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    y = torch.randint(0, 2, (N,), generator=g)
    loss = cls(Fixed(p1), Fixed(p2[0]), 0.5, discriminant_pivot=pivot)
    stacked = compatibility_loss(p2, p1, y.double(), LAMBDAS, **loss.functional_arguments())
    for k in range(K):
        one = cls(Fixed(p1[:, None]), Fixed(p2[k][:, None]), float(LAMBDAS[k]), discriminant_pivot=pivot)(
            torch.zeros(N, 1), y)
        assert torch.allclose(stacked[k], one, atol=1e-12)
    assert binary_probabilities(p2[0][:, None]).shape == (N,)


def test_float_lambda_with_leading_dimension_broadcasts():
    logits1, logits2, y = multiclass_batch(seed=3)
    lp1, lp2 = logits1.log_softmax(-1), logits2.log_softmax(-1)
    by_float = compatibility_loss(lp2, lp1, y, 0.4, family="strict-imitation", base="nll")
    by_tensor = compatibility_loss(lp2, lp1, y, torch.full((K,), 0.4, dtype=torch.float64),
                                   family="strict-imitation", base="nll")
    assert by_float.shape == (K,) and torch.allclose(by_float, by_tensor)


def test_families_differ_and_lambda_zero_is_the_base_loss():
    logits1, logits2, y = multiclass_batch(seed=4)
    lp1, lp2 = logits1.log_softmax(-1), logits2.log_softmax(-1)
    ne = compatibility_loss(lp2, lp1, y, LAMBDAS, family="new-error", base="cross-entropy")
    si = compatibility_loss(lp2, lp1, y, LAMBDAS, family="strict-imitation", base="cross-entropy")
    plain = torch.nn.functional.cross_entropy(logits2.detach().permute(0, 2, 1), y.expand(K, N), reduction="none")
    assert torch.allclose(ne[0], plain[0].mean()) and torch.allclose(si[0], plain[0].mean())
    assert ((ne[1:] - si[1:]).abs() > 1e-6).all()


@pytest.mark.parametrize("kwargs, error, word", [
    ({"family": "old-error", "base": "nll"}, ValueError, "family"),
    ({"family": "new-error", "base": "hinge"}, ValueError, "base"),
    ({"family": "new-error", "base": "nll", "reduction": "avg"}, ValueError, "reduction"),
    ({"family": "new-error", "base": "kl-divergence"}, ValueError, "num_classes"),
])
def test_bad_keyword_arguments_are_named(kwargs, error, word):
    logits1, logits2, y = multiclass_batch(seed=5)
    with pytest.raises(error, match=word):
        compatibility_loss(logits2.log_softmax(-1), logits1.log_softmax(-1), y, LAMBDAS, **kwargs)


@pytest.mark.parametrize("lambda_c, error", [
    (torch.tensor([0.1, 0.2]), ValueError),              # K=2 against 4 members
    (torch.tensor([[0.1] * K]), ValueError),             # not 1-D
    (torch.tensor([0.1, -0.2, 0.3, 0.4]), ValueError),  # negative
    (torch.tensor([0.1, float("nan"), 0.3, 0.4]), ValueError),
    (torch.tensor([0, 1, 1, 0]), TypeError),             # integer dtype
    (-0.5, ValueError), ("0.5", TypeError),
])
def test_bad_lambda_c_is_named(lambda_c, error):
    logits1, logits2, y = multiclass_batch(seed=6)
    with pytest.raises(error, match="lambda_c"):
        compatibility_loss(logits2.log_softmax(-1), logits1.log_softmax(-1), y, lambda_c,
                           family="new-error", base="nll")


def test_lambda_tensor_needs_a_leading_dimension():
    logits1, logits2, y = multiclass_batch(seed=7)
    with pytest.raises(ValueError, match="leading dimension"):
        compatibility_loss(logits2[0].log_softmax(-1), logits1.log_softmax(-1), y[:N], torch.tensor([0.5] * N),
                           family="new-error", base="nll")


def test_which_classes_are_built_on_the_functional_core():
    assert all(cls.is_functional() for cls in MULTICLASS + BINARY)

    class OwnDissonance(BCCrossEntropyLoss):
        def dissonance_terms(self, h2_out, h1_out, target):
            return super().dissonance_terms(h2_out, h1_out, target) * 2

    class OwnForward(StrictImitationNLLLoss):
        def forward(self, x, y, h1_output=None):
            return super().forward(x, y, h1_output) + 1

    class OnlyDefaults(BCKLDivergenceLoss):
        def __init__(self, h1, h2, lambda_c, **kwargs):
            super().__init__(h1, h2, lambda_c, num_classes=C, **kwargs)

    class Hooks(CompatibilityLoss):
        def base_terms(self, h2_out, target):
            return -h2_out[:, 0]

        def dissonance_terms(self, h2_out, h1_out, target):
            return h2_out.exp().sum(1)

    assert not OwnDissonance.is_functional() and not OwnForward.is_functional() and not Hooks.is_functional()
    assert OnlyDefaults.is_functional()
    model = Fixed(torch.zeros(3, C))
    assert OwnDissonance(model, model, 0.5).functional_arguments() is None
    assert OnlyDefaults(model, model, 0.5).functional_arguments()["num_classes"] == C
    y = torch.tensor([0, 1, 2])
    assert torch.isfinite(Hooks(model, model, 0.5)(torch.zeros(3, 1), y)), "the hook API still works"


def test_strict_imitation_does_not_import_new_error():
    tree = ast.parse(inspect.getsource(strict_imitation_module))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert imported and not any("new_error" in (name or "") for name in imported)


@pytest.mark.parametrize("base", ["nll", "kl-divergence"])
def test_one_call_serves_runs_of_both_families(base):
    from backwardcompatibilityml.loss.functional import member_weights, stacked_compatibility_loss

    logits1, logits2, y = multiclass_batch(seed=9)
    lp1, lp2 = logits1.log_softmax(-1), logits2.log_softmax(-1)
    kwargs = {"base": base, "num_classes": C}
    weights = member_weights(LAMBDAS, torch.empty(K, N, dtype=torch.float64))
    runs = (("new-error", 1), ("strict-imitation", 3))
    together = stacked_compatibility_loss(lp2, lp1, y, weights, family=runs, **kwargs)
    ne = compatibility_loss(lp2[:1], lp1, y, LAMBDAS[:1], family="new-error", **kwargs)
    si = compatibility_loss(lp2[1:], lp1, y, LAMBDAS[1:], family="strict-imitation", **kwargs)
    assert torch.allclose(together, torch.cat([ne, si]), atol=1e-12)
    grad = torch.autograd.grad(together.sum(), logits2, retain_graph=True)[0]
    expected = torch.autograd.grad(ne.sum() + si.sum(), logits2)[0]
    assert torch.allclose(grad, expected, atol=1e-12)


@pytest.mark.parametrize("leading", [(), (3,)])
def test_nll_terms_ignore_no_label(leading):
    # torch's nll_loss skips the label -100 by default; a compatibility loss must not (unstacked and stacked).
    from backwardcompatibilityml.loss.functional import nll_terms

    log_probs = torch.randn(*leading, 4, 5).log_softmax(-1)
    good = torch.tensor([0, 1, 4, 2])
    expected = -log_probs.gather(-1, good.expand(*leading, 4).unsqueeze(-1)).squeeze(-1)
    assert torch.equal(nll_terms(log_probs, good), expected)
    for label in (-100, -1, 5):
        with pytest.raises((IndexError, RuntimeError), match="out of bounds"):
            nll_terms(log_probs, torch.tensor([0, 1, label, 2]))
