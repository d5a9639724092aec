"""Review of how data is read, batched and moved, how models are measured, and what a sweep leaves untouched.

Each test reproduces a defect found with a user's own data and models: a
DataLoader that shuffles with its own generator, drops its last batch or
samples by weight; an h1 handed over in train mode with BatchNorm; a
performance metric written to the documented signature; named-tuple inputs;
string instance ids.
"""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, SubsetRandomSampler, TensorDataset, WeightedRandomSampler

from backwardcompatibilityml.data import evaluation_view, iterate_batches, training_view
from backwardcompatibilityml.device import resolve_device, to_device
from backwardcompatibilityml.evaluation import measure_performance, predict_outputs, prepare_reference
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.outputs import inference
from backwardcompatibilityml.preflight import preflight
from backwardcompatibilityml.engine.families import seed_families
from backwardcompatibilityml.sweep_management import SweepManager

N, D, C = 48, 5, 3
FAMILIES = seed_families(BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, {}, {})


def _data(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def _model(batch_norm: bool = False) -> nn.Module:
    layers = [nn.Linear(D, 8)] + ([nn.BatchNorm1d(8)] if batch_norm else []) + [nn.ReLU(), nn.Linear(8, C)]
    return nn.Sequential(*layers)


def _batches(x, y, size=16, first_id=0):
    return [(torch.arange(first_id + i, first_id + min(i + size, len(y))), x[i:i + size], y[i:i + size])
            for i in range(0, len(y), size)]


def _sweep(tmp_path, training_set, test_set, h1=None, h2=None, **kwargs) -> SweepManager:
    torch.manual_seed(0)
    kwargs.setdefault("executor", "sequential")
    manager = SweepManager(
        str(tmp_path / "sweep"), 1, h1 if h1 is not None else _model(), h2 if h2 is not None else _model(),
        training_set, test_set, 16, 16, torch.optim.SGD, {"lr": 0.1}, lambda_c_stepsize=1.0, **kwargs,
    )
    manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    return manager


def _modes(model: nn.Module):
    return [module.training for module in model.modules()]


# -- the performance metric ---------------------------------------------------------------------------
def _metric_without_eval(model, dataset, device):
    """A user metric as people write them: it never calls model.eval()."""
    correct = total = 0
    for _, inputs, targets in dataset:
        correct += int((model(inputs).argmax(1) == targets).sum())
        total += len(targets)
    return correct / total


def test_a_user_metric_measures_h1_in_eval_mode_and_leaves_its_batchnorm_alone():
    x, y = _data()
    torch.manual_seed(0)
    h1 = _model(batch_norm=True).train()  # a freshly built or trained model is in train mode
    before = {name: tensor.clone() for name, tensor in h1.state_dict().items()}
    reference = prepare_reference(h1, _batches(x * 3 + 1, y), "training", performance_metric=_metric_without_eval)
    changed = [name for name, tensor in h1.state_dict().items() if not torch.equal(tensor, before[name])]
    assert changed == [], "measuring h1 must not update its BatchNorm statistics"
    assert reference.h1_performance == pytest.approx(float(np.mean(reference.h1_predictions == reference.targets)))
    assert h1.training, "h1's mode is given back"


def test_a_user_metric_gets_the_device_as_the_documented_string():
    x, y = _data()
    seen = []

    def metric(model, dataset, device):
        seen.append((device, model.training))
        return 0.5

    h2 = _model().train()
    reference = prepare_reference(_model(), _batches(x, y), "testing")
    predict_outputs(h2, _batches(x, y), reference, device=torch.device("cpu"), performance_metric=metric)
    assert seen == [("cpu", False)] and isinstance(seen[0][0], str)
    assert h2.training


@pytest.mark.parametrize("value", [np.array(0.25), np.array([0.25]), np.float32(0.25), torch.tensor([0.25])])
def test_a_metric_may_return_any_single_number(value):
    result = measure_performance(lambda m, d, dev: value, _model(), [], torch.device("cpu"), None, None,
                                 model_name="h1", dataset_name="training")
    assert result == pytest.approx(0.25)


def test_library_passes_give_each_submodule_its_own_mode_back():
    x, y = _data()
    h1 = _model(batch_norm=True).train()
    h1[1].eval()  # a frozen BatchNorm inside a model in train mode
    modes = _modes(h1)
    with inference(h1):
        assert not any(_modes(h1))
    assert _modes(h1) == modes
    prepare_reference(h1, _batches(x, y), "training")
    assert _modes(h1) == modes


# -- inputs and ids --------------------------------------------------------------------------------------
def test_named_tuple_and_dict_inputs_are_moved_to_the_device():
    Pair = collections.namedtuple("Pair", "image mask")
    moved = to_device(Pair(torch.zeros(2), [torch.ones(2)]), torch.device("cpu"))
    assert isinstance(moved, Pair) and torch.equal(moved.mask[0], torch.ones(2))
    on_meta = to_device({"image": torch.zeros(2), "extra": (torch.ones(1), "name")}, torch.device("meta"))
    assert on_meta["image"].device.type == "meta" and on_meta["extra"][0].device.type == "meta"
    assert on_meta["extra"][1] == "name"
    batches = list(iterate_batches([(torch.arange(2), Pair(torch.zeros(2, 3), torch.ones(2, 3)), torch.tensor([0, 1]))],
                                   torch.device("cpu")))
    assert isinstance(batches[0][1], Pair)


@pytest.mark.parametrize("ids", [["a.png", "b.png"], np.array(["a", "b"])])
def test_string_instance_ids_are_refused_naming_instance_ids(ids):
    with pytest.raises(TypeError, match="instance_ids of a batch must be a 1-D sequence of integers.*str"):
        list(iterate_batches([(ids, torch.zeros(2, 3), torch.tensor([0, 1]))]))


def test_a_cuda_device_that_does_not_exist_is_refused_naming_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0").index == 0
    with pytest.raises(ValueError, match=r"device='cuda:3' .* 1 CUDA device"):
        resolve_device("cuda:3")


# -- DataLoader views ------------------------------------------------------------------------------------
def _ids(dataset) -> list:
    return torch.cat([ids for ids, _, _ in iterate_batches(dataset)]).tolist()


def test_the_evaluation_view_yields_every_instance_once_in_order():
    x, y = _data()
    tensors = TensorDataset(torch.arange(100, 100 + N), x, y)
    shuffled = DataLoader(tensors, batch_size=10, shuffle=True, drop_last=True)
    assert len(_ids(shuffled)) == 40
    assert _ids(evaluation_view(shuffled)) == list(range(100, 100 + N))
    weighted = DataLoader(tensors, batch_size=10, sampler=WeightedRandomSampler(
        torch.tensor([0.0, 0.0] + [1.0] * (N - 2)), 3 * N))
    assert _ids(evaluation_view(weighted)) == list(range(102, 100 + N)), "what the weights can never draw is left out"
    subset = DataLoader(tensors, batch_size=10, sampler=SubsetRandomSampler([5, 1, 9]))
    assert _ids(evaluation_view(subset)) == [105, 101, 109]
    plain = DataLoader(tensors, batch_size=10)
    assert evaluation_view(plain) is plain
    listed = _batches(x, y)
    assert evaluation_view(listed) is listed and training_view(listed) is listed


def test_the_training_view_draws_its_order_from_the_global_seed_and_leaves_the_users_generator_alone():
    x, y = _data()
    generator = torch.Generator().manual_seed(7)
    loader = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=8, shuffle=True, drop_last=True,
                        generator=generator)
    state = generator.get_state().clone()
    view = training_view(loader)
    orders = []
    for _ in range(2):
        torch.manual_seed(3)
        orders.append(_ids(view))
    assert orders[0] == orders[1] and sorted(orders[0]) != orders[0]
    assert len(orders[0]) == 48 and view.drop_last and view.batch_size == 8
    assert torch.equal(generator.get_state(), state)
    unseeded = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=8, shuffle=True)
    assert training_view(unseeded) is unseeded


