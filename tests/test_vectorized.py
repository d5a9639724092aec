"""The vectorized executor against the sequential one: equal weights, equal columns, fallbacks, events."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from backwardcompatibilityml.engine.config import SweepConfig
from backwardcompatibilityml.engine.context import prepare
from backwardcompatibilityml.engine.events import (
    BatchDone, ExecutorNote, JobFailed, JobFinished, JobStarted, StepDone,
)
from backwardcompatibilityml.engine.executors import SequentialExecutor, resolve_executor
from backwardcompatibilityml.engine.jobs import TrainingJob, plan_jobs
from backwardcompatibilityml.engine.stacked_loss import StackedLoss
from backwardcompatibilityml.engine.vectorized import VectorizedExecutor
from backwardcompatibilityml.engine.vmap_support import ELEMENTWISE_OPTIMIZERS, chunk_sizes
from backwardcompatibilityml.loss import (
    BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss,
    StrictImitationBinaryCrossEntropyLoss, StrictImitationCrossEntropyLoss, StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)
from backwardcompatibilityml.random_state import seeded_random_state
from backwardcompatibilityml.training import NonFiniteLossError, TrainingCancelled, train_compatible_model
from conftest import BinaryMLP, MLP, make_batches, train_plain

TOLERANCE = 1e-5


class Recorder:
    """An event sink that keeps every event."""

    def __init__(self):
        self.events = []

    def put(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def results(self):
        return {e.result.job: e.result for e in self.of(JobFinished)}


def never():
    return False


def digits_setup(digits_data, triple=False, hidden=12, n_train=160, n_test=60):
    x, y = digits_data
    torch.manual_seed(0)
    train = make_batches(x[:n_train], y[:n_train], 32)
    test = make_batches(x[n_train:n_train + n_test], y[n_train:n_train + n_test], 25, first_id=n_train)
    h1 = train_plain(MLP(64, 6, 10, triple=triple), train, epochs=2)
    h2 = MLP(64, hidden, 10, triple=triple)
    return h1, h2, train, test


def cancer_setup(cancer_data, column=False):
    x, y = cancer_data
    torch.manual_seed(0)
    train = make_batches(x[:200], y[:200], 32)
    test = make_batches(x[200:300], y[200:300], 50, first_id=200)
    h1 = train_plain(BinaryMLP(30, 4, column=column), train, epochs=1, binary=True)
    return h1, BinaryMLP(30, 8, column=column), train, test


def context_of(h1, h2, train, test, *, optimizer=torch.optim.SGD, optimizer_kwargs=None, losses=None,
               loss_kwargs=None, epochs=2, stepsize=0.5, metric=None, device="cpu"):
    """``loss_kwargs``: one dict for both families, or a pair (New Error's, Strict Imitation's).

    ``device``: where the sweep trains; h1 and h2 are moved there (the batches stay where they are).
    """
    losses = losses or (BCCrossEntropyLoss, StrictImitationCrossEntropyLoss)
    kwargs = loss_kwargs if isinstance(loss_kwargs, tuple) else (loss_kwargs, loss_kwargs)
    config = SweepConfig.from_arguments(
        number_of_epochs=epochs, h1=h1.to(device), h2=h2.to(device), training_set=train, test_set=test,
        batch_size_train=32, batch_size_test=25, OptimizerClass=optimizer,
        optimizer_kwargs=optimizer_kwargs or {"lr": 0.05},
        NewErrorLossClass=losses[0], StrictImitationLossClass=losses[1], lambda_c_stepsize=stepsize,
        new_error_loss_kwargs=kwargs[0], strict_imitation_loss_kwargs=kwargs[1], performance_metric=metric,
        device=device,
    )
    return prepare(config), plan_jobs(config.lambda_c_values, config.families, config.seed)


def run(executor, context, jobs, should_stop=never):
    sink = Recorder()
    executor.run(jobs, context, sink, should_stop)
    return sink


def assert_same_results(vectorized, sequential, jobs):
    assert set(vectorized.results()) == set(sequential.results()) == set(jobs)
    for job in jobs:
        a, b = vectorized.results()[job], sequential.results()[job]
        assert list(a.model_state) == list(b.model_state), "the same state_dict keys, in the same order"
        for key in a.model_state:
            assert a.model_state[key].device.type == "cpu"
            if a.model_state[key].dtype.is_floating_point:
                difference = (a.model_state[key] - b.model_state[key]).abs().max().item()
                assert difference <= TOLERANCE, (job, key, difference)
            else:
                assert torch.equal(a.model_state[key], b.model_state[key]), (job, key)
        for name in ("training", "testing"):
            np.testing.assert_array_equal(a.outputs[name].predictions, b.outputs[name].predictions)
            assert a.outputs[name].predictions.dtype == np.int64 and a.outputs[name].confidences.dtype == np.float32
            np.testing.assert_allclose(a.outputs[name].confidences, b.outputs[name].confidences, atol=1e-5)
            assert a.outputs[name].performance == pytest.approx(b.outputs[name].performance)


def test_sgd_nesterov_new_error_and_strict_imitation_equal_sequential(digits_data):
    context, jobs = context_of(*digits_setup(digits_data), optimizer_kwargs={
        "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3})
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert not [e for e in vectorized.of(ExecutorNote) if e.executor != "vectorized"], "no fallback"
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    trained = vectorized.results()[jobs[-1]].model_state
    assert any((trained[k] - context.h2.state_dict()[k]).abs().max() > 1e-3 for k in trained), "it trained"


def test_adam_on_triple_outputs_with_nll_equals_sequential(digits_data):
    context, jobs = context_of(*digits_setup(digits_data, triple=True), optimizer=torch.optim.Adam,
                               optimizer_kwargs={"lr": 0.01, "weight_decay": 1e-4},
                               losses=(BCNLLLoss, StrictImitationNLLLoss))
    assert_same_results(run(VectorizedExecutor(), context, jobs), run(SequentialExecutor(), context, jobs), jobs)


@pytest.mark.parametrize("triple", [False, True])
def test_softmax_computed_class_major_equals_sequential(digits_data, monkeypatch, triple):
    """10 members x 32 rows: the stacked softmax runs class-major (forced on, whatever this CPU), h2 alone does not."""
    from backwardcompatibilityml import class_softmax

    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 64)
    decided = []
    class_major = class_softmax.class_major
    monkeypatch.setattr(class_softmax, "class_major", lambda x, dim: decided.append(class_major(x, dim)) or decided[-1])
    context, jobs = context_of(*digits_setup(digits_data, triple=triple), stepsize=0.25)
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert len(jobs) == 10 and True in decided
    decided.clear()
    sequential = run(SequentialExecutor(), context, jobs)
    assert True not in decided  # (the triple model calls torch.log_softmax itself)
    assert_same_results(vectorized, sequential, jobs)


def test_kl_divergence_losses_equal_sequential(digits_data):
    context, jobs = context_of(*digits_setup(digits_data), optimizer=torch.optim.AdamW,
                               optimizer_kwargs={"lr": 0.01}, losses=(BCKLDivergenceLoss,
                                                                      StrictImitationKLDivergenceLoss),
                               loss_kwargs={"num_classes": 10}, epochs=1)
    assert_same_results(run(VectorizedExecutor(), context, jobs), run(SequentialExecutor(), context, jobs), jobs)


def balanced_accuracy(model, dataset, device):
    """A metric that runs the model itself (no from_predictions)."""
    right, total = np.zeros(2), np.zeros(2)
    model.eval()
    with torch.no_grad():
        for _, x, y in dataset:
            predicted = (model(x.to(device)).reshape(-1) > 0.5).long().cpu()
            for c in (0, 1):
                total[c] += int((y == c).sum())
                right[c] += int(((predicted == y) & (y == c)).sum())
    return float(np.mean(right / np.maximum(total, 1)))


@pytest.mark.parametrize("column", [False, True])
def test_binary_losses_and_a_custom_metric_equal_sequential(cancer_data, column):
    context, jobs = context_of(*cancer_setup(cancer_data, column), optimizer_kwargs={"lr": 0.1, "momentum": 0.5},
                               losses=(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
                               loss_kwargs={"discriminant_pivot": 0.6}, metric=balanced_accuracy)
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    performances = {r.outputs["testing"].performance for r in vectorized.results().values()}
    assert len(performances) > 1, "each member is measured by itself"


def test_binary_families_with_different_discriminant_pivots_are_refused(cancer_data):
    """One threshold turns h1's and every h2's probabilities into labels; a pivot per family is an error."""
    with pytest.raises(ValueError, match=r"strict_imitation_loss_kwargs\['discriminant_pivot'\] is 0\.9 but "
                                         r"new_error_loss_kwargs\['discriminant_pivot'\] is 0\.5"):
        context_of(*cancer_setup(cancer_data), losses=(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
                   loss_kwargs=({}, {"discriminant_pivot": 0.9}))
    # Equal pivots, one given and one by default, are one threshold.
    context_of(*cancer_setup(cancer_data), losses=(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
               loss_kwargs=({"discriminant_pivot": 0.5}, {}))


def test_a_context_built_by_hand_with_two_binary_pivots_falls_back(cancer_data):
    import dataclasses

    context, jobs = context_of(*cancer_setup(cancer_data), losses=(BCBinaryCrossEntropyLoss,
                                                                   StrictImitationBinaryCrossEntropyLoss))
    families = (context.families[0], dataclasses.replace(context.families[1], loss_kwargs={"discriminant_pivot": 0.9}))
    assert "different discriminant pivots" in VectorizedExecutor().applies(dataclasses.replace(context, families=families))


def test_multiclass_families_with_different_unused_pivots_still_stack(digits_data):
    """The pivot has no effect on multi-class losses (they warn): it does not send the sweep to sequential."""
    with pytest.warns(UserWarning, match="discriminant_pivot=0.9 has no effect"):
        context, jobs = context_of(*digits_setup(digits_data), stepsize=1.0, epochs=1,
                                   loss_kwargs=({}, {"discriminant_pivot": 0.9}))
        assert VectorizedExecutor().applies(context) is None
        vectorized = run(VectorizedExecutor(), context, jobs)
        sequential = run(SequentialExecutor(), context, jobs)
    assert [note.executor for note in vectorized.of(ExecutorNote)] == ["vectorized"]
    assert [len(e.jobs) for e in vectorized.of(JobStarted)] == [len(jobs)]
    assert_same_results(vectorized, sequential, jobs)


def test_weights_equal_train_compatible_model_job_by_job(digits_data):
    """The reference is training.py itself, one job at a time from the job's seed."""
    h1, h2, train, test = digits_setup(digits_data)
    context, jobs = context_of(h1, h2, train, test, optimizer=torch.optim.Adam, optimizer_kwargs={"lr": 0.02})
    results = run(VectorizedExecutor(), context, jobs).results()
    for job in jobs:
        family = context.family(job.family)
        with seeded_random_state(job.seed, torch.device("cpu")):
            model = copy.deepcopy(h2)
            train_compatible_model(h1, model, train, loss_class=family.loss_class, lambda_c=job.lambda_c,
                                   optimizer_class=torch.optim.Adam, optimizer_kwargs={"lr": 0.02},
                                   number_of_epochs=2, loss_kwargs=family.loss_kwargs)
        for key, value in model.state_dict().items():
            assert (results[job].model_state[key] - value).abs().max().item() <= TOLERANCE


