"""Scores and metrics against brute-force set counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from backwardcompatibilityml.metrics import model_accuracy, model_accuracy_by_class
from backwardcompatibilityml.scores import (
    error_compatibility_score,
    negative_flip_rate,
    positive_flip_rate,
    trust_compatibility_score,
)
from conftest import MLP, make_batches

labels = st.integers(min_value=0, max_value=3)


@st.composite
def three_label_lists(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    return [draw(st.lists(labels, min_size=n, max_size=n)) for _ in range(3)]


def brute_force(h1, h2, y):
    n = range(len(y))
    r1 = {i for i in n if h1[i] == y[i]}
    r2 = {i for i in n if h2[i] == y[i]}
    w1 = set(n) - r1
    w2 = set(n) - r2
    return {
        "btc": len(r1 & r2) / len(r1) if r1 else 1.0,
        "bec": len(w1 & w2) / len(w2) if w2 else 1.0,
        "nfr": len(r1 & w2) / len(y) if len(y) else 0.0,
        "pfr": len(w1 & r2) / len(y) if len(y) else 0.0,
    }


@settings(max_examples=150, deadline=None)
@given(three_label_lists(), st.sampled_from(["list", "numpy", "tensor"]))
def test_scores_equal_set_counts(lists, kind):
    h1, h2, y = lists
    convert = {"list": list, "numpy": np.array, "tensor": lambda v: torch.tensor(v, dtype=torch.long)}[kind]
    expected = brute_force(h1, h2, y)
    args = convert(h1), convert(h2), convert(y)
    assert trust_compatibility_score(*args) == pytest.approx(expected["btc"])
    assert error_compatibility_score(*args) == pytest.approx(expected["bec"])
    assert negative_flip_rate(*args) == pytest.approx(expected["nfr"])
    assert positive_flip_rate(*args) == pytest.approx(expected["pfr"])


def test_bec_divides_by_h2_errors_as_in_the_kdd_paper():
    y = [0, 0, 0, 0, 0, 0]
    h1 = [1, 1, 1, 1, 0, 0]  # 4 errors
    h2 = [1, 0, 0, 0, 0, 0]  # 1 error, also made by h1
    assert error_compatibility_score(h1, h2, y) == 1.0  # |W1 & W2| / |W2|, not / |W1| (= 0.25)


def test_empty_denominators():
    assert trust_compatibility_score([1], [0], [0]) == 1.0  # h1 right on nothing
    assert error_compatibility_score([1], [0], [0]) == 1.0  # h2 makes no error
    assert negative_flip_rate([], [], []) == 0.0
    assert positive_flip_rate([], [], []) == 0.0


def test_score_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="same length"):
        trust_compatibility_score([1, 2], [1], [1, 2])
    with pytest.raises(ValueError, match="h2_output_labels must be one-dimensional"):
        negative_flip_rate([1], [[1]], [1])
    with pytest.raises(TypeError, match="expected_labels"):
        positive_flip_rate([1], [1], [object()])


def test_model_accuracy_counts_instances_not_batch_means(digits_data):
    x, y = digits_data
    torch.manual_seed(0)
    model = MLP(64, 16, 10)
    # Uneven batches: 3 batches of 40 and one of 7, so a mean of batch means would differ.
    batches = make_batches(x[:127], y[:127], 40)
    with torch.no_grad():
        predicted = model(torch.tensor(x[:127])).argmax(1).numpy()
    expected = float((predicted == y[:127]).sum()) / 127
    assert model_accuracy(model, batches, "cpu") == pytest.approx(expected)
    batch_means = np.mean([float((predicted[i:i + 40] == y[:127][i:i + 40]).mean()) for i in range(0, 127, 40)])
    assert abs(batch_means - expected) > 1e-6, "the uneven split must tell the two apart"
    by_class = model_accuracy_by_class(model, batches, "cpu")
    for c in np.unique(y[:127]):
        mask = y[:127] == c
        assert by_class[int(c)] == pytest.approx(float((predicted[mask] == c).mean()))


def test_hand_built_examples():
    y = [0, 1, 2, 3]
    # h1 right on 0, 1, 2; h2 right on 0, 3 -> R1&R2 = {0}, W1&W2 = {}, R1&W2 = {1, 2}, W1&R2 = {3}
    h1, h2 = [0, 1, 2, 0], [0, 0, 0, 3]
    assert trust_compatibility_score(h1, h2, y) == pytest.approx(1 / 3)
    assert error_compatibility_score(h1, h2, y) == 0.0
    assert negative_flip_rate(h1, h2, y) == 0.5
    assert positive_flip_rate(h1, h2, y) == 0.25
    # all-correct h1 and h2
    assert [f(y, y, y) for f in (trust_compatibility_score, error_compatibility_score, negative_flip_rate,
                                 positive_flip_rate)] == [1.0, 1.0, 0.0, 0.0]
    # no-correct h1: BTC's denominator is empty (1.0), no division by zero
    wrong = [1, 2, 3, 0]
    assert trust_compatibility_score(wrong, y, y) == 1.0
    assert positive_flip_rate(wrong, y, y) == 1.0
    for f in (trust_compatibility_score, error_compatibility_score, negative_flip_rate, positive_flip_rate):
        for args in ((h1, h2, y), ([], [], []), (torch.tensor(h1), np.array(h2), y)):
            assert type(f(*args)) is float


@pytest.mark.parametrize("h1, expected, word", [
    (["0", "1"], [0, 1], "h1_output_labels"),
    ([0, 1], np.array(["0", "1"]), "expected_labels"),
    (torch.tensor([0, 1]), [b"0", b"1"], "h1_output_labels"),
])
def test_labels_of_different_kinds_are_refused(h1, expected, word):
    """numpy says "0" != 0 without a word: every prediction would silently count as wrong."""
    for f in (trust_compatibility_score, error_compatibility_score, negative_flip_rate, positive_flip_rate):
        with pytest.raises(TypeError, match=word):
            f(h1, [0, 1], expected)


def test_accuracy_refuses_labels_of_different_kinds():
    from backwardcompatibilityml.metrics import accuracy_from_predictions

    assert accuracy_from_predictions(["a", "b"], ["a", "c"]) == 0.5
    assert accuracy_from_predictions([0.0, 1.0, True], [0, 1, 1]) == 1.0
    with pytest.raises(TypeError, match="predicted"):
        accuracy_from_predictions(["0", "1"], [0, 1])


@pytest.mark.parametrize("bad, word", [
    (torch.tensor([0.1, 0.8, 0.9, 0.3, 0.7]), "h1_output_labels"),  # a binary model's probabilities
    (np.array([0.0, 1.0, np.nan, 1.0, 0.0]), "h1_output_labels"),
    ([0.0, 1.0, float("inf"), 1.0, 0.0], "h1_output_labels"),
])
def test_probabilities_given_as_labels_are_refused(bad, word):
    """Probabilities never equal a label: h1 would be 'right on nothing', BTC 1.0 and BEC 1.0 without a word."""
    truth = [0, 1, 1, 0, 1]
    for f in (trust_compatibility_score, error_compatibility_score, negative_flip_rate, positive_flip_rate):
        with pytest.raises(ValueError, match=f"{word} must hold labels .*not probabilities"):
            f(bad, [0, 1, 1, 0, 1], truth)
    from backwardcompatibilityml.metrics import accuracy_from_predictions

    with pytest.raises(ValueError, match="predicted must hold labels"):
        accuracy_from_predictions(bad, truth)


def test_whole_number_floats_of_any_precision_are_labels():
    truth = [0, 1, 1, 0]
    h1 = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=torch.bfloat16)
    assert trust_compatibility_score(h1, np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float16), truth) == pytest.approx(2 / 3)
    assert negative_flip_rate(np.array([0, 1, 1, 1.0]), torch.tensor([0, 1, 0, 0.0], dtype=torch.float64), truth) == 0.25
    with pytest.raises(TypeError, match="h2_output_labels must hold real labels"):
        negative_flip_rate(truth, np.array(truth, dtype=complex), truth)