# -- sweeps over DataLoaders -------------------------------------------------------------------------------
def test_a_shuffling_loader_that_drops_its_last_batch_is_trained_on_and_evaluated_on_every_instance(tmp_path):
    x, y = _data()
    train = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=10, shuffle=True, drop_last=True)
    test = DataLoader(TensorDataset(torch.arange(1000, 1000 + N), x, y), batch_size=10, shuffle=True,
                      drop_last=True)
    manager = _sweep(tmp_path, train, test)
    assert manager.get_sweep_status()["state"] == "completed"
    for index in range(4):
        assert manager.get_evaluation(index)["dataset_size"] == N


def test_a_training_loader_that_samples_with_replacement_is_accepted(tmp_path):
    x, y = _data()
    weighted = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=16,
                          sampler=WeightedRandomSampler(torch.ones(N), N, replacement=True))
    manager = _sweep(tmp_path, weighted, _batches(x, y, first_id=1000))
    assert manager.get_sweep_status()["state"] == "completed"
    assert manager.get_evaluation(0)["dataset_size"] == N


def test_every_job_sees_the_same_batch_order_from_a_loader_with_its_own_generator(tmp_path):
    x, y = _data()
    generator = torch.Generator().manual_seed(11)
    train = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=8, shuffle=True, generator=generator)
    state = generator.get_state().clone()
    manager = _sweep(tmp_path, train, _batches(x, y, first_id=1000))
    # At lambda_c = 0 both families train on the base loss alone: same weights, same batches, same model.
    new_error = manager.load_model(0.0, "new-error").state_dict()
    strict = manager.load_model(0.0, "strict-imitation").state_dict()
    assert all(torch.equal(new_error[name], strict[name]) for name in new_error)
    assert torch.equal(generator.get_state(), state), "the user's generator is not drawn from"