class BatchNormMLP(nn.Module):
    def __init__(self, bias=True):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 12, bias=bias), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 10))

    def forward(self, x):
        return self.net(x)


def test_batchnorm_keeps_running_statistics_per_member(digits_data):
    h1, _, train, test = digits_setup(digits_data)
    torch.manual_seed(1)
    context, jobs = context_of(h1, BatchNormMLP(), train, test, optimizer_kwargs={"lr": 0.05, "momentum": 0.9})
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert VectorizedExecutor().applies(context) is None
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    means = [r.model_state["net.1.running_mean"] for r in vectorized.results().values()]
    assert (means[0] - means[-1]).abs().max() > 1e-6, "members keep their own statistics"
    assert int(means and vectorized.results()[jobs[0]].model_state["net.1.num_batches_tracked"]) == 2 * len(train)


def test_batchnorm_with_adam_equals_sequential_without_the_bias_before_it(digits_data):
    """The documented remedy: Adam amplifies rounding on a bias whose true gradient is zero; no such bias, equal."""
    h1, _, train, test = digits_setup(digits_data)
    torch.manual_seed(1)
    context, jobs = context_of(h1, BatchNormMLP(bias=False), train, test, optimizer=torch.optim.Adam,
                               optimizer_kwargs={"lr": 0.01})
    assert_same_results(run(VectorizedExecutor(), context, jobs), run(SequentialExecutor(), context, jobs), jobs)


