"""The shared argument checks (backwardcompatibilityml.validation), alone and through the public constructors."""

from __future__ import annotations

import numbers
import os

import numpy as np
import pytest
import torch

from backwardcompatibilityml.loss import BCCrossEntropyLoss, BCKLDivergenceLoss
from backwardcompatibilityml.validation import (
    check_bool,
    check_callable,
    check_class,
    check_folder,
    check_kwargs,
    check_lambda_c,
    check_loss_class,
    check_optimizer_class,
    check_positive_int,
    check_scalar,
)


def test_check_scalar_types_and_ranges():
    assert check_scalar(3, "n", numbers.Integral, min_val=1) == 3
    assert check_scalar(np.int64(3), "n", numbers.Integral) == 3
    assert check_scalar(0.5, "x", numbers.Real, min_val=0, max_val=1, include_boundaries="neither") == 0.5
    with pytest.raises(TypeError, match="n must be of type int, got bool"):
        check_scalar(True, "n", numbers.Integral)
    with pytest.raises(TypeError, match="x must be of type real number, got str"):
        check_scalar("0.5", "x", numbers.Real)
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        check_scalar(0, "n", numbers.Integral, min_val=1)
    with pytest.raises(ValueError, match=r"x must lie in \(0, 1\), got 1"):
        check_scalar(1, "x", numbers.Real, min_val=0, max_val=1, include_boundaries="neither")
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\), got 1"):
        check_scalar(1, "x", numbers.Real, min_val=0, max_val=1, include_boundaries="left")
    assert check_scalar(1, "x", numbers.Real, min_val=0, max_val=1, include_boundaries="right") == 1
    with pytest.raises(ValueError, match=r"x must be < 2"):
        check_scalar(2, "x", numbers.Real, max_val=2, include_boundaries="left")
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="x must be a finite number"):
            check_scalar(bad, "x", numbers.Real)
    assert check_scalar(float("inf"), "x", numbers.Real, allow_non_finite=True) == float("inf")
    assert check_scalar("name", "s", str) == "name"
    with pytest.raises(ValueError, match="include_boundaries"):
        check_scalar(1, "x", numbers.Real, include_boundaries="all")


def test_positive_int_and_lambda_c():
    assert check_positive_int(2, "number_of_epochs") == 2
    for bad, error in ((0, ValueError), (-3, ValueError), (1.0, TypeError), (True, TypeError), ("2", TypeError)):
        with pytest.raises(error, match="number_of_epochs"):
            check_positive_int(bad, "number_of_epochs")
    assert check_lambda_c(1) == 1.0 and isinstance(check_lambda_c(1), float)
    for bad, error in ((-0.1, ValueError), (float("nan"), ValueError), ("0.5", TypeError), (False, TypeError)):
        with pytest.raises(error, match="lambda_c"):
            check_lambda_c(bad)


def test_check_bool_refuses_truthy_values():
    assert check_bool(True, "use_ml_flow") is True
    assert check_bool(np.bool_(False), "use_ml_flow") is False
    for bad in ("no", "False", 0, 1, None):
        with pytest.raises(TypeError, match="use_ml_flow must be True or False"):
            check_bool(bad, "use_ml_flow")


def test_check_class_and_the_optimizer_class():
    assert check_class(int, "cls") is int
    with pytest.raises(TypeError, match="cls must be a class, got str"):
        check_class("int", "cls")
    assert check_optimizer_class(torch.optim.Adam) is torch.optim.Adam
    with pytest.raises(TypeError, match=r"OptimizerClass must be a subclass of torch\.optim\.optimizer\.Optimizer"):
        check_optimizer_class(int)
    with pytest.raises(TypeError, match="OptimizerClass"):
        check_optimizer_class(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))


def test_plain_pytorch_losses_are_refused_with_the_compatible_one():
    assert check_loss_class(BCCrossEntropyLoss, "NewErrorLossClass") is BCCrossEntropyLoss
    assert check_loss_class(BCKLDivergenceLoss, "NewErrorLossClass") is BCKLDivergenceLoss
    with pytest.raises(TypeError, match=r"NewErrorLossClass .*plain PyTorch loss CrossEntropyLoss.*BCCrossEntropyLoss"):
        check_loss_class(torch.nn.CrossEntropyLoss, "NewErrorLossClass")
    with pytest.raises(TypeError, match=r"StrictImitationLossClass .*StrictImitationNLLLoss"):
        check_loss_class(torch.nn.NLLLoss, "StrictImitationLossClass", family_index=1)

    class NoArguments:
        def __init__(self):
            pass

    with pytest.raises(TypeError, match=r"NewErrorLossClass must be a compatibility loss class built as .*"
                                        "does not take those arguments"):
        check_loss_class(NoArguments, "NewErrorLossClass")
    with pytest.raises(TypeError, match="NewErrorLossClass must be a class"):
        check_loss_class("BCCrossEntropyLoss", "NewErrorLossClass")


def test_callable_and_kwargs():
    assert check_callable(len, "performance_metric") is len
    assert check_callable(None, "get_instance_metadata", allow_none=True) is None
    with pytest.raises(TypeError, match="performance_metric must be callable"):
        check_callable(None, "performance_metric")
    with pytest.raises(TypeError, match="get_instance_metadata must be callable, got str"):
        check_callable("x", "get_instance_metadata", allow_none=True)
    given = {"lr": 0.1}
    checked = check_kwargs(given, "optimizer_kwargs")
    assert checked == given and checked is not given
    assert check_kwargs(None, "optimizer_kwargs") == {}
    with pytest.raises(TypeError, match="optimizer_kwargs must be a dict"):
        check_kwargs([0.1], "optimizer_kwargs")
    with pytest.raises(TypeError, match="optimizer_kwargs must have string keys"):
        check_kwargs({1: 0.1}, "optimizer_kwargs")


