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


# ---------------------------------------------------------------- h1's reference columns and h2's outputs


def _columns(model, dataset):
    ids, labels, confidences, truth = [], [], [], []
    with torch.no_grad():
        for batch_ids, x, y in dataset:
            probabilities = torch.softmax(model(x), dim=1)
            best, label = probabilities.max(1)
            ids.append(batch_ids), labels.append(label), confidences.append(best), truth.append(y)
    return [torch.cat(part).numpy() for part in (ids, truth, labels, confidences)]


@pytest.mark.parametrize("label", [10, -1])
def test_prepare_reference_refuses_a_label_outside_h1s_classes_in_any_batch(digits_small, label):
    """The constructor's dry run reads the first batch only; a label in a later batch failed mid-training."""
    from backwardcompatibilityml.evaluation import prepare_reference

    h1, _, train, test = digits_small
    late = [(ids, x, y.clone()) for ids, x, y in test]
    late[-1][2][-2] = label
    late[-1][2][-1] = label
    bad_id = int(late[-1][0][-2])
    with pytest.raises(ValueError, match=rf"the testing set holds label {label} \(instance id {bad_id}\) but h1 "
                                         r"scores 10 classes; labels must be class indices in \[0, 10\); "
                                         r"2 labels are outside"):
        prepare_reference(h1, late, "testing")


@pytest.mark.parametrize("value, shown", [(2.0, "2"), (1.5, "1.5"), (-0.5, "-0.5"), (float("nan"), "nan")])
def test_prepare_reference_refuses_labels_outside_0_and_1_for_a_binary_h1(cancer_data, value, shown):
    """Read as given: the stored column's .long() would have made 1.5 a 1 and -0.5 a 0."""
    from backwardcompatibilityml.evaluation import prepare_reference

    x, y = cancer_data
    batches = [(ids, inputs, targets.double()) for ids, inputs, targets in make_batches(x[:64], y[:64], 16)]
    h1 = BinaryMLP(x.shape[1], 4)
    soft = [(ids, inputs, targets.clone()) for ids, inputs, targets in batches]
    soft[2][2][0] = 0.5
    prepare_reference(h1, soft, "training")  # soft targets in [0, 1] stay allowed
    batches[2][2][0] = value
    with pytest.raises(ValueError, match=rf"holds label {shown} \(instance id 32\) but h1 scores 2 classes; labels "
                                         r"must be in \[0, 1\] \(h1 is a binary model: labels 0 and 1, or soft "
                                         r"targets\)$"):
        prepare_reference(h1, batches, "training")


def test_prepare_reference_refuses_a_fractional_class_index(digits_small):
    from backwardcompatibilityml.evaluation import prepare_reference

    h1, _, train, _ = digits_small
    late = [(ids, x, y.double()) for ids, x, y in train]
    late[-1][2][0] = 2.5
    with pytest.raises(ValueError, match=r"holds label 2.5 \(instance id \d+\) but h1 scores 10 classes"):
        prepare_reference(h1, late, "training")


def test_prepare_reference_runs_h1_once_and_keeps_arrays(digits_small):
    from backwardcompatibilityml.evaluation import prepare_reference

    h1, _, train, test = digits_small
    counted = CountingModel(h1)
    training = prepare_reference(counted, train, "training")
    testing = prepare_reference(counted, test, "testing")
    assert counted.calls == len(train) + len(test), "one forward per batch, the metric from the predictions"
    assert len(training.outputs) == sum(len(b[0]) for b in train), "the training set's raw outputs are cached"
    assert len(testing.outputs) == 0, "a test set keeps only its columns"
    ids, truth, labels, confidences = _columns(h1, test)
    assert testing.ids.dtype == testing.targets.dtype == testing.h1_predictions.dtype == np.int64
    assert testing.h1_confidences.dtype == np.float32
    assert np.array_equal(testing.ids, ids) and np.array_equal(testing.targets, truth)
    assert np.array_equal(testing.h1_predictions, labels)
    assert np.allclose(testing.h1_confidences, confidences, atol=1e-6)
    assert testing.h1_performance == pytest.approx(np.mean(labels == truth))
    assert testing.rows_of(torch.tensor([ids[5], ids[0]])).tolist() == [5, 0]
    with pytest.raises(ValueError, match="testing set was not there"):
        testing.rows_of(torch.tensor([10 ** 9]))
    before = counted.calls
    cached = training.outputs.for_batch(train[0][0], train[0][1])
    assert counted.calls == before and torch.allclose(cached, h1(train[0][1]))


def test_rows_of_finds_shuffled_ids():
    from backwardcompatibilityml.evaluation import prepare_reference

    ids = torch.tensor([40, 7, 13, 2, 99])
    batches = [(ids[:3], torch.randn(3, 4), torch.tensor([0, 1, 0])), (ids[3:], torch.randn(2, 4), torch.tensor([1, 1]))]
    reference = prepare_reference(torch.nn.Linear(4, 2), batches, "testing")
    assert reference.rows_of(torch.tensor([99, 40, 2, 13, 7])).tolist() == [4, 0, 3, 2, 1]
    with pytest.raises(ValueError, match="id 8 of the testing set"):
        reference.rows_of(torch.tensor([7, 8]))