def test_events_chunks_and_memory_budget(digits_data):
    context, jobs = context_of(*digits_setup(digits_data), stepsize=0.25, epochs=1)  # 10 jobs
    assert chunk_sizes(10, 3) == [3, 3, 2, 2] and chunk_sizes(10, 10) == [10] and chunk_sizes(5, 1) == [1] * 5
    whole = run(VectorizedExecutor(), context, jobs)
    chunked = run(VectorizedExecutor(max_parallel_models=3), context, jobs)
    assert [len(e.jobs) for e in chunked.of(JobStarted)] == [3, 3, 2, 2]
    assert [len(e.jobs) for e in whole.of(JobStarted)] == [10]
    assert_same_results(chunked, whole, jobs)
    train_batches, test_batches = len(context.training_set), len(context.test_set)
    for sink, chunks in ((whole, 1), (chunked, 4)):
        assert len(sink.of(StepDone)) == chunks * train_batches
        assert sum(len(e.jobs) for e in sink.of(StepDone)) == len(jobs) * train_batches
        assert sum(len(e.jobs) for e in sink.of(BatchDone)) == len(jobs) * (train_batches + test_batches)
        assert len(sink.of(JobFinished)) == len(jobs) and not sink.of(JobFailed)
        assert all(len(e.losses) == len(e.jobs) for e in sink.of(StepDone))
    tiny = VectorizedExecutor(memory_budget_bytes=1)
    assert tiny.chunk_limit(context) == 1
    assert VectorizedExecutor(memory_budget_bytes=10 ** 12).chunk_limit(context) >= len(jobs)
    assert VectorizedExecutor(max_parallel_models=4, memory_budget_bytes=10 ** 12).chunk_limit(context) == 4


def test_cancel_acts_before_the_next_step(digits_data):
    context, jobs = context_of(*digits_setup(digits_data))
    sink = Recorder()
    with pytest.raises(TrainingCancelled):
        VectorizedExecutor().run(jobs, context, sink, lambda: len(sink.of(StepDone)) >= 3)
    assert len(sink.of(StepDone)) == 3 and not sink.of(JobFinished) and not sink.of(JobFailed)


