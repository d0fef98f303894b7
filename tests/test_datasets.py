import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras_mtl.datasets
from keras_mtl.errors import ConfigError

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def digits():
    return keras_mtl.datasets.multi_digits(seed=0)


@pytest.fixture(scope="module")
def base_images():
    return (load_digits().images / 16.0).astype("float32")


# === multi_digits ===


def test_multi_digits_shapes_dtypes_and_sizes(digits):
    (x, y), (x_val, y_val), (x_test, y_test) = digits
    for inputs, labels in ((x, y), (x_val, y_val), (x_test, y_test)):
        n = len(inputs)
        assert inputs.shape == (n, 11, 11, 1)
        assert inputs.dtype == np.float32
        assert inputs.min() >= 0.0 and inputs.max() <= 1.0
        assert set(labels) == {"left", "right", "sum_even"}
        assert labels["left"].shape == (n,) and labels["left"].dtype == np.int32
        assert labels["right"].shape == (n,) and labels["right"].dtype == np.int32
        assert labels["sum_even"].shape == (n, 1)
        assert labels["sum_even"].dtype == np.float32
        assert set(np.unique(labels["left"])) == set(range(10))
    assert 5000 <= len(x) <= 6000
    assert 500 <= len(x_val) <= 700
    assert 1100 <= len(x_test) <= 1300
    base = digits.info["base_indices"]
    assert len(x) == 5 * len(base["train"])
    assert len(x_val) == 5 * len(base["validation"])
    assert len(x_test) == 2 * len(base["test"])
    assert digits.info["sizes"] == {
        "train": len(x),
        "validation": len(x_val),
        "test": len(x_test),
    }


def test_multi_digits_tasks_and_info(digits):
    assert [task.name for task in digits.tasks] == ["left", "right", "sum_even"]
    assert [task.kind for task in digits.tasks] == ["multiclass", "multiclass", "binary"]
    assert digits.tasks[0].num_classes == 10
    assert list(digits.tasks[0].class_names) == [str(i) for i in range(10)]
    assert set(digits.info["tasks"]) == {"left", "right", "sum_even"}
    assert "MTLData(train=" in repr(digits)


def test_multi_digits_labels_are_consistent(digits):
    for x, y in digits:
        expected = ((y["left"] + y["right"]) % 2 == 0).astype("float32")
        np.testing.assert_array_equal(y["sum_even"][:, 0], expected)


def test_multi_digits_no_base_image_in_two_splits(digits):
    base = digits.info["base_indices"]
    pairs = digits.info["pairs"]
    for split in SPLITS:
        used = set(pairs[split].ravel().tolist())
        assert used <= set(base[split].tolist())
        assert np.all(pairs[split][:, 0] != pairs[split][:, 1])
    assert not set(base["train"]) & set(base["validation"])
    assert not set(base["train"]) & set(base["test"])
    assert not set(base["validation"]) & set(base["test"])
    assert sum(len(base[split]) for split in SPLITS) == 1797


def test_multi_digits_splits_are_stratified(digits):
    targets = load_digits().target
    for split in SPLITS:
        counts = np.bincount(targets[digits.info["base_indices"][split]], minlength=10)
        assert counts.max() - counts.min() <= 0.1 * counts.mean() + 2


def test_multi_digits_pairs_per_base_image(digits):
    pairs = digits.info["pairs"]
    left_counts = np.bincount(pairs["train"][:, 0])
    assert set(left_counts[digits.info["base_indices"]["train"]]) == {5}
    left_counts = np.bincount(pairs["test"][:, 0])
    assert set(left_counts[digits.info["base_indices"]["test"]]) == {2}


def test_multi_digits_image_is_max_of_offset_digits(digits, base_images):
    targets = load_digits().target
    for split, (x, y) in zip(SPLITS, digits):
        for sample in (0, 7, len(x) - 1):
            left, right = digits.info["pairs"][split][sample]
            expected = np.zeros((11, 11), dtype="float32")
            expected[0:8, 0:8] = base_images[left]
            expected[3:11, 3:11] = np.maximum(expected[3:11, 3:11], base_images[right])
            np.testing.assert_array_equal(x[sample, :, :, 0], expected)
            assert y["left"][sample] == targets[left]
            assert y["right"][sample] == targets[right]


def test_multi_digits_is_deterministic_from_seed(digits):
    same = keras_mtl.datasets.multi_digits(seed=0)
    other = keras_mtl.datasets.multi_digits(seed=1)
    for (x, y), (x_same, y_same) in zip(digits, same):
        np.testing.assert_array_equal(x, x_same)
        for name in y:
            np.testing.assert_array_equal(y[name], y_same[name])
    assert not np.array_equal(digits.train[0][:100], other.train[0][:100])
    assert not np.array_equal(
        digits.info["base_indices"]["test"], other.info["base_indices"]["test"]
    )


def test_multi_digits_pairs_and_empty_validation():
    data = keras_mtl.datasets.multi_digits(train_pairs=2, test_pairs=1, validation_fraction=0.0)
    (x, y), (x_val, y_val), (x_test, y_test) = data
    assert x_val.shape == (0, 11, 11, 1)
    assert y_val["sum_even"].shape == (0, 1)
    assert len(x) == 2 * len(data.info["base_indices"]["train"])
    assert len(x_test) == len(data.info["base_indices"]["test"])


@pytest.mark.parametrize(
    "argument, value",
    [
        ("train_pairs", 0),
        ("test_pairs", -1),
        ("test_pairs", 10_000),
        ("validation_fraction", 1.0),
        ("validation_fraction", -0.1),
        ("seed", "zero"),
    ],
)
def test_multi_digits_bad_arguments(argument, value):
    with pytest.raises(ConfigError, match=f"`{argument}`.*Received: {argument}="):
        keras_mtl.datasets.multi_digits(**{argument: value})