def test_a_sweep_leaves_h1_and_the_h2_template_as_they_were(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    h1, h2 = _model(batch_norm=True).train(), _model(batch_norm=True).train()
    h1[1].eval()
    h1[0].weight.requires_grad_(False)
    snapshots = [
        ({k: v.clone() for k, v in m.state_dict().items()}, _modes(m), [p.requires_grad for p in m.parameters()])
        for m in (h1, h2)
    ]
    _sweep(tmp_path, _batches(x, y), _batches(x, y, first_id=1000), h1=h1, h2=h2,
           performance_metric=_metric_without_eval)
    for model, (state, modes, flags) in zip((h1, h2), snapshots):
        assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in state.items())
        assert _modes(model) == modes
        assert [p.requires_grad for p in model.parameters()] == flags


# -- preflight ---------------------------------------------------------------------------------------------
def test_preflight_leaves_a_loaders_own_generator_as_it_was():
    x, y = _data()
    generator = torch.Generator().manual_seed(1)
    loader = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=8, shuffle=True, generator=generator)
    state = generator.get_state().clone()
    preflight(_model(), _model(), loader, loader, FAMILIES, torch.optim.SGD, {"lr": 0.1})
    assert torch.equal(generator.get_state(), state)


def test_preflight_refuses_a_training_loader_that_drops_every_batch():
    x, y = _data()
    loader = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=N + 1, shuffle=True, drop_last=True)
    with pytest.raises(ValueError, match="training_set has no batches"):
        preflight(_model(), _model(), loader, _batches(x, y), FAMILIES, torch.optim.SGD, {"lr": 0.1})


class _ShuffledBatches:
    """A user's own batch_sampler that shuffles: the default BatchSampler's sampler stays sequential."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size

    def __iter__(self):
        order = torch.randperm(self.n).tolist()
        return iter([order[i:i + self.size] for i in range(0, self.n, self.size)])

    def __len__(self) -> int:
        return (self.n + self.size - 1) // self.size


def test_pairs_from_a_loader_with_its_own_batch_sampler_are_not_numbered_by_position():
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_sampler=_ShuffledBatches(N, 8))
    with pytest.raises(ValueError, match="needs a fixed order"):
        list(iterate_batches(loader))
    with_ids = DataLoader(TensorDataset(torch.arange(N), x, y), batch_sampler=_ShuffledBatches(N, 8))
    assert sorted(_ids(with_ids)) == list(range(N)), "batches that carry their ids are fine in any order"


class _BinaryLogits(nn.Module):
    """A binary model that returns logits where probabilities are expected."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(D, 1)

    def forward(self, x):
        return self.linear(x)[:, 0] * 5


def test_preflight_names_the_model_that_returns_logits_where_binary_probabilities_are_expected():
    from backwardcompatibilityml.loss import BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss

    x, y = _data()
    binary = [(ids, inputs, (targets > 0).float()) for ids, inputs, targets in _batches(x, y)]
    families = seed_families(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss, {}, {})
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"h1 returns one value per instance.*span \[.*torch.sigmoid"):
        preflight(_BinaryLogits(), _BinaryLogits(), binary, binary, families, torch.optim.SGD, {"lr": 0.1})