def test_diverging_training_fails_every_member_like_sequential(digits_data):
    context, jobs = context_of(*digits_setup(digits_data), optimizer_kwargs={"lr": 1e30}, stepsize=1.0)
    sink = Recorder()
    with pytest.raises(NonFiniteLossError, match="training loss became"):
        VectorizedExecutor().run(jobs, context, sink, never)
    assert sorted(e.job.lambda_c for e in sink.of(JobFailed)) == sorted(j.lambda_c for j in jobs)
    assert all(e.error.startswith("NonFiniteLossError") for e in sink.of(JobFailed))
    assert not sink.of(JobFinished)


@pytest.mark.parametrize("case", ["binary", "multi-class, own reductions", "multi-class, linear form"])
def test_a_loss_class_in_the_other_familys_slot_trains_its_own_loss(digits_data, cancer_data, case):
    """A Strict Imitation class in the New Error slot: both executors train the loss the class computes."""
    if case == "binary":
        setup = cancer_setup(cancer_data)
        losses, kwargs = (StrictImitationBinaryCrossEntropyLoss,) * 2, None
    else:
        setup = digits_setup(digits_data)
        losses = (StrictImitationCrossEntropyLoss,) * 2
        kwargs = ({"reduction": "sum"}, {}) if case == "multi-class, own reductions" else None
    context, jobs = context_of(*setup, losses=losses, loss_kwargs=kwargs, optimizer_kwargs={"lr": 0.01},
                               stepsize=1.0)
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert not [e for e in vectorized.of(ExecutorNote) if e.executor != "vectorized"], "no fallback"
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    if kwargs is None:  # the same class and settings in both slots: the same training
        by_slot = {(job.lambda_c, job.family): vectorized.results()[job].model_state for job in jobs}
        for key, value in by_slot[(1.0, "new-error")].items():
            assert torch.allclose(value, by_slot[(1.0, "strict-imitation")][key], atol=TOLERANCE), key


def test_a_loss_class_in_another_familys_slot_is_logged(digits_data, caplog):
    setup = digits_setup(digits_data)
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.config"):
        context_of(*setup, losses=(BCCrossEntropyLoss, StrictImitationCrossEntropyLoss), stepsize=1.0)
    assert not [r for r in caplog.records if "points" in r.getMessage()], "the usual pair: no warning"
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.config"):
        context_of(*setup, losses=(StrictImitationCrossEntropyLoss, BCCrossEntropyLoss), stepsize=1.0)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ("NewErrorLossClass is StrictImitationCrossEntropyLoss, a strict-imitation loss: the sweep trains "
            "that loss and stores its models as the New Error points") in messages
    assert ("StrictImitationLossClass is BCCrossEntropyLoss, a new-error loss: the sweep trains that loss and "
            "stores its models as the Strict Imitation points") in messages


def test_one_diverging_member_fails_alone_and_the_others_equal_sequential(digits_data, monkeypatch):
    """A job whose loss overflows leaves the stack; the linear form still serves the live members."""
    context, jobs = context_of(*digits_setup(digits_data), optimizer_kwargs={"lr": 0.05, "momentum": 0.9},
                               stepsize=1.0, epochs=3)
    overflowing = TrainingJob(lambda_index=2, lambda_c=1e37, family="strict-imitation", family_index=1,
                              datapoint_indices=(8, 9))
    recomputed = []
    term_by_term = StackedLoss._term_by_term
    monkeypatch.setattr(StackedLoss, "_term_by_term",
                        lambda self, *args: recomputed.append(1) or term_by_term(self, *args))
    sink = Recorder()
    with pytest.raises(NonFiniteLossError, match="lambda_c=1e"):
        VectorizedExecutor().run(list(jobs) + [overflowing], context, sink, never)
    assert [e.job for e in sink.of(JobFailed)] == [overflowing], "it fails alone, reported once"
    assert len(recomputed) == 1, "only the step where it overflowed is recomputed term by term"
    steps = sink.of(StepDone)
    assert overflowing not in steps[-1].jobs and len(steps[-1].jobs) == len(jobs)
    assert_same_results(sink, run(SequentialExecutor(), context, jobs), jobs)