# === synthetic_tasks ===


def test_synthetic_tasks_shapes_dtypes_and_sizes():
    data = keras_mtl.datasets.synthetic_tasks(0.5, num_samples=1000, dim=20)
    (x, y), (x_val, y_val), (x_test, y_test) = data
    assert (len(x), len(x_val), len(x_test)) == (700, 100, 200)
    for inputs, labels in data:
        assert inputs.shape == (len(inputs), 20) and inputs.dtype == np.float32
        assert set(labels) == {"task_a", "task_b"}
        for label in labels.values():
            assert label.shape == (len(inputs), 1) and label.dtype == np.float32
    assert [task.name for task in data.tasks] == ["task_a", "task_b"]
    assert all(task.kind == "regression" and task.units == 1 for task in data.tasks)
    assert data.info["correlation"] == 0.5
    assert data.info["sizes"] == {"train": 700, "validation": 100, "test": 200}


def test_synthetic_tasks_weights_follow_the_paper():
    weights = keras_mtl.datasets.synthetic_tasks(0.3, num_samples=10).info["task_weights"]
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights[0] @ weights[1], 0.3, atol=1e-5)


def test_synthetic_tasks_labels_follow_the_formula():
    data = keras_mtl.datasets.synthetic_tasks(0.7, num_samples=50, noise_std=0.0)
    x, y = data.train
    weights = data.info["task_weights"].astype("float64")
    projections = x.astype("float64") @ weights.T
    alpha, beta = data.info["alpha"], data.info["beta"]
    expected = projections + np.sin(projections[:, :, None] * alpha + beta).sum(-1)
    np.testing.assert_allclose(y["task_a"][:, 0], expected[:, 0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y["task_b"][:, 0], expected[:, 1], rtol=1e-4, atol=1e-4)


def test_synthetic_tasks_label_correlation_rises_with_p():
    measured = [
        keras_mtl.datasets.synthetic_tasks(p, seed=0).info["label_correlation"]
        for p in (0.0, 0.5, 0.9, 1.0)
    ]
    assert all(a < b for a, b in zip(measured, measured[1:]))
    assert abs(measured[0]) < 0.05
    assert measured[-1] > 0.98


def test_synthetic_tasks_label_correlation_is_measured_on_all_samples():
    data = keras_mtl.datasets.synthetic_tasks(0.9, num_samples=500)
    first = np.concatenate([y["task_a"] for _, y in data])[:, 0]
    second = np.concatenate([y["task_b"] for _, y in data])[:, 0]
    expected = np.corrcoef(first, second)[0, 1]
    assert data.info["label_correlation"] == pytest.approx(expected, abs=1e-5)


def test_synthetic_tasks_many_tasks_share_pairwise_cosine():
    data = keras_mtl.datasets.synthetic_tasks(0.4, num_samples=200, num_tasks=4)
    weights = data.info["task_weights"]
    gram = weights @ weights.T
    np.testing.assert_allclose(gram, 0.6 * np.eye(4) + 0.4, atol=1e-5)
    assert [task.name for task in data.tasks] == ["task_a", "task_b", "task_c", "task_d"]
    assert len(data.train[1]) == 4


def test_synthetic_tasks_perfect_correlation_with_many_tasks():
    weights = keras_mtl.datasets.synthetic_tasks(
        1.0, num_samples=10, num_tasks=3
    ).info["task_weights"]
    np.testing.assert_allclose(weights, np.repeat(weights[:1], 3, axis=0), atol=1e-6)


def test_synthetic_tasks_is_deterministic_from_seed():
    first = keras_mtl.datasets.synthetic_tasks(0.5, num_samples=300, seed=3)
    same = keras_mtl.datasets.synthetic_tasks(0.5, num_samples=300, seed=3)
    other = keras_mtl.datasets.synthetic_tasks(0.5, num_samples=300, seed=4)
    for (x, y), (x_same, y_same) in zip(first, same):
        np.testing.assert_array_equal(x, x_same)
        np.testing.assert_array_equal(y["task_b"], y_same["task_b"])
    assert not np.array_equal(first.train[0], other.train[0])
    assert not np.array_equal(first.train[1]["task_a"], other.train[1]["task_a"])


def test_synthetic_tasks_bad_correlation_message():
    with pytest.raises(ConfigError) as error:
        keras_mtl.datasets.synthetic_tasks(2)
    assert str(error.value) == "`correlation` must be in [-1, 1]. Received: correlation=2"
    assert isinstance(error.value, ValueError)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"correlation": -1.5}, "correlation"),
        ({"correlation": "high"}, "correlation"),
        ({"correlation": -0.5, "num_tasks": 4}, "correlation"),
        ({"num_tasks": 1}, "num_tasks"),
        ({"num_samples": 0}, "num_samples"),
        ({"dim": 1}, "dim"),
        ({"num_sin": -1}, "num_sin"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"validation_fraction": 1.2}, "validation_fraction"),
        ({"test_fraction": -0.2}, "test_fraction"),
        ({"validation_fraction": 0.5, "test_fraction": 0.5}, "validation_fraction"),
    ],
)
def test_synthetic_tasks_bad_arguments(kwargs, argument):
    kwargs = {"correlation": 0.5, **kwargs}
    with pytest.raises(ConfigError, match=f"`{argument}`"):
        keras_mtl.datasets.synthetic_tasks(kwargs.pop("correlation"), **kwargs)
