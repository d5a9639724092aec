"""The vmap-free fused forward: equal to vmap (values and gradients) where it applies, None where it does not."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from backwardcompatibilityml.engine.fused_forward import fused_forward, fused_matches_vmap
from backwardcompatibilityml.engine.stacking import StackedModel
from backwardcompatibilityml.engine.vectorized import VectorizedExecutor
from conftest import MLP
from test_vectorized import assert_same_results, context_of, digits_setup, run

from backwardcompatibilityml.engine.events import ExecutorNote
from backwardcompatibilityml.engine.executors import SequentialExecutor

CPU = torch.device("cpu")


class Residual(nn.Module):
    """Shared-input arithmetic, a residual sum of stacked tensors, a bias-free layer, module softmax."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(8, 6)
        self.second = nn.Linear(6, 6, bias=False)
        self.out = nn.Linear(6, 4)
        self.soft = nn.Softmax(dim=1)

    def forward(self, x):
        h = torch.tanh(self.first(x * 2.0 - 1.0))
        h = h + nn.functional.gelu(self.second(h))
        logits = self.out(h)
        return logits, self.soft(logits), torch.log_softmax(logits, dim=-1)


class Sequence(nn.Module):
    """Linear layers on ``(N, T, in)`` rows: a shared 3-D input, then a stacked 4-D value."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(8, 6)
        self.second = nn.Linear(6, 3)

    def forward(self, x):
        return self.second(torch.relu(self.first(x))).log_softmax(-1)


class Images(nn.Module):
    """Flatten of a 4-D shared input, then an MLP with several element-wise modules."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 2 * 2, 5), nn.SiLU(), nn.Dropout(0.3),
                                 nn.Linear(5, 3), nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.net(x)


def _inputs(model):
    torch.manual_seed(1)
    if isinstance(model, Images):
        return torch.randn(5, 2, 2, 2)
    return torch.randn(5, 4, 8) if isinstance(model, Sequence) else torch.randn(5, 8)


def _perturbed(model, size):
    stacked = StackedModel(model, size, CPU)
    with torch.no_grad():
        for tensor in stacked.params.values():
            tensor.add_(torch.randn_like(tensor) * 0.2)
    return stacked


def _flat(outputs):
    return list(outputs) if isinstance(outputs, tuple) else [outputs]


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3)),
    lambda: MLP(8, 5, 3, triple=True),
    Residual,
    Images,
    Sequence,
], ids=["sequential", "triple", "residual", "flatten", "sequence"])
def test_values_and_gradients_equal_vmap(make):
    # Seeded and in float64: the comparison does not hang on float32 rounding of random draws.
    torch.manual_seed(0)
    model = make().double().eval()
    stacked = _perturbed(model, 3)
    fused = fused_forward(stacked.module)
    assert fused is not None
    inputs = _inputs(model).double()

    def member(params, x):
        return functional_call(stacked.module, params, (x,))

    expected = _flat(vmap(member, in_dims=(0, None))(stacked.params, inputs))
    got = _flat(fused(stacked.params, inputs))
    assert len(got) == len(expected)
    cotangents = [torch.randn_like(t) for t in expected]
    names = list(stacked.params)
    want = torch.autograd.grad(sum((t * c).sum() for t, c in zip(expected, cotangents)),
                               [stacked.params[n] for n in names])
    have = torch.autograd.grad(sum((t * c).sum() for t, c in zip(got, cotangents)),
                               [stacked.params[n] for n in names])
    for a, b in zip(got, expected):
        assert a.shape == b.shape and a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for name, a, b in zip(names, have, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_dropout_draws_its_own_mask_for_every_member_in_training_mode():
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(8, 4))
    stacked = StackedModel(model, 2, CPU, fused=True)
    assert stacked.fused is not None
    stacked.train(True)
    out = stacked.fused(stacked.params, torch.ones(64, 8))
    assert not torch.equal(out[0], out[1]), "members that start equal differ only through their own masks"
    stacked.train(False)
    out = stacked.fused(stacked.params, torch.ones(64, 8))
    torch.testing.assert_close(out[0], out[1])


class ViewFlatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class DirectParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3))

    def forward(self, x):
        return x @ self.weight


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten()),
    nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4)),
    nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4)),
    nn.Sequential(nn.Linear(8, 4), nn.PReLU()),
    nn.Sequential(nn.Linear(8, 4), nn.Softmax()),
    ViewFlatten(), DataDependent(), DirectParameter(), Tied(),
], ids=["conv", "batchnorm", "layernorm", "prelu", "softmax-without-dim", "view", "data-dependent",
        "direct-parameter", "tied"])
def test_unknown_steps_leave_the_model_to_vmap(model):
    assert fused_forward(model) is None


def test_the_check_against_vmap_refuses_a_forward_that_mixes_up_members():
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))
    stacked = StackedModel(model, 2, CPU)
    fused = fused_forward(stacked.module)

    def first_member_only(params, inputs):
        out = fused(params, inputs)
        return out[:1].expand_as(out)

    assert fused_matches_vmap(StackedModel(model, 2, CPU), fused, torch.randn(4, 8))
    assert not fused_matches_vmap(stacked, first_member_only, torch.randn(4, 8))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "vmap"])
def test_executor_weights_equal_sequential_with_and_without_the_fused_forward(digits_data, fused):
    h1, h2, train, test = digits_setup(digits_data, triple=True)
    context, jobs = context_of(h1, h2, train, test, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.01})
    executor = VectorizedExecutor(fused_forward=fused)
    assert executor.uses_fused_forward(context) is fused
    vectorized = run(executor, context, jobs)
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    note = vectorized.of(ExecutorNote)[0].message
    assert note.endswith("(fused linear layers)" if fused else "(vmap)"), note


def test_models_the_fused_forward_does_not_know_train_through_vmap(digits_data):
    h1, _, train, test = digits_setup(digits_data)
    torch.manual_seed(3)
    h2 = nn.Sequential(nn.Linear(64, 12), nn.LayerNorm(12), nn.ReLU(), nn.Linear(12, 10))
    context, jobs = context_of(h1, h2, train, test)
    executor = VectorizedExecutor()
    assert executor.applies(context) is None and not executor.uses_fused_forward(context)
    assert_same_results(run(executor, context, jobs), run(SequentialExecutor(), context, jobs), jobs)
    with pytest.raises(TypeError, match="fused_forward"):
        VectorizedExecutor(fused_forward="yes")


class ModeBranch(nn.Module):
    """A graph that depends on the mode: tracing would freeze one branch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x * 0.5 if self.training else x)


def test_graphs_that_depend_on_the_mode_and_hooked_modules_are_left_to_vmap():
    for training in (True, False):
        model = ModeBranch().train(training)
        assert fused_forward(model) is None
        assert model.training is training, "the mode is restored"
    hooked = nn.Sequential(nn.Linear(8, 3), nn.ReLU())
    assert fused_forward(hooked) is not None
    hooked[1].register_forward_hook(lambda module, inputs, output: output * 2)
    assert fused_forward(hooked) is None


def test_in_place_dropout_on_the_shared_batch_trains_each_member_on_its_own_mask():
    model = nn.Sequential(nn.Dropout(0.5, inplace=True), nn.Linear(8, 4))
    inputs = torch.ones(16, 8)
    check = StackedModel(model, 2, CPU)
    assert fused_matches_vmap(check, fused_forward(check.module), inputs)
    stacked = StackedModel(model, 2, CPU, fused=True)
    stacked.train(True)
    out = stacked.fused(stacked.params, inputs)
    out.sum().backward()
    assert torch.equal(inputs, torch.ones(16, 8)), "the shared batch itself is not written to"
    assert not torch.equal(out[0], out[1])


def test_an_empty_batch_gives_empty_member_outputs():
    torch.manual_seed(0)
    stacked = _perturbed(nn.Sequential(nn.Linear(8, 7), nn.ReLU(), nn.Linear(7, 3)), 3)
    fused = fused_forward(stacked.module)
    assert fused is not None
    for inputs in (torch.zeros(0, 8), torch.zeros(2, 0, 8)):
        out = fused(stacked.params, inputs)
        assert out.shape == (3, *inputs.shape[:-1], 3)
