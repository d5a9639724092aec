"""The CUDA paths: the sweeps of the CPU tests, run on a GPU.

Every test here trains or measures on ``DEVICE``: ``"cuda"`` unless the
environment variable ``BCML_TEST_DEVICE`` names another device. The module is
skipped where that device is CUDA and no GPU is present (CI has none);
``BCML_TEST_DEVICE=cpu`` runs the same tests on the CPU, which checks their
logic on a machine without a GPU.

What a GPU changes, and what is checked for it:

- h1 and h2 live on the GPU and the batches come from the CPU (also through
  a pinned, shuffling DataLoader that drops its last batch), or already sit
  on the GPU, instance ids too;
- results (weights, predictions) come back to the CPU and equal the
  sequential executor's, for both forwards of the vectorized executor;
- a sweep on the GPU agrees with the same sweep on the CPU;
- the caller's CUDA random state is left as it was, and the background
  thread (``start_sweep``) trains on the GPU;
- a label outside the classes is a ``ValueError``, not a device-side assert
  (which would end the process's CUDA context: checked in a subprocess).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from backwardcompatibilityml.engine.config import SweepConfig
from backwardcompatibilityml.engine.events import ExecutorNote
from backwardcompatibilityml.engine.executors import SequentialExecutor
from backwardcompatibilityml.engine.vectorized import VectorizedExecutor
from backwardcompatibilityml.engine.vmap_support import default_memory_budget
from backwardcompatibilityml.loss import (
    BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCNLLLoss, StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss, StrictImitationNLLLoss,
)
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.training import train_compatible_model
from conftest import MLP
from test_vectorized import (
    FromDict, assert_same_results, balanced_accuracy, cancer_setup, context_of, digits_setup, run,
)

DEVICE = os.environ.get("BCML_TEST_DEVICE", "cuda")
ON_CUDA = torch.device(DEVICE).type == "cuda"

pytestmark = pytest.mark.skipif(ON_CUDA and not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (BCML_TEST_DEVICE=cpu runs these tests on the CPU)")


def on_device(*models_and_data, **kwargs):
    """A prepared context and its jobs on ``DEVICE`` (``context_of`` of the CPU tests)."""
    context, jobs = context_of(*models_and_data, device=DEVICE, **kwargs)
    assert context.device.type == torch.device(DEVICE).type
    return context, jobs


def the_forward(sink) -> str:
    (note,) = sink.of(ExecutorNote)
    assert note.executor == "vectorized", note.message
    return note.message


def all_on(batches, device):
    return [tuple(part.to(device) for part in batch) for batch in batches]


# -- the vectorized executor against the sequential one, on the device ---------------------------------
@pytest.mark.parametrize("fused", [True, False], ids=["fused-forward", "vmap"])
@pytest.mark.parametrize("case", ["sgd-momentum-logits", "adam-triple-nll"])
def test_vectorized_equals_sequential_on_the_device(digits_data, case, fused):
    if case == "sgd-momentum-logits":
        context, jobs = on_device(*digits_setup(digits_data), optimizer_kwargs={
            "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3})
    else:
        context, jobs = on_device(*digits_setup(digits_data, triple=True), optimizer=torch.optim.Adam,
                                  optimizer_kwargs={"lr": 0.01}, losses=(BCNLLLoss, StrictImitationNLLLoss))
    vectorized = run(VectorizedExecutor(fused_forward=fused), context, jobs)
    assert the_forward(vectorized).endswith("(fused linear layers)" if fused else "(vmap)")
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)


def test_binary_losses_and_a_metric_that_moves_its_own_tensors_equal_sequential(cancer_data):
    context, jobs = on_device(*cancer_setup(cancer_data), optimizer_kwargs={"lr": 0.1, "momentum": 0.5},
                              losses=(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss),
                              loss_kwargs={"discriminant_pivot": 0.6}, metric=balanced_accuracy)
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)
    assert len({r.outputs["testing"].performance for r in vectorized.results().values()}) > 1


def test_batches_already_on_the_device_ids_included_equal_batches_from_the_cpu(digits_data):
    h1, h2, train, test = digits_setup(digits_data)
    from_cpu = run(VectorizedExecutor(), *on_device(h1, h2, train, test))
    context, jobs = on_device(h1, h2, all_on(train, DEVICE), all_on(test, DEVICE))
    assert_same_results(run(VectorizedExecutor(), context, jobs), from_cpu, jobs)
    assert_same_results(run(SequentialExecutor(), context, jobs), from_cpu, jobs)


Pixels = collections.namedtuple("Pixels", "values scale")


class FromNamedTuple(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(batch.values * batch.scale)


@pytest.mark.parametrize("kind", ["dict", "named-tuple"])
def test_dict_and_named_tuple_inputs_are_moved_to_the_device(digits_data, kind):
    h1, h2, train, test = digits_setup(digits_data)
    if kind == "dict":
        h1, h2 = FromDict(h1), FromDict(h2)
        wrap = lambda x: {"pixels": x}  # noqa: E731
    else:
        h1, h2 = FromNamedTuple(h1), FromNamedTuple(h2)
        wrap = lambda x: Pixels(x, torch.ones(1))  # noqa: E731
    train, test = ([(ids, wrap(x), y) for ids, x, y in batches] for batches in (train, test))
    context, jobs = on_device(h1, h2, train, test, optimizer_kwargs={"lr": 0.05, "momentum": 0.9})
    vectorized = run(VectorizedExecutor(), context, jobs)
    assert_same_results(vectorized, run(SequentialExecutor(), context, jobs), jobs)


def test_chunks_fit_the_devices_memory_and_equal_one_chunk(digits_data):
    context, jobs = on_device(*digits_setup(digits_data), stepsize=0.25, epochs=1)
    budget = default_memory_budget(context.device)
    if ON_CUDA:
        free, _total = torch.cuda.mem_get_info(context.device)
        assert 0 < budget <= free, "half of the GPU's free memory"
    assert VectorizedExecutor().chunk_limit(context) >= len(jobs), "10 tiny members fit at once"
    whole = run(VectorizedExecutor(), context, jobs)
    assert_same_results(run(VectorizedExecutor(max_parallel_models=3), context, jobs), whole, jobs)


# -- whole sweeps through the public API --------------------------------------------------------------
def small_sweep(folder, device, **kwargs):
    """The digits sweep of the CPU tests, its models built on the CPU and moved to ``device``."""
    from sweep_setup import digits_sets
    from conftest import train_plain

    torch.manual_seed(0)
    train, test = digits_sets()
    h1 = train_plain(MLP(64, 6, 10), train, epochs=2).to(device)
    h2 = MLP(64, 24, 10).to(device)
    return SweepManager(str(folder), 2, h1, h2, train, test, 24, 40, torch.optim.SGD,
                        {"lr": 0.05, "momentum": 0.9}, BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                        lambda_c_stepsize=0.25, device=device, **kwargs)


def test_a_background_sweep_on_the_device_trains_stores_and_leaves_the_random_state(tmp_path):
    manager = small_sweep(tmp_path / "sweep", DEVICE)
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if ON_CUDA else None
    manager.start_sweep()
    assert manager.wait(timeout=600), "the sweep ends"
    assert manager.last_exception is None, manager.last_traceback
    status = manager.get_sweep_status()
    assert status["state"] == "completed" and status["executor"] == "vectorized", status
    assert torch.equal(torch.get_rng_state(), cpu_state)
    if ON_CUDA:
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state), "the caller's CUDA random state is kept"
    model = manager.load_model(1.0, "new-error")
    assert all(p.device.type == torch.device(DEVICE).type for p in model.parameters()), "loaded onto the device"
    evaluation = manager.get_evaluation(len(manager.lambda_c_values) * 4 - 1)
    assert evaluation["dataset_size"] == 80 and 0 <= evaluation["btc"] <= 1


def test_a_sweep_on_the_device_agrees_with_the_same_sweep_on_the_cpu(tmp_path):
    on_cpu = small_sweep(tmp_path / "cpu", "cpu", executor="sequential")
    on_cpu.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    on_gpu = small_sweep(tmp_path / "gpu", DEVICE, executor="vectorized")
    on_gpu.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    largest = 0.0
    for lambda_c in on_cpu.lambda_c_values:
        for family in ("new-error", "strict-imitation"):
            a, b = on_cpu.load_model(lambda_c, family), on_gpu.load_model(lambda_c, family)
            for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
                largest = max(largest, (x - y.cpu()).abs().max().item())
    assert largest <= 1e-4, f"weights differ by {largest:.2e} between the CPU and {DEVICE}"
    for index in range(len(on_cpu.lambda_c_values) * 4):
        a, b = on_cpu.get_evaluation(index), on_gpu.get_evaluation(index)
        for score in ("btc", "bec", "h2_performance"):
            assert b[score] == pytest.approx(a[score], abs=2 / a["dataset_size"]), (index, score)


def test_a_pinned_shuffling_loader_that_drops_its_last_batch_on_the_device(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50, 5, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    loader = dict(batch_size=12, shuffle=True, drop_last=True, pin_memory=ON_CUDA)
    train = DataLoader(TensorDataset(torch.arange(50), x, y), **loader)
    test = DataLoader(TensorDataset(torch.arange(100, 150), x, y), **loader)
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).to(DEVICE)  # noqa: E731
    manager = SweepManager(str(tmp_path / "sweep"), 2, make(), make(), train, test, 12, 12, torch.optim.Adam,
                           {"lr": 0.01}, lambda_c_stepsize=0.5, device=DEVICE)
    manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    assert manager.get_sweep_status()["state"] == "completed"
    assert {manager.get_evaluation(i)["dataset_size"] for i in range(len(manager.lambda_c_values) * 4)} == {50}


def test_train_compatible_model_on_the_device_leaves_h2_there_and_trained(digits_data):
    h1, h2, train, _ = digits_setup(digits_data)
    h1, h2 = h1.to(DEVICE), h2.to(DEVICE)
    before = [p.detach().clone() for p in h2.parameters()]
    trained = train_compatible_model(h1, h2, train, loss_class=StrictImitationCrossEntropyLoss, lambda_c=0.5,
                                     optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.05},
                                     device=DEVICE)
    assert trained is h2 and not trained.training
    assert all(p.device.type == torch.device(DEVICE).type for p in trained.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, trained.parameters()))


@pytest.mark.skipif(not ON_CUDA, reason="a model on another device than device= needs two devices")
def test_h1_left_on_the_cpu_is_refused_naming_h1(digits_data):
    h1, h2, train, test = digits_setup(digits_data)
    with pytest.raises(ValueError, match=r"h1 has its parameters on cpu but device="):
        SweepConfig.from_arguments(
            number_of_epochs=1, h1=h1, h2=h2.to(DEVICE), training_set=train, test_set=test,
            batch_size_train=32, batch_size_test=25, OptimizerClass=torch.optim.SGD,
            optimizer_kwargs={"lr": 0.05}, device=DEVICE)


def test_a_label_outside_the_classes_is_a_value_error_not_a_device_assert():
    """In a subprocess: a device-side assert would end the CUDA context of every later test."""
    script = textwrap.dedent(f"""
        import torch, torch.nn as nn
        from backwardcompatibilityml.loss import BCCrossEntropyLoss
        h1 = nn.Linear(4, 3).to({DEVICE!r}); h2 = nn.Linear(4, 3).to({DEVICE!r})
        x = torch.randn(5, 4, device={DEVICE!r}); y = torch.tensor([0, 1, 2, 3, 0], device={DEVICE!r})
        try:
            BCCrossEntropyLoss(h1, h2, lambda_c=0.5)(x, y)
        except ValueError as error:
            print("ValueError:", error)
        loss = BCCrossEntropyLoss(h1, h2, lambda_c=0.5)(x, y.clamp(max=2))
        loss.backward()
        print("after:", torch.isfinite(loss).item())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_LAUNCH_BLOCKING": "1"})
    assert done.returncode == 0, done.stderr
    assert "ValueError: y holds class 3 but the model returned 3 classes" in done.stdout, done.stdout
    assert "after: True" in done.stdout, "the CUDA context still works after the refusal"