def test_prepare_reference_refuses_bad_datasets_and_metrics():
    from backwardcompatibilityml.evaluation import MetricError, prepare_reference

    model = torch.nn.Linear(4, 3)
    batch = lambda ids: (torch.tensor(ids), torch.randn(len(ids), 4), torch.zeros(len(ids), dtype=torch.long))  # noqa: E731
    with pytest.raises(ValueError, match="unique within one pass over the training set; id 5 appears twice"):
        prepare_reference(model, [batch([1, 5, 3]), batch([9, 5, 1])], "training")
    with pytest.raises(ValueError, match="id 2 appears twice"):
        prepare_reference(model, [batch([2, 2])], "testing")
    with pytest.raises(ValueError, match="the testing set has no instances"):
        prepare_reference(model, [], "testing")
    with pytest.raises(ValueError, match="h1 produced NaN outputs on the testing set"):
        prepare_reference(lambda x: torch.full((len(x), 3), float("nan")), [batch([1, 2])], "testing")

    def nan_metric(model, dataset, device):
        return float("nan")

    def text_metric(model, dataset, device):
        return "good"

    def broken_metric(model, dataset, device):
        raise ZeroDivisionError("no classes")

    for metric in (nan_metric, text_metric):
        with pytest.raises(ValueError, match=f"performance_metric {metric.__name__} returned .* for h1 on the testing"):
            prepare_reference(model, [batch([1, 2])], "testing", performance_metric=metric)
    with pytest.raises(MetricError, match="performance_metric broken_metric raised ZeroDivisionError .*no classes"):
        prepare_reference(model, [batch([1, 2])], "testing", performance_metric=broken_metric)


def test_predict_outputs_aligns_a_shuffling_loader_to_the_reference(digits_data):
    from backwardcompatibilityml.evaluation import predict_outputs, prepare_reference

    x, y = digits_data
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.arange(500, 800), torch.tensor(x[:300]), torch.tensor(y[:300])),
                        batch_size=64, shuffle=True)
    h1, h2 = MLP(64, 8, 10), CountingModel(MLP(64, 8, 10))
    reference = prepare_reference(h1, loader, "testing")
    outputs = predict_outputs(h2, loader, reference)
    assert h2.calls == len(loader), "h2 runs once per batch"
    with torch.no_grad():
        probabilities = torch.softmax(h2.model(torch.tensor(x[:300])), dim=1)
    rows = reference.ids - 500
    assert outputs.predictions.dtype == np.int64 and outputs.confidences.dtype == np.float32
    assert np.array_equal(outputs.predictions, probabilities.argmax(1).numpy()[rows])
    assert np.allclose(outputs.confidences, probabilities.max(1).values.numpy()[rows], atol=1e-6)
    assert outputs.performance == pytest.approx(np.mean(outputs.predictions == y[:300][rows]))


def test_predict_outputs_of_binary_models_give_the_probability_of_the_predicted_label(cancer_data):
    from backwardcompatibilityml.evaluation import predict_outputs, prepare_reference

    x, y = cancer_data
    test = make_batches(x[:100], y[:100], 25)
    torch.manual_seed(0)
    h1, h2 = BinaryMLP(30, 4), BinaryMLP(30, 4, column=True)
    reference = prepare_reference(h1, test, "testing", discriminant_pivot=0.4)
    outputs = predict_outputs(h2, test, reference, discriminant_pivot=0.4)
    with torch.no_grad():
        p = h2(torch.tensor(x[:100]))[:, 0].numpy()
    assert np.array_equal(outputs.predictions, (p > 0.4).astype(np.int64))
    assert np.allclose(outputs.confidences, np.where(p > 0.4, p, 1 - p), atol=1e-6)
    assert sorted(set(reference.h1_predictions.tolist())) <= [0, 1]


def test_predict_outputs_refuses_nan_changed_datasets_and_bad_metrics(digits_small):
    from backwardcompatibilityml.evaluation import MetricError, predict_outputs, prepare_reference

    h1, h2, _, test = digits_small
    reference = prepare_reference(h1, test, "testing")
    with pytest.raises(ValueError, match="h2 produced NaN outputs on the testing set"):
        predict_outputs(lambda x: torch.full((len(x), 10), float("nan")), test, reference)
    with pytest.raises(ValueError, match="yielded 50 of the 100 instances"):
        predict_outputs(h2, test[:1], reference)
    with pytest.raises(ValueError, match=r"id \d+ appears twice"):
        predict_outputs(h2, test + test[:1], reference)
    other = [(b[0] + 10_000, b[1], b[2]) for b in test]
    with pytest.raises(ValueError, match="was not there when h1's reference was computed"):
        predict_outputs(h2, other, reference)
    calls = []

    def called_metric(model, dataset, device):
        calls.append((model, dataset, device))  # the documented signature: device as the string "cpu" or "cuda"
        return 0.25

    assert predict_outputs(h2, test, reference, performance_metric=called_metric).performance == 0.25
    assert calls == [(h2, test, "cpu")]
    with pytest.raises(MetricError, match="performance_metric boom raised RuntimeError measuring h2"):
        def boom(model, dataset, device):
            raise RuntimeError("broken")
        predict_outputs(h2, test, reference, performance_metric=boom)
    with pytest.raises(TypeError, match="reference must be a DatasetReference"):
        predict_outputs(h2, test, ReferenceOutputs(h1, torch.device("cpu")))
