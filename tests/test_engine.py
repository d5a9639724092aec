"""Training and evaluation engine: records, forward-call budget, devices, data handling."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from backwardcompatibilityml.data import ReferenceOutputs, iterate_batches
from backwardcompatibilityml.device import resolve_device
from backwardcompatibilityml.evaluation import evaluate_models
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss
from backwardcompatibilityml.metrics import model_accuracy
from backwardcompatibilityml.training import train_compatible_model
from conftest import BinaryMLP, CountingModel, MLP, make_batches, train_plain


def test_training_and_evaluation_respect_the_forward_budget(digits_small):
    h1, h2, train, test = digits_small
    h1, h2 = CountingModel(h1), CountingModel(h2)
    train_ref, test_ref = ReferenceOutputs(h1, torch.device("cpu")), ReferenceOutputs(h1, torch.device("cpu"))
    epochs, trainings = 3, 4
    for k in range(trainings):
        model = CountingModel(copy.deepcopy(h2.model))
        train_compatible_model(h1, model, train, loss_class=BCCrossEntropyLoss, lambda_c=0.5,
                               optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.1},
                               number_of_epochs=epochs, reference_outputs=train_ref)
        assert model.calls == epochs * len(train)
        evaluate_models(model, train, train_ref)
        evaluate_models(model, test, test_ref)
        assert model.calls == epochs * len(train) + len(train) + len(test)
    assert h1.calls == len(train) + len(test), "h1 runs once per batch of each dataset, whatever the number of trainings"


def test_record_matches_independent_computation(digits_small):
    h1, h2, train, test = digits_small
    train_compatible_model(h1, h2, train, loss_class=BCCrossEntropyLoss, lambda_c=0.3,
                           optimizer_class=torch.optim.Adam, optimizer_kwargs={"lr": 0.01}, number_of_epochs=2)
    record = evaluate_models(h2, test, ReferenceOutputs(h1, torch.device("cpu")),
                             get_instance_metadata=lambda i: f"sample {i}")
    ids = torch.cat([b[0] for b in test]).numpy()
    x = torch.cat([b[1] for b in test])
    y = torch.cat([b[2] for b in test]).numpy()
    with torch.no_grad():
        p1, p2 = h1(x).argmax(1).numpy(), h2(x).argmax(1).numpy()
    w1, w2 = set(ids[p1 != y].tolist()), set(ids[p2 != y].tolist())
    assert record["models_error_overlap"] == [sorted(w1), sorted(w2), sorted(w1 & w2)]
    assert record["dataset_size"] == len(y)
    assert record["h1_performance"] == pytest.approx(np.mean(p1 == y))
    assert record["h2_performance"] == pytest.approx(np.mean(p2 == y)) == pytest.approx(model_accuracy(h2, test))
    r1 = set(ids.tolist()) - w1
    assert record["btc"] == pytest.approx(len(r1 - w2) / len(r1))
    assert record["bec"] == pytest.approx(len(w1 & w2) / len(w2))
    assert record["nfr"] == pytest.approx(len(r1 & w2) / len(y))
    assert record["sorted_classes"] == sorted(set(y.tolist()))
    by_id = dict(zip(ids.tolist(), zip(p1.tolist(), p2.tolist(), y.tolist())))
    assert set(record["error_instances"]) == {str(i) for i in w1 | w2}
    for key, item in record["error_instances"].items():
        assert (item["h1_prediction"], item["h2_prediction"], item["ground_truth"]) == by_id[int(key)]
        assert item["metadata"] == f"sample {key}"
    for entry, entry2, incompatible in zip(record["h1_accuracy_by_class"], record["h2_accuracy_by_class"],
                                           record["h2_incompatible_instance_ids_by_class"]):
        c = entry["class"]
        members = {i for i, t in zip(ids.tolist(), y.tolist()) if t == c}
        assert entry["count"] == entry2["count"] == len(members)
        assert entry["error_instance_ids"] == sorted(members & w1)
        assert entry["accuracy"] == pytest.approx(len(members - w1) / len(members))
        assert entry2["class"] == c and entry2["error_instance_ids"] == sorted(members & w2)
        assert entry2["accuracy"] == pytest.approx(len(members - w2) / len(members))
        assert incompatible == {"class": c, "instance_ids": sorted((members & r1) & w2)}


def test_error_free_models_give_empty_lists(digits_small):
    h1, _, train, _ = digits_small
    y_pred_batches = []
    with torch.no_grad():
        for ids, x, _ in train:
            y_pred_batches.append((ids, x, h1(x).argmax(1)))
    record = evaluate_models(h1, y_pred_batches, ReferenceOutputs(h1, torch.device("cpu")))
    assert record["models_error_overlap"] == [[], [], []]
    assert record["error_instances"] == {}
    assert record["btc"] == 1.0 and record["bec"] == 1.0 and record["nfr"] == 0.0


def test_shuffling_dataloader_is_served_by_instance_id(digits_data):
    x, y = digits_data
    torch.manual_seed(0)
    xt, yt = torch.tensor(x[:200]), torch.tensor(y[:200])
    ids = torch.arange(1000, 1200)
    loader = DataLoader(TensorDataset(ids, xt, yt), batch_size=32, shuffle=True, drop_last=True)
    h1 = CountingModel(MLP(64, 8, 10))
    reference = ReferenceOutputs(h1, torch.device("cpu"))
    seen = set()
    for _ in range(6):
        for batch_ids, inputs, _ in iterate_batches(loader):
            out = reference.for_batch(batch_ids, inputs)
            with torch.no_grad():
                assert torch.allclose(out, h1.model(inputs), atol=1e-6), "cached rows belong to these ids"
            seen.update(batch_ids.tolist())
    assert len(reference) == len(seen)
    assert h1.calls < 6 * (200 // 32), "known batches are answered from the cache"


def test_binary_models_train_and_evaluate(cancer_data):
    x, y = cancer_data
    train = make_batches(x[:400], y[:400], 50)
    test = make_batches(x[400:], y[400:], 50, first_id=400)
    torch.manual_seed(0)
    h1 = train_plain(BinaryMLP(30, 2), train, epochs=1, binary=True)
    h2 = BinaryMLP(30, 16, column=True)
    train_compatible_model(h1, h2, train, loss_class=StrictImitationBinaryCrossEntropyLoss, lambda_c=0.5,
                           optimizer_class=torch.optim.Adam, optimizer_kwargs={"lr": 0.01}, number_of_epochs=3)
    record = evaluate_models(h2, test, ReferenceOutputs(h1, torch.device("cpu")))
    assert record["sorted_classes"] == [0, 1]
    assert record["h2_performance"] > 0.8


def test_pairs_without_ids_are_numbered_by_position_only_in_a_fixed_order(digits_data):
    x, y = digits_data
    pairs = [(b[1], b[2]) for b in make_batches(x[:70], y[:70], 32)]
    ids = torch.cat([i for i, _, _ in iterate_batches(pairs)])
    assert ids.tolist() == list(range(70))
    fixed = DataLoader(TensorDataset(torch.tensor(x[:70]), torch.tensor(y[:70])), batch_size=32)
    assert torch.cat([i for i, _, _ in iterate_batches(fixed)]).tolist() == list(range(70))
    shuffled = DataLoader(TensorDataset(torch.tensor(x[:70]), torch.tensor(y[:70])), batch_size=32, shuffle=True)
    with pytest.raises(ValueError, match="needs a fixed order"):
        list(iterate_batches(shuffled))


def test_device_handling():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match="device"):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_training_argument_errors(digits_small):
    h1, h2, train, _ = digits_small
    common = dict(loss_class=BCCrossEntropyLoss, optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    with pytest.raises(ValueError, match="number_of_epochs"):
        train_compatible_model(h1, h2, train, lambda_c=0.5, number_of_epochs=0, **common)
    with pytest.raises(ValueError, match="lambda_c"):
        train_compatible_model(h1, h2, train, lambda_c=-1, **common)
    with pytest.raises(TypeError, match="loss_class"):
        train_compatible_model(h1, h2, train, lambda_c=0.5, loss_class="BCCrossEntropyLoss",
                               optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})
    with pytest.raises(ValueError, match="batch sizes disagree"):
        bad = [(torch.arange(3), torch.randn(3, 64), torch.zeros(2, dtype=torch.long))]
        train_compatible_model(h1, h2, bad, lambda_c=0.5, **common)
    with pytest.raises(TypeError, match="batch must be a tuple"):
        train_compatible_model(h1, h2, [torch.randn(3, 64)], lambda_c=0.5, **common)


def test_non_finite_loss_is_reported(digits_small):
    h1, h2, train, _ = digits_small
    from backwardcompatibilityml.training import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match="lambda_c=0.5"):
        train_compatible_model(h1, h2, train, loss_class=BCCrossEntropyLoss, lambda_c=0.5,
                               optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 1e30}, number_of_epochs=3)
