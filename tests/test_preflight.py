"""The dry run of the first batch: late, obscure errors become early messages naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from backwardcompatibilityml.engine.families import seed_families
from backwardcompatibilityml.loss import (
    BCBinaryCrossEntropyLoss,
    BCCrossEntropyLoss,
    BCKLDivergenceLoss,
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
)
from backwardcompatibilityml.preflight import LossSpec, check_model_devices, preflight
from conftest import BinaryMLP, MLP, make_batches

FAMILIES = seed_families(BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, {}, {})


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    train = make_batches(x[:96], data.target[:96], 24)
    test = make_batches(x[96:136], data.target[96:136], 20, first_id=96)
    return train, test


def run(digits, **changes):
    train, test = digits
    torch.manual_seed(0)
    args = dict(h1=MLP(64, 6, 10), h2=MLP(64, 12, 10), training_set=train, test_set=test, losses=FAMILIES,
                optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.1}, device="cpu")
    args.update(changes)
    preflight(**args)


class DropoutMLP(MLP):
    def __init__(self):
        super().__init__(64, 12, 10)
        self.net.insert(1, nn.BatchNorm1d(12))
        self.net.append(nn.Dropout(0.5))


def test_a_good_configuration_passes_and_changes_nothing(digits):
    torch.manual_seed(0)
    h1, h2 = MLP(64, 6, 10), DropoutMLP()
    h1.eval()
    h2.train()
    before = {k: v.clone() for k, v in h2.state_dict().items()}
    shuffled = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.arange(40), torch.rand(40, 64), torch.randint(0, 10, (40,))),
        batch_size=8, shuffle=True,
    )
    rng = torch.get_rng_state()
    preflight(h1, h2, shuffled, digits[1], FAMILIES, torch.optim.Adam, {"lr": 1e-3}, "cpu")
    assert torch.equal(torch.get_rng_state(), rng), "a shuffling DataLoader's draw does not move the global RNG"
    after = h2.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "h2's weights and BatchNorm statistics are unchanged"
    assert h2.training and not h1.training, "train/eval modes are restored"
    assert all(p.grad is None for p in h2.parameters()), "no gradient reaches h2"


def test_wrong_input_size_names_the_model_and_the_dataset(digits):
    with pytest.raises(ValueError, match=r"h2 cannot take the inputs of training_set: its first batch has inputs "
                                         r"of shape \(24, 64\).*mat1 and mat2 shapes cannot be multiplied"):
        run(digits, h2=MLP(60, 12, 10))
    with pytest.raises(ValueError, match="h1 cannot take the inputs of training_set"):
        run(digits, h1=MLP(32, 6, 10))


def test_labels_out_of_range_name_the_dataset_and_the_class_count(digits):
    with pytest.raises(ValueError, match="labels of training_set reach 9 but h2 returns 5 classes"):
        run(digits, h2=MLP(64, 12, 5))
    train, test = digits
    negative = [(ids, x, y - 1) for ids, x, y in test]
    with pytest.raises(ValueError, match="labels of test_set include -1"):
        run(digits, test_set=negative)
    floats = [(ids, x, y.float()) for ids, x, y in train]
    with pytest.raises(ValueError, match="labels of training_set must be integer class indices"):
        run(digits, training_set=floats)
    binary = [(ids, x, (y > 4).long() * 3) for ids, x, y in train]
    with pytest.raises(ValueError, match=r"labels of training_set reach 3 but h1 returns probabilities of a binary"):
        run(digits, training_set=binary, h1=BinaryMLP(64, 4), h2=BinaryMLP(64, 4),
            losses=seed_families(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss, {}, {}))


def test_h1_and_h2_scoring_different_classes_is_a_value_error(digits):
    train, test = digits
    low = [[(ids, x, y % 4) for ids, x, y in data] for data in (train, test)]  # labels every model can score
    with pytest.raises(ValueError, match="h1 returns 10 classes and h2 returns 4 on the first batch of training_set"):
        run(digits, training_set=low[0], test_set=low[1], h2=MLP(64, 12, 4))


def test_a_loss_reduced_per_instance_names_its_shape(digits):
    with pytest.raises(TypeError, match=r"must return a scalar tensor, got a tensor of shape \(24,\) "
                                        r"\(reduction='none' gives one value per instance"):
        run(digits, losses=seed_families(BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                                         {"reduction": "none"}, {}))


def test_binary_models_with_binary_losses_pass(digits):
    train, test = digits
    binary = [[(ids, x, (y > 4).long()) for ids, x, y in data] for data in (train, test)]
    run(digits, training_set=binary[0], test_set=binary[1], h1=BinaryMLP(64, 4), h2=BinaryMLP(64, 4, column=True),
        losses=seed_families(BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss, {}, {}))


def test_numpy_batches_are_refused_naming_the_dataset(digits):
    train, _ = digits
    as_numpy = [(ids.numpy(), x.numpy(), y.numpy()) for ids, x, y in train]
    with pytest.raises(TypeError, match="training_set yields numpy arrays as inputs; batches must hold torch tensors"):
        run(digits, training_set=as_numpy)


def test_bad_optimizer_arguments_name_optimizer_kwargs(digits):
    with pytest.raises(TypeError, match=r"optimizer_kwargs=\{'lr': 'x'\} do not fit OptimizerClass \(SGD\)"):
        run(digits, optimizer_kwargs={"lr": "x"})
    with pytest.raises(TypeError, match="optimizer_kwargs=.* do not fit OptimizerClass.*unexpected keyword argument"):
        run(digits, optimizer_kwargs={"rl": 0.1})
    with pytest.raises(ValueError, match="optimizer_kwargs=.*Invalid learning rate"):
        run(digits, optimizer_class=torch.optim.Adam, optimizer_kwargs={"lr": -1.0})
    run(digits, optimizer_class=torch.optim.LBFGS, optimizer_kwargs={})  # training gives LBFGS its closure

    class NoStep(torch.optim.SGD):
        def step(self, closure=None):
            raise RuntimeError("this optimizer cannot step")

    with pytest.raises(ValueError, match=r"OptimizerClass \(NoStep\) with optimizer_kwargs=.* cannot take a "
                                         "training step: RuntimeError: this optimizer cannot step"):
        run(digits, optimizer_class=NoStep)


def test_losses_are_dry_run_with_their_kwargs(digits):
    with pytest.raises(TypeError, match=r"NewErrorLossClass \(BCKLDivergenceLoss\) cannot be built with "
                                        r"new_error_loss_kwargs=\{\}.*num_classes"):
        run(digits, losses=seed_families(BCKLDivergenceLoss, StrictImitationCrossEntropyLoss, {}, {}))
    with pytest.raises(ValueError, match=r"NewErrorLossClass \(BCKLDivergenceLoss\) fails on the first batch of "
                                         r"training_set: ValueError: y holds class 9 but num_classes=5"):
        run(digits, losses=seed_families(BCKLDivergenceLoss, StrictImitationCrossEntropyLoss, {"num_classes": 5}, {}))
    with pytest.raises(TypeError, match="StrictImitationLossClass must be a compatibility loss class, got the plain "
                                        "PyTorch loss CrossEntropyLoss.*StrictImitationCrossEntropyLoss"):
        run(digits, losses=seed_families(BCCrossEntropyLoss, nn.CrossEntropyLoss, {}, {}))
    spec = LossSpec("loss_class", BCCrossEntropyLoss, {"reduction": "avg"}, "loss_kwargs")
    with pytest.raises(ValueError, match=r"loss_class \(BCCrossEntropyLoss\) cannot be built with loss_kwargs"):
        run(digits, losses=[spec])


def test_empty_datasets_are_refused(digits):
    with pytest.raises(ValueError, match="training_set has no batches"):
        run(digits, training_set=[])
    empty = [(torch.arange(0), torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"test_set has no instances \(its only batch is empty\)"):
        run(digits, test_set=empty)
    with pytest.raises(ValueError, match=r"test_set has no instances \(all its 3 batches are empty\)"):
        run(digits, test_set=empty * 3)
    run(digits, test_set=empty + list(digits[1]))  # an empty first batch is skipped


def test_malformed_batches_and_duplicate_ids_name_the_dataset(digits):
    train, _ = digits
    with pytest.raises(TypeError, match="training_set cannot be read as batches .*each batch must be a tuple"):
        run(digits, training_set=[torch.zeros(3)])
    with pytest.raises(ValueError, match="test_set cannot be read as batches .*batch sizes disagree"):
        run(digits, test_set=[(torch.arange(3), torch.zeros(2, 64), torch.zeros(3, dtype=torch.long))])
    ids, x, y = train[0]
    repeated = [(torch.cat([ids[:5], ids[:1]]), x[:6], y[:6])]
    with pytest.raises(ValueError, match="training_set repeats the instance id 0 in its first batch"):
        run(digits, training_set=repeated)


class RowDropper(MLP):
    def forward(self, x):
        return super().forward(x)[:-1]


class NaNModel(MLP):
    def forward(self, x):
        return super().forward(x) * float("nan")


def test_outputs_must_have_one_finite_row_per_instance(digits):
    with pytest.raises(ValueError, match="h2 returned 23 rows for the first batch of training_set, which holds 24"):
        run(digits, h2=RowDropper(64, 12, 10))
    with pytest.raises(ValueError, match="h1 returns NaN or infinite values on the first batch of training_set"):
        run(digits, h1=NaNModel(64, 6, 10))


def test_models_split_over_devices_are_refused(digits):
    model = MLP(64, 12, 10)
    model.net[2].to("meta")
    with pytest.raises(ValueError, match="h2 has parameters on the 'meta' device"):
        check_model_devices(model, "h2")
    with pytest.raises(ValueError, match="h2 has parameters on the 'meta' device"):
        run(digits, h2=model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to put a model on two devices")
def test_a_model_on_two_real_devices_is_refused(digits):
    model = MLP(64, 12, 10)
    model.net[2].to("cuda")
    with pytest.raises(ValueError, match=r"h2 has its parameters on 2 devices \(cpu, cuda:0\)"):
        run(digits, h2=model)


def test_a_raising_callback_is_named(digits):
    def metadata(instance_id):
        raise KeyError(instance_id)

    with pytest.raises(ValueError, match="get_instance_metadata raised on the instance id 0 .*KeyError"):
        run(digits, instance_callbacks={"get_instance_metadata": metadata, "get_instance_image_by_id": None})