def test_one_diverging_binary_member_fails_alone_with_a_non_finite_loss(cancer_data):
    """NaN probabilities give a NaN loss (binary_cross_entropy raises on them): only that member fails."""
    context, jobs = context_of(*cancer_setup(cancer_data), optimizer_kwargs={"lr": 0.05},
                               losses=(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
                               stepsize=1.0, epochs=3)
    overflowing = TrainingJob(lambda_index=2, lambda_c=1e37, family="strict-imitation", family_index=1,
                              datapoint_indices=(8, 9))
    sink = Recorder()
    with pytest.raises(NonFiniteLossError, match="lambda_c=1e"):
        VectorizedExecutor().run(list(jobs) + [overflowing], context, sink, never)
    assert [e.job for e in sink.of(JobFailed)] == [overflowing], "it fails alone"
    assert_same_results(sink, run(SequentialExecutor(), context, jobs), jobs)
    with pytest.raises(NonFiniteLossError, match="training loss became"):  # not binary_cross_entropy's error
        SequentialExecutor().run([overflowing], context, Recorder(), never)


def test_a_failing_chunk_reports_each_member_once(digits_data):
    """A member that failed alone earlier is not reported again when a later error ends the chunk."""
    h1, h2, train, test = digits_setup(digits_data)

    class BrokenInEpochTwo(list):
        passes = 0

        def __iter__(self):
            BrokenInEpochTwo.passes += 1
            for index, (ids, x, y) in enumerate(list.__iter__(self)):
                yield (ids, x[:, :10], y) if BrokenInEpochTwo.passes >= 4 and index == 2 else (ids, x, y)

    context, jobs = context_of(h1, h2, BrokenInEpochTwo(train), test, stepsize=1.0, epochs=3)
    overflowing = TrainingJob(lambda_index=2, lambda_c=1e37, family="strict-imitation", family_index=1,
                              datapoint_indices=(8, 9))
    sink = Recorder()
    with pytest.raises(RuntimeError):
        VectorizedExecutor().run(list(jobs) + [overflowing], context, sink, never)
    failed = [e.job for e in sink.of(JobFailed)]
    assert sorted(failed, key=repr) == sorted(list(jobs) + [overflowing], key=repr)
    assert [e.error.split(":")[0] for e in sink.of(JobFailed) if e.job == overflowing] == ["NonFiniteLossError"]


@pytest.mark.parametrize("optimizer, kwargs", [
    (torch.optim.RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5}),
    (torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01}),
    (torch.optim.Adadelta, {"lr": 1.0}),
    (torch.optim.Adamax, {"lr": 0.01}),
    (torch.optim.NAdam, {"lr": 0.01}),
    (torch.optim.RAdam, {"lr": 0.01}),
    (torch.optim.ASGD, {"lr": 0.05}),
    (torch.optim.Adam, {"lr": 0.01, "amsgrad": True}),
])
def test_other_element_wise_optimizers_on_a_shuffling_loader_equal_sequential(digits_data, optimizer, kwargs):
    """Each optimizer the executor stacks, on a shuffling DataLoader with ids and a short last batch."""
    x, y = digits_data
    torch.manual_seed(0)
    rows = TensorDataset(torch.arange(150), torch.tensor(x[:150], dtype=torch.float32), torch.tensor(y[:150]))
    train = DataLoader(rows, batch_size=32, shuffle=True)  # 4 batches of 32 and one of 22, a new order each pass
    test = make_batches(x[150:200], y[150:200], 25, first_id=150)
    h1 = train_plain(MLP(64, 6, 10), make_batches(x[:150], y[:150], 32), epochs=2)
    context, jobs = context_of(h1, MLP(64, 12, 10), train, test, optimizer=optimizer, optimizer_kwargs=kwargs,
                               stepsize=1.0)
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert not [e for e in vectorized.of(ExecutorNote) if e.executor != "vectorized"], "no fallback"
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)


class FrozenFirstLayer(nn.Module):
    """A first layer whose weight does not train (its bias does)."""

    def __init__(self):
        super().__init__()
        self.first, self.last = nn.Linear(64, 12), nn.Linear(12, 10)
        self.first.weight.requires_grad_(False)

    def forward(self, x):
        return self.last(torch.relu(self.first(x)))


class TiedMiddle(nn.Module):
    """Two layers sharing one weight (each with its own bias)."""

    def __init__(self):
        super().__init__()
        self.first, self.middle, self.again, self.last = (nn.Linear(64, 16), nn.Linear(16, 16), nn.Linear(16, 16),
                                                          nn.Linear(16, 10))
        self.again.weight = self.middle.weight

    def forward(self, x):
        return self.last(torch.tanh(self.again(torch.tanh(self.middle(torch.relu(self.first(x)))))))


class FromDict(nn.Module):
    """Takes its input as ``{"pixels": tensor}``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(batch["pixels"])


class SmallConvNet(nn.Module):
    """Digits as 8x8 images: convolution, pooling, flatten, linear (not for the fused forward: vmap)."""

    def __init__(self):
        super().__init__()
        self.conv, self.out = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        images = x.reshape(-1, 1, 8, 8)
        return self.out(torch.flatten(torch.max_pool2d(torch.relu(self.conv(images)), 2), 1))


@pytest.mark.parametrize("model, forward", [
    ("frozen", "fused linear layers"), ("tied", "vmap"), ("dict-input", "vmap"), ("conv", "vmap"),
])
def test_frozen_tied_dict_input_and_conv_models_equal_sequential(digits_data, model, forward):
    h1, _, train, test = digits_setup(digits_data)
    torch.manual_seed(1)
    h2 = {"frozen": FrozenFirstLayer, "tied": TiedMiddle, "conv": SmallConvNet,
          "dict-input": lambda: FromDict(MLP(64, 12, 10))}[model]()
    if model == "dict-input":
        h1 = FromDict(h1)
        train, test = ([(ids, {"pixels": x}, y) for ids, x, y in batches] for batches in (train, test))
    context, jobs = context_of(h1, h2, train, test, optimizer_kwargs={"lr": 0.05, "momentum": 0.9})
    vectorized = run(VectorizedExecutor(), context, jobs)
    (note,) = vectorized.of(ExecutorNote)
    assert note.executor == "vectorized" and note.message.endswith("(%s)" % forward), note.message
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    trained = vectorized.results()[jobs[-1]].model_state
    assert list(trained) == list(h2.state_dict()), "every state_dict key, tied ones included, in order"
    if model == "frozen":
        assert torch.equal(trained["first.weight"], h2.first.weight), "the frozen weight did not move"
        assert not torch.equal(trained["first.bias"], h2.first.bias)
    if model == "tied":
        assert torch.equal(trained["middle.weight"], trained["again.weight"]), "still one weight"


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.out = nn.LSTM(8, 8, batch_first=True), nn.Linear(8, 10)

    def forward(self, x):
        return self.out(self.lstm(x.reshape(-1, 8, 8))[0][:, -1])


class OwnLoss(BCCrossEntropyLoss):
    def dissonance_terms(self, h2_out, h1_out, target):
        return 2 * super().dissonance_terms(h2_out, h1_out, target)


class DataDependent(MLP):
    def forward(self, x):
        logits = self.net(x)
        return logits if float(logits.detach().sum()) > -1e9 else -logits  # a Python branch on a value


class TunedSGD(torch.optim.SGD):
    """A user's optimizer: not known to be element-wise, even as a subclass of one that is."""