def test_progress_counts_the_batches_a_job_really_runs_with_a_loader_that_drops_its_last_batch(tmp_path):
    x, y = _data()
    train = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=10, shuffle=True, drop_last=True)
    manager = _sweep(tmp_path, train, _batches(x, y, first_id=1000))
    progress = manager._progress
    # 1 epoch of 4 training batches, then evaluation of all 48 training instances (5 batches) and 3 test batches.
    assert progress._units_total == 4 * (4 + 5 + 3)
    assert progress._units_done == progress._units_total
    assert manager.get_sweep_status()["percent_complete"] == 1.0


@pytest.mark.parametrize("loss_class", [BCCrossEntropyLoss, StrictImitationCrossEntropyLoss])
def test_multiclass_labels_as_a_column_are_read_as_class_indices(loss_class):
    x, y = _data()
    torch.manual_seed(0)
    h1, h2 = _model(), _model()
    loss = loss_class(h1, h2, 0.5)
    assert torch.equal(loss(x, y.view(-1, 1)), loss(x, y))
    with pytest.raises(ValueError, match="shape \\(N,\\) or \\(N, 1\\)"):
        loss(x, y.view(-1, 2)[:, :2].reshape(-1, 2))


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_a_sweep_on_multiclass_labels_as_a_column_equals_the_sweep_on_flat_labels(tmp_path, executor):
    x, y = _data()
    flat = _sweep(tmp_path / "flat", _batches(x, y), _batches(x, y, first_id=1000), executor=executor)
    column = _sweep(tmp_path / "column", [(i, xb, yb.view(-1, 1)) for i, xb, yb in _batches(x, y)],
                    [(i, xb, yb.view(-1, 1)) for i, xb, yb in _batches(x, y, first_id=1000)], executor=executor)
    for index in range(4):
        assert column.get_evaluation(index)["btc"] == flat.get_evaluation(index)["btc"]
        assert column.get_evaluation(index)["performance"] == flat.get_evaluation(index)["performance"]


@pytest.mark.parametrize("executor", ["sequential", "vectorized", "auto"])
def test_a_sweep_leaves_the_callers_random_state_as_it_was(tmp_path, executor):
    x, y = _data()
    train = DataLoader(TensorDataset(torch.arange(N), x, y), batch_size=16, shuffle=True)
    h1, h2 = _model(), _model()
    manager = SweepManager(str(tmp_path / "sweep"), 1, h1, h2, train, _batches(x, y, first_id=1000), 16, 16,
                           torch.optim.SGD, {"lr": 0.1}, lambda_c_stepsize=1.0, executor=executor)
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    assert manager.get_sweep_status()["state"] == "completed"
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


class Augmented(torch.utils.data.Dataset):
    """Training instances with noise from numpy's and Python's global generators, as many augmentations draw it."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, index):
        noise = np.random.normal(0.0, 0.3, self.x.shape[1]).astype(np.float32) * random.uniform(0.5, 1.5)
        return index, self.x[index] + torch.from_numpy(noise), self.y[index]


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_augmentation_from_numpy_and_python_random_repeats_in_every_job(tmp_path, executor):
    """At lambda_c = 0 both families minimise the same loss: on the same draws they train the same weights."""
    x, y = _data()
    train = DataLoader(Augmented(x, y), batch_size=16, shuffle=True)
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    manager = _sweep(tmp_path, train, _batches(x, y, first_id=1000), executor=executor)
    assert manager.get_sweep_status()["executor"] == executor
    assert np.array_equal(np.random.get_state()[1], before), "the caller's numpy state is kept"
    new_error, strict = (manager.load_model(0.0, family).state_dict() for family in ("new-error", "strict-imitation"))
    for key in new_error:
        assert torch.equal(new_error[key], strict[key]), key
    assert any(not torch.equal(new_error[k], manager.load_model(1.0, "new-error").state_dict()[k]) for k in new_error)
    sequential = _sweep(tmp_path / "again", train, _batches(x, y, first_id=1000), executor="sequential")
    for key, value in sequential.load_model(0.0, "new-error").state_dict().items():
        torch.testing.assert_close(value, new_error[key], rtol=0, atol=1e-5)