def _unwritable_folder(tmp_path):
    """A folder this process cannot write to, as root too (where permission bits do not stop it)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    probe = folder / "probe"
    try:
        probe.touch()
    except PermissionError:
        return folder
    probe.unlink()
    return "/sys"  # root ignores permission bits; sysfs refuses new files to everyone


def test_check_folder(tmp_path):
    made = check_folder(tmp_path / "a" / "b")
    assert made == str(tmp_path / "a" / "b") and os.path.isdir(made)
    assert os.listdir(made) == [], "the write probe leaves nothing behind"
    with pytest.raises(ValueError, match="folder_name must name a folder, got an empty path"):
        check_folder("")
    with pytest.raises(TypeError, match="folder_name must be a path"):
        check_folder(None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="folder_name .* exists and is not a folder"):
        check_folder(tmp_path / "file")
    with pytest.raises(ValueError, match="folder_name .* cannot be created"):
        check_folder(tmp_path / "file" / "sub")
    with pytest.raises(ValueError, match="folder_name .* is not writable"):
        check_folder(_unwritable_folder(tmp_path))


# -- through the public constructor -------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_arguments():
    from conftest import MLP
    from sweep_setup import digits_sets

    train, test = digits_sets()
    torch.manual_seed(0)
    return dict(number_of_epochs=1, h1=MLP(64, 6, 10), h2=MLP(64, 24, 10), training_set=train, test_set=test,
                batch_size_train=24, batch_size_test=40, OptimizerClass=torch.optim.SGD, optimizer_kwargs={"lr": 0.1})


@pytest.mark.parametrize("change, error, words", [
    ({"use_ml_flow": "no"}, TypeError, "use_ml_flow must be True or False, got str: 'no'"),
    ({"use_ml_flow": 1}, TypeError, "use_ml_flow must be True or False"),
    ({"folder_name": ""}, ValueError, "folder_name must name a folder, got an empty path"),
    ({"OptimizerClass": int}, TypeError, "OptimizerClass must be a subclass of torch.optim"),
    ({"NewErrorLossClass": torch.nn.CrossEntropyLoss}, TypeError, "use backwardcompatibilityml.loss.BCCrossEntropy"),
    ({"optimizer_kwargs": {"lr": "x"}}, TypeError, "optimizer_kwargs=.* do not fit OptimizerClass"),
    ({"training_set": []}, ValueError, "training_set has no batches"),
    ({"test_set": [(torch.arange(0), torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))]}, ValueError,
     "test_set has no instances"),
    ({"h2": "wrong-input"}, ValueError, "h2 cannot take the inputs of training_set"),
    ({"h2": "five-classes"}, ValueError, "labels of training_set reach 9 but h2 returns 5 classes"),
    ({"training_set": "numpy"}, TypeError, "training_set yields numpy arrays"),
    ({"lambda_c_stepsize": float("nan")}, ValueError, "lambda_c_stepsize must be a finite number"),
    ({"seed": 1.5}, TypeError, "seed must be of type int"),
    ({"ml_flow_run_name": ""}, ValueError, "ml_flow_run_name must be a non-empty string"),
    ({"ml_flow_run_name": 3}, TypeError, "ml_flow_run_name must be a string, got int"),
    ({"seed": 2 ** 64}, ValueError, r"seed must lie in \[-9223372036854775808, 18446744073709551615\], got 1844"),
    ({"seed": -2 ** 63 - 1}, ValueError, r"seed must lie in \[-9223372036854775808, .*got -9223372036854775809"),
])
def test_sweep_manager_refuses_bad_arguments_at_construction(tmp_path, monkeypatch, sweep_arguments, change, error,
                                                            words):
    from conftest import MLP
    from backwardcompatibilityml.sweep_management import SweepManager

    arguments = dict(sweep_arguments, folder_name=str(tmp_path / "sweep"))
    change = dict(change)
    if change.get("h2") == "wrong-input":
        change["h2"] = MLP(60, 24, 10)
    elif change.get("h2") == "five-classes":
        change["h2"] = MLP(64, 24, 5)
    if change.get("training_set") == "numpy":
        change["training_set"] = [(i.numpy(), x.numpy(), y.numpy()) for i, x, y in arguments["training_set"]]
    arguments.update(change)
    working_directory = tmp_path / "cwd"
    working_directory.mkdir()
    monkeypatch.chdir(working_directory)
    with pytest.raises(error, match=words):
        SweepManager(**arguments)
    assert os.listdir(working_directory) == [], "nothing is written (no mlflow.db, no mlruns/)"
    assert not os.path.exists(arguments["folder_name"]) or not os.listdir(arguments["folder_name"])


def test_sweep_manager_refuses_an_unwritable_folder(tmp_path, sweep_arguments):
    from backwardcompatibilityml.sweep_management import SweepManager

    with pytest.raises(ValueError, match="folder_name .* is not writable"):
        SweepManager(_unwritable_folder(tmp_path), **sweep_arguments)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="folder_name .* cannot be created"):
        SweepManager(str(tmp_path / "file" / "sweep"), **sweep_arguments)