@pytest.mark.parametrize("change, words", [
    ({"optimizer": TunedSGD, "optimizer_kwargs": {"lr": 0.1}}, "TunedSGD"),
    ({"losses": (OwnLoss, StrictImitationCrossEntropyLoss)}, "OwnLoss"),
    ({"h2": "data-dependent"}, "vmap cannot run h2"),
    ({"h2": "recurrent"}, "vmap cannot run h2"),
])
def test_falls_back_to_sequential_with_the_reason(digits_data, caplog, change, words):
    h1, h2, train, test = digits_setup(digits_data)
    model = change.pop("h2", None)
    if model:
        torch.manual_seed(0)
        h2 = DataDependent(64, 12, 10) if model == "data-dependent" else Recurrent()
    context, jobs = context_of(h1, h2, train, test, stepsize=1.0, epochs=1, **change)
    executor = VectorizedExecutor()
    assert words in executor.applies(context)
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.vectorized"):
        fallback = run(executor, context, jobs)
    notes = fallback.of(ExecutorNote)
    assert len(notes) == 1 and words in notes[0].message and notes[0].executor == "sequential"
    assert words in caplog.text
    assert [len(e.jobs) for e in fallback.of(JobStarted)] == [1] * len(jobs), "one job at a time"
    assert_same_results(fallback, run(SequentialExecutor(), context, jobs), jobs)


class ReplacesBuffer(MLP):
    """A running mean kept by assignment (``self.mean = ...``), which vmap's functional_call would drop."""

    def __init__(self):
        super().__init__(64, 12, 10)
        self.register_buffer("mean", torch.zeros(64))

    def forward(self, x):
        if self.training:
            self.mean = 0.5 * self.mean + 0.5 * x.mean(0)
        return self.net(x - self.mean)


class GradientHook(MLP):
    """Halves the gradient reaching the last layer's input: a backward hook, which vmap does not run."""

    def __init__(self):
        super().__init__(64, 12, 10)
        self.net[2].register_full_backward_pre_hook(lambda module, grad: (grad[0] * 0.5,))


class BranchesOnRequiresGrad(MLP):
    """Scales a gradient only when its tensor requires grad: never, under vmap."""

    def __init__(self):
        super().__init__(64, 12, 10)

    def forward(self, x):
        hidden = self.net[1](self.net[0](x))
        if hidden.requires_grad:
            hidden.register_hook(lambda grad: grad * 0.5)
        return self.net[2](hidden)


class CountsCalls(MLP):
    """Python state in forward (a warm-up): a traced graph would freeze it."""

    def __init__(self):
        super().__init__(64, 12, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.net(x)
        return out * 3.0 if self.calls > 4 else out


class KeepsActivation(MLP):
    """Stores its hidden layer on itself: under vmap a batched tensor, which cannot be deep-copied."""

    def __init__(self):
        super().__init__(64, 12, 10)

    def forward(self, x):
        self.hidden = self.net[1](self.net[0](x)).detach()
        return self.net[2](self.hidden)


def running_accuracy(model, dataset, device):
    """A metric that runs the model (no from_predictions): every member needs a model of its own."""
    right = total = 0
    with torch.no_grad():
        for _ids, x, y in dataset:
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return right / total


@pytest.mark.parametrize("model, note, metric", [
    (ReplacesBuffer, "replaces its buffer 'mean' in forward", None),
    (GradientHook, "h2.net.2 has a backward hook", None),
    (BranchesOnRequiresGrad, "the gradient of h2's 'net.0.weight' differs under torch.func.vmap", None),
    (CountsCalls, "(vmap)", None),
    (KeepsActivation, "(vmap)", running_accuracy),
])
def test_models_vmap_would_train_otherwise_fall_back_or_leave_the_fused_path(digits_data, model, note, metric):
    """Each of these trained other weights than the sequential executor, or failed, before it was checked."""
    h1, _h2, train, test = digits_setup(digits_data)
    torch.manual_seed(0)
    context, jobs = context_of(h1, model(), train, test, stepsize=0.5, epochs=2, metric=metric)
    vectorized = run(VectorizedExecutor(), context, jobs)
    notes = [e.message for e in vectorized.of(ExecutorNote)]
    assert len(notes) == 1 and note in notes[0], notes
    assert not vectorized.of(JobFailed)
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)


class WithExtraState(nn.Module):
    """A module with extra state (``get_extra_state``): a plain dict among the state_dict's tensors."""

    def __init__(self):
        super().__init__()
        self.m, self.tag = MLP(64, 12, 10), 5

    def get_extra_state(self):
        return {"tag": self.tag}

    def set_extra_state(self, state):
        self.tag = state["tag"]

    def forward(self, x):
        return self.m(x)


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_a_model_with_extra_state_is_swept_stored_and_loaded(tmp_path, executor):
    """It failed when the SweepManager was built (the fingerprint read .shape of the dict)."""
    from sweep_setup import digits_sets

    from backwardcompatibilityml.sweep_management import SweepManager

    train, test = digits_sets()
    torch.manual_seed(0)
    h2 = WithExtraState()
    h2.tag = 7
    manager = SweepManager(str(tmp_path / "s"), 1, MLP(64, 6, 10), h2, train, test, 24, 40,
                           lambda_c_stepsize=1.0, executor=executor)
    manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "completed" and status["executor"] == executor, status
    loaded = manager.load_model(1.0, "strict-imitation")
    assert loaded.tag == 7 and not torch.equal(loaded.m.net[0].weight, h2.m.net[0].weight)


def test_a_check_that_cannot_run_sends_the_sweep_to_one_model_at_a_time(digits_data, monkeypatch):
    """Copies that do not fit (say) while checking vmap against the model: a fallback, not a failed sweep."""
    from backwardcompatibilityml.engine import vmap_support

    def out_of_memory(*args):
        raise MemoryError("no room for another copy of h2")

    monkeypatch.setattr(vmap_support, "_gradient_mismatch", out_of_memory)
    context, jobs = context_of(*digits_setup(digits_data), stepsize=1.0, epochs=1)
    vectorized = run(VectorizedExecutor(), context, jobs)
    notes = [e.message for e in vectorized.of(ExecutorNote)]
    assert len(notes) == 1 and "h2 could not be checked under torch.func.vmap (MemoryError: no room" in notes[0]
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)


class DropoutMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)


def test_dropout_draws_differ_per_member(digits_data):
    h1, _, train, test = digits_setup(digits_data)
    torch.manual_seed(2)
    context, _ = context_of(h1, DropoutMLP(), train, test, stepsize=1.0, epochs=1)
    job = plan_jobs([0.5], context.families[:1], 0)[0]
    twins = [job, type(job)(**{**job.__dict__, "lambda_index": 1})]  # the same training twice
    results = list(run(VectorizedExecutor(), context, twins).results().values())
    difference = (results[0].model_state["net.0.weight"] - results[1].model_state["net.0.weight"]).abs().max()
    assert difference > 1e-6, "each member draws its own dropout masks"


def test_lbfgs_does_not_apply(digits_data):
    context, _ = context_of(*digits_setup(digits_data), optimizer=torch.optim.LBFGS, optimizer_kwargs={"lr": 0.1})
    assert "LBFGS is not known to update element by element" in VectorizedExecutor().applies(context)


def test_auto_resolves_to_vectorized_and_options_are_checked():
    assert isinstance(resolve_executor("auto"), VectorizedExecutor)
    assert VectorizedExecutor.name == "vectorized"
    with pytest.raises(ValueError, match="max_parallel_models"):
        VectorizedExecutor(max_parallel_models=0)
    with pytest.raises(TypeError, match="memory_budget_bytes"):
        VectorizedExecutor(memory_budget_bytes="1GB")


@pytest.mark.parametrize("optimizer", ELEMENTWISE_OPTIMIZERS)
def test_every_allowed_optimizer_is_element_wise(optimizer):
    """One optimizer over stacked tensors updates each slice exactly as its own optimizer does."""
    g = torch.Generator().manual_seed(0)
    kwargs = {"lr": 0.01, "weight_decay": 0.01} if optimizer is not torch.optim.Rprop else {"lr": 0.01}
    stacked = torch.randn(3, 4, 5, generator=g, requires_grad=True)
    singles = [stacked[k].detach().clone().requires_grad_(True) for k in range(3)]
    together = optimizer([stacked], **kwargs)
    apart = [optimizer([p], **kwargs) for p in singles]
    for _ in range(4):
        grad = torch.randn(3, 4, 5, generator=g)
        stacked.grad = grad.clone()
        together.step()
        for k, (p, opt) in enumerate(zip(singles, apart)):
            p.grad = grad[k].clone()
            opt.step()
    for k in range(3):
        assert torch.allclose(stacked[k], singles[k], atol=1e-6), optimizer


def in_new_thread(function):
    import threading

    box = {}
    thread = threading.Thread(target=lambda: box.update(value=function()))
    thread.start()
    thread.join()
    return box["value"]


def test_sweep_thread_settings_are_the_threads_own(monkeypatch):
    from backwardcompatibilityml.engine.threads import ENVIRONMENT_VARIABLE, configure_sweep_thread, sweep_thread_count

    assert [sweep_thread_count(2, 2), sweep_thread_count(16, 16), sweep_thread_count(4, 16), sweep_thread_count(8, 1)] \
        == [1, 15, 4, 1]
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
        expected = sweep_thread_count(before, len(__import__("os").sched_getaffinity(0)))
        assert in_new_thread(lambda: (configure_sweep_thread(), torch.get_num_threads())) == (expected, expected)
        assert torch.get_num_threads() == before, "the notebook's thread keeps its count"
        assert in_new_thread(lambda: (configure_sweep_thread(3), torch.get_num_threads())) == (3, 3)
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, "2")
        assert in_new_thread(configure_sweep_thread) == 2
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, "many")
        with pytest.raises(ValueError, match=ENVIRONMENT_VARIABLE):
            configure_sweep_thread()
        with pytest.raises(ValueError, match="num_threads"):
            configure_sweep_thread(0)
    finally:
        in_new_thread(lambda: torch.set_num_threads(before))  # the default of later threads, as it was
    assert torch.get_num_threads() == before


class CountedPasses(list):
    """A list of batches that counts the passes started over it."""

    passes = 0

    def __iter__(self):
        CountedPasses.passes += 1
        return super().__iter__()


def test_applicability_starts_one_pass_and_training_one_per_epoch(digits_data):
    # A pass can be costly to start (a DataLoader with workers spawns them): the checks share one.
    h1, h2, train, test = digits_setup(digits_data)
    counted = CountedPasses(train)
    context, jobs = context_of(h1, h2, counted, test, epochs=3)
    executor = VectorizedExecutor()
    CountedPasses.passes = 0
    assert executor.applies(context) is None and executor.uses_fused_forward(context)
    assert CountedPasses.passes == 1, "the vmap trace and the fused-forward check share the first batch"
    CountedPasses.passes = 0
    sink = run(executor, context, jobs)
    assert len(sink.of(JobFinished)) == len(jobs) and not sink.of(JobFailed)
    assert CountedPasses.passes == 3 + 1, "one pass per epoch for all members, and one to evaluate them"


def test_the_executor_note_counts_many_chunks_by_size():
    from backwardcompatibilityml.engine.vectorized import _describe_chunks

    assert _describe_chunks([[None] * 10]) == "1 stacked model of 10"
    assert _describe_chunks([[None] * 4, [None] * 4, [None] * 3]) == "3 stacked models of 4, 4, 3"
    # 1001 lambda_c values x 2 families at max_parallel_models=5: a note of a few words, not 401 numbers
    assert _describe_chunks([[None] * 5] * 400 + [[None] * 2]) == "401 stacked models (400 of 5, 1 of 2)"


def test_batch_sizes_other_than_the_datasets_are_logged(digits_data, caplog):
    h1, h2, train, test = digits_setup(digits_data)  # batches of 32 and 25
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.config"):
        SweepConfig.from_arguments(number_of_epochs=1, h1=h1, h2=h2, training_set=train, test_set=test,
                                   batch_size_train=32, batch_size_test=25)
        assert not [r for r in caplog.records if "batch_size" in r.getMessage()]
        loader = DataLoader(TensorDataset(torch.arange(64), torch.rand(64, 64), torch.randint(0, 10, (64,))),
                            batch_size=16)
        SweepConfig.from_arguments(number_of_epochs=1, h1=h1, h2=h2, training_set=loader, test_set=test,
                                   batch_size_train=32, batch_size_test=8)
    messages = [r.getMessage() for r in caplog.records if "batch_size" in r.getMessage()]
    assert messages == [
        "batch_size_train=32 but the batches of training_set hold 16 instances; the batches are used as they are "
        "(batch_size_train is only recorded in the configuration)",
        "batch_size_test=8 but the batches of test_set hold 25 instances; the batches are used as they are "
        "(batch_size_test is only recorded in the configuration)",
    ]


def test_the_batch_size_is_read_from_the_targets_of_pair_batches(digits_data, caplog):
    """Inputs given as a tuple of tensors hold 2 elements, not 2 instances."""
    from backwardcompatibilityml.engine.config import _warn_of_batch_size

    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.config"):
        _warn_of_batch_size([((x, x), y)], "training_set", 16, "batch_size_train")
        _warn_of_batch_size([({"a": x}, y)], "training_set", 16, "batch_size_train")
        _warn_of_batch_size([(torch.arange(0), x[:0], y[:0])], "training_set", 16, "batch_size_train")  # empty
        _warn_of_batch_size([(torch.tensor(0), x, torch.tensor(3))], "training_set", 16, "batch_size_train")
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml.engine.config"):
        _warn_of_batch_size([((x, x), y)], "training_set", 8, "batch_size_train")
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "batch_size_train=8 but the batches of training_set hold 16 instances"]
