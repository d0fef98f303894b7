"""Small multi-task data sets that load offline and deterministically from a seed.

Every loader returns an `MTLData`: the `train`, `validation` and `test` splits, each a
tuple `(x, y)` where `y` is a dict mapping task name to a NumPy array, the list of
`keras_mtl.Task` specifications matching those labels, and an `info` dict describing each
task and the facts of the data set. An `MTLData` unpacks like the Keras data sets:

```python
(x, y), (x_val, y_val), (x_test, y_test) = keras_mtl.datasets.multi_digits()
```

Data sets:

- `multi_digits`: a small MultiMNIST built from scikit-learn's bundled 8x8 digits; two
  overlapping digits on an 11x11 canvas, tasks `left`, `right` and `sum_even`.
- `synthetic_tasks`: the synthetic regression tasks of the MMoE paper, whose task
  relatedness is set by one number, the cosine between the tasks' weight vectors.
- `multi_shapes`: synthetic scenes of shapes with segmentation, depth and a count.
- `tagged_sentences`: sentences from a small grammar with BIO entity tags and a topic.
"""

import dataclasses

import numpy as np

from keras_mtl.errors import ConfigError
from keras_mtl.tasks import Task

_DIGIT_SIZE = 8
_CANVAS_SIZE = 11
_RIGHT_OFFSET = _CANVAS_SIZE - _DIGIT_SIZE
# A third of the base images form the test split: with 1,797 base digits, 5 pairs per
# train image and 2 per test image, this gives about 6,000 train+validation and 1,200
# test images, the sizes the MultiDigits construction aims at.
_DIGITS_TEST_FRACTION = 1.0 / 3.0
_SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class MTLData:
    """A multi-task data set: three splits, the task specifications and facts about it.

    Iterating over it yields `train`, `validation` and `test`, so it unpacks like the
    Keras data sets.

    Args:
        train: tuple `(x, y)`, where `y` is a dict mapping task name to a NumPy array.
        validation: tuple `(x, y)` of the same form (possibly with zero rows).
        test: tuple `(x, y)` of the same form.
        tasks: list of `keras_mtl.Task`, one per key of `y`, in a fixed order.
        info: dict with `"tasks"` (task name -> description), `"sizes"` (split name ->
            number of samples) and facts particular to the data set.

    Example:

    ```python
    data = keras_mtl.datasets.multi_digits()
    (x, y), (x_val, y_val), (x_test, y_test) = data
    model = keras_mtl.build_mtl_model(keras.Input(x.shape[1:]), data.tasks)
    model.fit(x, y, validation_data=(x_val, y_val), epochs=1)
    ```
    """

    train: tuple
    validation: tuple
    test: tuple
    tasks: list
    info: dict

    def __iter__(self):
        yield self.train
        yield self.validation
        yield self.test

    def __repr__(self):
        sizes = ", ".join(f"{split}={len(getattr(self, split)[0])}" for split in _SPLITS)
        names = [task.name for task in self.tasks]
        return f"MTLData({sizes}, tasks={names})"


def multi_digits(*, seed=0, train_pairs=5, test_pairs=2, validation_fraction=0.1):
    """MultiDigits: pairs of overlapping 8x8 digits, a small offline MultiMNIST.

    Follows the MultiMNIST construction of Sener and Koltun on scikit-learn's bundled
    8x8 digits (1,797 images, no download). Pixels are scaled to [0, 1]. The base images
    are first split three ways, stratified by digit: a third go to the test split, and
    `validation_fraction` of the rest to the validation split, so that no base image
    appears in two splits. Each base image is then paired with `train_pairs` (train and
    validation) or `test_pairs` (test) distinct other images of its own split. On an
    11x11 canvas the first image of a pair is placed at rows and columns 0:8, the second
    at 3:11, and where they overlap the pixelwise maximum is kept. With the defaults the
    splits hold about 5,400 / 600 / 1,200 images.

    Tasks:

    - `left` (multiclass, 10 classes, class names `"0"`..`"9"`): the digit in the top-left.
    - `right` (multiclass, 10 classes): the digit in the bottom-right.
    - `sum_even` (binary): 1 when left + right is even, else 0. It depends on both
      digits, so no single digit's features suffice.

    Args:
        seed: int, seed of the split, the pairing and the shuffling.
        train_pairs: positive int, partners per base image in the train and
            validation splits.
        test_pairs: positive int, partners per base image in the test split.
        validation_fraction: float in [0, 1), fraction of the non-test base images
            that form the validation split. With 0 the validation split is empty.

    Returns:
        An `MTLData` whose inputs are float32 arrays of shape `(n, 11, 11, 1)` and whose
        labels are `left` and `right` (int32, shape `(n,)`) and `sum_even` (float32,
        shape `(n, 1)`, in {0, 1}). Its `info` holds `"tasks"` (descriptions),
        `"sizes"`, `"base_indices"` (split -> indices into
        `sklearn.datasets.load_digits()` of the split's base images), `"pairs"`
        (split -> int array `(n, 2)`, the base indices of the left and right digit of
        each sample), `"canvas_size"`, `"left_offset"` and `"right_offset"`.

    Example:

    ```python
    data = keras_mtl.datasets.multi_digits(seed=0)
    (x, y), (x_val, y_val), (x_test, y_test) = data
    x.shape            # (5390, 11, 11, 1)
    y["left"][:3], y["right"][:3], y["sum_even"][:3, 0]
    [task.name for task in data.tasks]   # ['left', 'right', 'sum_even']
    ```

    Reference:
        - [Sener and Koltun, Multi-Task Learning as Multi-Objective Optimization,
          NeurIPS 2018](https://arxiv.org/abs/1810.04650) (MultiMNIST, section 5.1)
    """
    _check_int("seed", seed, minimum=0)
    _check_int("train_pairs", train_pairs, minimum=1)
    _check_int("test_pairs", test_pairs, minimum=1)
    _check_fraction("validation_fraction", validation_fraction)

    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    labels = digits.target.astype("int32")

    rng = np.random.default_rng(seed)
    base_indices = _stratified_three_way_split(
        labels, _DIGITS_TEST_FRACTION, validation_fraction, rng
    )
    partners = {"train": train_pairs, "validation": train_pairs, "test": test_pairs}
    for split in _SPLITS:
        size = len(base_indices[split])
        if size and partners[split] >= size:
            argument = "test_pairs" if split == "test" else "train_pairs"
            raise ConfigError(
                f"`{argument}` must be smaller than the {size} base images of the "
                f"{split} split. Received: {argument}={partners[split]}"
            )

    splits = {}
    pairs = {}
    for split in _SPLITS:
        pairs[split] = _pair_within(base_indices[split], partners[split], rng)
        left, right = pairs[split][:, 0], pairs[split][:, 1]
        x = _compose(images[left], images[right])
        y = {
            "left": labels[left],
            "right": labels[right],
            "sum_even": ((labels[left] + labels[right]) % 2 == 0)
            .astype("float32")
            .reshape(-1, 1),
        }
        splits[split] = (x, y)

    tasks = [
        Task("left", "multiclass", num_classes=10, class_names=[str(i) for i in range(10)]),
        Task("right", "multiclass", num_classes=10, class_names=[str(i) for i in range(10)]),
        Task("sum_even", "binary"),
    ]
    info = {
        "name": "multi_digits",
        "tasks": {
            "left": "Digit (0-9) of the top-left 8x8 image, at rows and columns 0:8.",
            "right": "Digit (0-9) of the bottom-right 8x8 image, at rows and columns 3:11.",
            "sum_even": "1 when left + right is even, else 0 (needs both digits).",
        },
        "sizes": {split: len(splits[split][0]) for split in _SPLITS},
        "base_indices": base_indices,
        "pairs": pairs,
        "canvas_size": _CANVAS_SIZE,
        "left_offset": (0, 0),
        "right_offset": (_RIGHT_OFFSET, _RIGHT_OFFSET),
        "seed": seed,
    }
    return MTLData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        tasks=tasks,
        info=info,
    )


def synthetic_tasks(
    correlation,
    *,
    num_samples=12000,
    dim=100,
    num_sin=10,
    noise_std=0.1,
    seed=0,
    validation_fraction=0.1,
    test_fraction=0.2,
    num_tasks=2,
):
    """The MMoE paper's synthetic regression tasks, with controlled task correlation.

    Draws orthonormal vectors `u_1, ..., u_T` in R^dim and builds the task weight
    vectors `w_k` (unit norm, c = 1) so that every pair has cosine `correlation`. For two
    tasks this is exactly the paper's `w_1 = u_1`, `w_2 = p u_1 + sqrt(1 - p^2) u_2`. For
    `T > 2` tasks the rows of `W = L U` are used, where `L` is the lower-triangular
    Cholesky factor of the Gram matrix `(1 - p) I + p 11^T`; its first two rows are the
    two-task construction, and it exists for `-1 / (T - 1) <= p <= 1`. Then, with
    `x ~ N(0, I)`:

        y_k = w_k . x + sum_{i=1..num_sin} sin(alpha_i w_k . x + beta_i) + eps,

    where `alpha_i, beta_i ~ N(0, 1)` are drawn once per data set and shared by all
    tasks, and `eps ~ N(0, noise_std^2)`. Drawing alpha and beta from N(0, 1) (rather
    than large fixed frequencies) keeps the tasks learnable from a few thousand samples,
    while the labels' correlation still rises with `correlation`. The samples are then
    split into train, validation and test in that order.

    Tasks: `task_a`, `task_b`, ... (regression, one unit each): `y_k` above.

    Args:
        correlation: float in [-1, 1], the cosine between task weight vectors (the
            paper's p). With more than two tasks it must be at least -1 / (T - 1).
        num_samples: int, total number of samples over the three splits.
        dim: int, input dimension (the paper uses 100); at least `num_tasks`.
        num_sin: non-negative int, number of sine terms (m).
        noise_std: non-negative float, standard deviation of the label noise.
        seed: int, seed of every random draw.
        validation_fraction: float in [0, 1), fraction of samples for validation.
        test_fraction: float in [0, 1), fraction of samples for test.
        num_tasks: int, at least 2, number of tasks.

    Returns:
        An `MTLData` with float32 inputs `(n, dim)` and float32 labels `(n, 1)` per
        task. Its `info` holds `"tasks"` (descriptions), `"sizes"`, `"correlation"`
        (the requested p), `"label_correlation"` (the Pearson correlation of the labels
        of the first two tasks, measured on all samples), `"task_weights"` (array
        `(num_tasks, dim)`), `"alpha"` and `"beta"`.

    Example:

    ```python
    data = keras_mtl.datasets.synthetic_tasks(0.9, seed=0)
    (x, y), (x_val, y_val), (x_test, y_test) = data
    x.shape, y["task_a"].shape       # ((8400, 100), (8400, 1))
    data.info["label_correlation"]   # 0.70 (0.65 to 0.89 over seeds)
    ```

    Reference:
        - [Ma et al., Modeling Task Relationships in Multi-task Learning with
          Multi-gate Mixture-of-Experts, KDD 2018](https://doi.org/10.1145/3219819.3220007)
          (section 3.2)
    """
    if (
        isinstance(correlation, bool)
        or not isinstance(correlation, (int, float, np.integer, np.floating))
        or not -1.0 <= float(correlation) <= 1.0
    ):
        raise ConfigError(
            f"`correlation` must be in [-1, 1]. Received: correlation={correlation}"
        )
    _check_int("num_tasks", num_tasks, minimum=2)
    _check_int("num_samples", num_samples, minimum=1)
    _check_int("dim", dim, minimum=num_tasks)
    _check_int("num_sin", num_sin, minimum=0)
    _check_non_negative("noise_std", noise_std)
    _check_int("seed", seed, minimum=0)
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    if validation_fraction + test_fraction >= 1.0:
        raise ConfigError(
            "`validation_fraction` + `test_fraction` must be smaller than 1. Received: "
            f"validation_fraction={validation_fraction}, test_fraction={test_fraction}"
        )
    correlation = float(correlation)
    lowest = -1.0 / (num_tasks - 1)
    if correlation < lowest:
        raise ConfigError(
            f"`correlation` must be at least -1 / (num_tasks - 1) = {lowest:.4g} for "
            f"num_tasks={num_tasks}, or no set of vectors has that pairwise cosine. "
            f"Received: correlation={correlation}"
        )

    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, num_tasks)))
    gram = (1.0 - correlation) * np.eye(num_tasks) + correlation
    task_weights = _cholesky_psd(gram) @ basis.T
    alpha = rng.standard_normal(num_sin)
    beta = rng.standard_normal(num_sin)

    x = rng.standard_normal((num_samples, dim))
    projections = x @ task_weights.T
    waves = np.sin(projections[:, :, None] * alpha + beta).sum(axis=-1)
    labels = projections + waves + noise_std * rng.standard_normal(projections.shape)
    x = x.astype("float32")
    labels = labels.astype("float32")

    names = [_task_name(k) for k in range(num_tasks)]
    num_test = int(round(num_samples * test_fraction))
    num_validation = int(round(num_samples * validation_fraction))
    num_train = num_samples - num_test - num_validation
    if num_train < 1:
        raise ConfigError(
            "`num_samples` leaves no training sample after the validation and test "
            f"splits. Received: num_samples={num_samples}"
        )
    bounds = {
        "train": (0, num_train),
        "validation": (num_train, num_train + num_validation),
        "test": (num_train + num_validation, num_samples),
    }
    splits = {}
    for split, (start, stop) in bounds.items():
        y = {name: labels[start:stop, k : k + 1] for k, name in enumerate(names)}
        splits[split] = (x[start:stop], y)

    tasks = [Task(name, "regression", units=1) for name in names]
    info = {
        "name": "synthetic_tasks",
        "tasks": {
            name: (
                f"Regression: w_{k + 1} . x + sum of {num_sin} sines of "
                f"(alpha_i w_{k + 1} . x + beta_i) + N(0, {noise_std}^2) noise; "
                f"cos(w_j, w_{k + 1}) = {correlation} for every other task j."
            )
            for k, name in enumerate(names)
        },
        "sizes": {split: len(splits[split][0]) for split in _SPLITS},
        "correlation": correlation,
        "label_correlation": float(np.corrcoef(labels[:, 0], labels[:, 1])[0, 1]),
        "task_weights": task_weights.astype("float32"),
        "alpha": alpha,
        "beta": beta,
        "seed": seed,
    }
    return MTLData(
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        tasks=tasks,
        info=info,
    )


def _stratified_three_way_split(labels, test_fraction, validation_fraction, rng):
    """Indices of the train, validation and test base images, split per class."""
    parts = {split: [] for split in _SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_test = int(round(len(members) * test_fraction))
        num_validation = int(round((len(members) - num_test) * validation_fraction))
        parts["test"].append(members[:num_test])
        parts["validation"].append(members[num_test : num_test + num_validation])
        parts["train"].append(members[num_test + num_validation :])
    return {split: np.sort(np.concatenate(parts[split])) for split in _SPLITS}


def _pair_within(indices, partners, rng):
    """Pairs each index with `partners` distinct other indices, in shuffled order."""
    if len(indices) == 0:
        return np.zeros((0, 2), dtype="int64")
    pairs = []
    for position, index in enumerate(indices):
        others = np.delete(indices, position)
        for partner in rng.choice(others, size=partners, replace=False):
            pairs.append((index, partner))
    pairs = np.asarray(pairs, dtype="int64")
    return pairs[rng.permutation(len(pairs))]


def _compose(left, right):
    """Places two batches of 8x8 images on 11x11 canvases, overlapping by maximum."""
    canvas = np.zeros((len(left), _CANVAS_SIZE, _CANVAS_SIZE), dtype="float32")
    canvas[:, :_DIGIT_SIZE, :_DIGIT_SIZE] = left
    corner = canvas[:, _RIGHT_OFFSET:, _RIGHT_OFFSET:]
    np.maximum(corner, right, out=corner)
    return canvas[..., None]


def _cholesky_psd(gram):
    """Cholesky factor that also accepts a singular positive semi-definite matrix.

    At `correlation = 1` the Gram matrix is singular and `np.linalg.cholesky` fails;
    there the dependent rows simply get zero weight on the extra basis vectors.
    """
    size = len(gram)
    factor = np.zeros_like(gram, dtype="float64")
    for j in range(size):
        pivot = gram[j, j] - factor[j, :j] @ factor[j, :j]
        factor[j, j] = np.sqrt(max(pivot, 0.0))
        for i in range(j + 1, size):
            if factor[j, j] > 1e-12:
                factor[i, j] = (gram[i, j] - factor[i, :j] @ factor[j, :j]) / factor[j, j]
    return factor


def _task_name(k):
    """`task_a`, `task_b`, ..., `task_z`, `task_aa`, ..."""
    letters = ""
    k += 1
    while k:
        k, remainder = divmod(k - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return f"task_{letters}"


def _check_int(name, value, *, minimum):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        raise ConfigError(
            f"`{name}` must be an integer of at least {minimum}. Received: {name}={value!r}"
        )


def _check_fraction(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= value < 1.0
    ):
        raise ConfigError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")


def _check_non_negative(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or value < 0
    ):
        raise ConfigError(
            f"`{name}` must be a non-negative number. Received: {name}={value!r}"
        )


# === Dense tasks: scenes of shapes, tagged sentences ===

_SHAPE_NAMES = ("background", "square", "disc", "triangle")
_FAR_DEPTH = 10.0


def multi_shapes(
    *,
    seed=0,
    image_size=32,
    max_shapes=4,
    num_train=1000,
    num_validation=200,
    num_test=200,
    missing_depth=0.1,
    missing_count=0.1,
):
    """MultiShapes: synthetic RGB scenes of squares, discs and triangles, with dense labels.

    Each scene has 1 to `max_shapes` shapes at random positions, sizes, colours and depths
    in front of a sloping floor; nearer shapes occlude farther ones and are lit more
    brightly (colour times `1.3 - depth / 10`), so depth can be read from shading,
    size and occlusion. Colours do not depend on the class: only the outline tells a
    square from a disc. A little Gaussian noise is added. Deterministic from `seed`.

    Tasks:

    - `segmentation` (4 classes: background, square, disc, triangle): the class of each
      pixel; pixels on the border between two regions are ignored (-1), as in Pascal VOC.
    - `depth` (dense regression, 1 unit): the depth of each pixel, from about 1 (near) to
      10 (the far end of the floor); holes of missing depth (NaN), rectangles covering
      about `missing_depth` of the pixels, as a depth sensor leaves them.
    - `count` (multiclass, `max_shapes + 1` classes): the number of shapes with a visible
      pixel; missing (-1) for a `missing_count` fraction of the images.

    Args:
        seed: int, the seed of everything random.
        image_size: int >= 16, the height and width of the images.
        max_shapes: int in [1, 8], the most shapes in one scene.
        num_train, num_validation, num_test: the sizes of the splits (validation may be 0).
        missing_depth: fraction in [0, 1) of depth pixels left missing (in holes).
        missing_count: fraction in [0, 1) of images without a `count` label.

    Returns:
        An `MTLData` with inputs float32 `(n, image_size, image_size, 3)` in [0, 1] and
        labels `segmentation` int32 `(n, H, W)`, `depth` float32 `(n, H, W, 1)` and
        `count` int32 `(n,)`. Its `info` holds `"tasks"`, `"sizes"`, `"class_names"`,
        `"true_depth"` (split -> the depth maps without holes) and `"seed"`.

    Example:

    >>> data = keras_mtl.datasets.multi_shapes(num_train=8, num_validation=0, num_test=4)
    >>> (x, y), _, (x_test, y_test) = data
    >>> x.shape, y["segmentation"].shape, y["depth"].shape, y["count"].shape
    ((8, 32, 32, 3), (8, 32, 32), (8, 32, 32, 1), (8,))
    >>> [task.kind for task in data.tasks]
    ['segmentation', 'dense_regression', 'multiclass']
    """
    _check_int("seed", seed, minimum=0)
    _check_int("image_size", image_size, minimum=16)
    _check_int("max_shapes", max_shapes, minimum=1)
    if max_shapes > 8:
        raise ConfigError(f"`max_shapes` must be at most 8. Received: max_shapes={max_shapes}")
    _check_int("num_train", num_train, minimum=1)
    _check_int("num_validation", num_validation, minimum=0)
    _check_int("num_test", num_test, minimum=1)
    _check_fraction("missing_depth", missing_depth)
    _check_fraction("missing_count", missing_count)

    rng = np.random.default_rng(seed)
    sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    splits, true_depth = {}, {}
    for split in _SPLITS:
        x, segmentation, depth, count = _render_scenes(rng, sizes[split], image_size, max_shapes)
        true_depth[split] = depth.copy()
        depth[_depth_holes(rng, sizes[split], image_size, missing_depth)] = np.nan
        count[rng.random(sizes[split]) < missing_count] = -1
        splits[split] = (
            x, {"segmentation": segmentation, "depth": depth, "count": count}
        )

    tasks = [
        Task("segmentation", "segmentation", num_classes=len(_SHAPE_NAMES),
             class_names=list(_SHAPE_NAMES)),
        Task("depth", "dense_regression"),
        Task("count", "multiclass", num_classes=max_shapes + 1,
             class_names=[str(i) for i in range(max_shapes + 1)]),
    ]
    info = {
        "name": "multi_shapes",
        "tasks": {
            "segmentation": "Class of each pixel (background, square, disc, triangle); -1 on "
                            "region borders.",
            "depth": "Depth of each pixel (about 1 near to 10 far); NaN in sensor holes.",
            "count": "Number of shapes with a visible pixel; -1 when unlabelled.",
        },
        "sizes": sizes,
        "class_names": list(_SHAPE_NAMES),
        "true_depth": true_depth,
        "seed": seed,
    }
    return MTLData(
        train=splits["train"], validation=splits["validation"], test=splits["test"],
        tasks=tasks, info=info,
    )


def _render_scenes(rng, n, size, max_shapes):
    rows, cols = np.mgrid[0:size, 0:size].astype("float32") + 0.5
    x = np.empty((n, size, size, 3), "float32")
    segmentation = np.zeros((n, size, size), "int32")
    depth = np.empty((n, size, size), "float32")
    count = np.zeros(n, "int32")
    floor_depth = _FAR_DEPTH - 6.0 * rows / size  # the floor comes nearer towards the bottom
    for i in range(n):
        image = np.broadcast_to(rng.uniform(0.2, 0.5, 3), (size, size, 3)).copy()
        image *= (1.3 - floor_depth / _FAR_DEPTH)[..., None]
        labels = np.zeros((size, size), "int32")
        distance = floor_depth.copy()
        owner = np.full((size, size), -1)
        shapes = rng.integers(1, max_shapes + 1)
        # Far shapes first, so that nearer ones paint over them.
        for s, d in enumerate(np.sort(rng.uniform(1.0, 3.5, shapes))[::-1]):
            kind = rng.integers(1, len(_SHAPE_NAMES))
            radius = rng.uniform(0.12, 0.22) * size * (3.0 / (1.0 + d))
            centre = rng.uniform(radius * 0.5, size - radius * 0.5, 2)
            mask = _shape_mask(kind, rows - centre[0], cols - centre[1], radius)
            colour = rng.uniform(0.3, 1.0, 3) * (1.3 - d / _FAR_DEPTH)
            image[mask] = colour
            labels[mask] = kind
            distance[mask] = d
            owner[mask] = s
        count[i] = len(np.unique(owner[owner >= 0]))
        x[i] = image
        segmentation[i] = _ignore_borders(labels, owner)
        depth[i] = distance
    x = np.clip(x + rng.normal(0.0, 0.03, x.shape), 0.0, 1.0).astype("float32")
    return x, segmentation, depth[..., None], count


def _shape_mask(kind, dy, dx, radius):
    if kind == 1:  # square
        return (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    if kind == 2:  # disc
        return dy * dy + dx * dx <= radius * radius
    # An upward triangle: below its apex, inside its two slanted sides.
    return (dy <= radius * 0.8) & (np.abs(dx) <= (dy + radius) * 0.6)


def _ignore_borders(labels, owner):
    """`labels` with -1 on pixels whose right or lower neighbour is another region."""
    region = owner + 1
    border = np.zeros(labels.shape, bool)
    border[:, :-1] |= region[:, :-1] != region[:, 1:]
    border[:-1, :] |= region[:-1, :] != region[1:, :]
    return np.where(border, -1, labels).astype("int32")


def _depth_holes(rng, n, size, fraction):
    """A boolean `(n, size, size, 1)` mask of rectangular holes covering about `fraction`."""
    holes = np.zeros((n, size, size, 1), bool)
    if fraction == 0:
        return holes
    side = max(2, size // 6)
    per_image = int(np.ceil(fraction * size * size / (side * side)))
    for i in range(n):
        for _ in range(rng.poisson(per_image)):
            r, c = rng.integers(0, size - side + 1, 2)
            holes[i, r:r + side, c:c + side] = True
    return holes


_TAG_NAMES = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
_TOPICS = ("meeting", "work", "travel", "business")
# Names seen in training. "jordan" and "washington" are people and places.
_ENTITIES = {
    "PER": ["alice", "bob", "maria garcia", "li wei", "jordan", "george washington",
            "sam", "nora lee"],
    "LOC": ["paris", "new york", "lima", "jordan", "washington", "san jose", "oslo",
            "cape town"],
    "ORG": ["acme", "globex corp", "initech", "umbrella group", "stark industries",
            "hooli"],
}
# Names that only validation and test sentences use (a `new_names` share of their
# mentions): their words are not in the vocabulary, so they read as <unk> and only the
# context (and a known word such as "corp" or "san") tells the type. "florence" and
# "victoria" are people and places.
_NEW_ENTITIES = {
    "PER": ["priya", "tomas berg", "amara", "ken ito", "florence", "victoria"],
    "LOC": ["quito", "perth", "nairobi", "santa fe", "florence", "victoria"],
    "ORG": ["vandelay", "cyberdyne", "soylent corp", "wonka group", "tyrell industries"],
}
# Templates per topic; {PER}, {LOC} and {ORG} slots take an entity of that type. Some
# templates belong to two topics (the topic of such a sentence is a coin toss between
# them), and "visited" takes a place or an organisation: the data carry irreducible error.
_TEMPLATES = {
    "meeting": ["{PER} met {PER} in {LOC}", "{PER} and {PER} had lunch",
                "yesterday {PER} saw {PER} at the station in {LOC}", "{PER} visited {LOC}",
                "{PER} called {PER} from {ORG}"],
    "work": ["{PER} works for {ORG}", "{PER} joined {ORG} last year",
             "{ORG} hired {PER} as an engineer", "{PER} visited {ORG}",
             "{PER} called {PER} from {ORG}"],
    "travel": ["{PER} flew to {LOC}", "{PER} will travel from {LOC} to {LOC}",
               "the train to {LOC} left without {PER}", "{PER} visited {LOC}"],
    "business": ["{ORG} opened an office in {LOC}", "{ORG} bought {ORG}",
                 "shares of {ORG} rose in {LOC} today", "{PER} visited {ORG}"],
}


def tagged_sentences(
    *, seed=0, num_train=800, num_validation=200, num_test=200, max_length=12,
    unlabelled_tags=0.1, new_names=0.3,
):
    """TaggedSentences: sentences from a small grammar with entity tags and a topic.

    Each sentence comes from a template of one of four topics (meeting, work, travel,
    business) whose slots take person, location or organisation names, some of several
    words and some ambiguous ("jordan" and "washington" are people and places), so a tag
    depends on the context. In validation and test sentences a `new_names` share of the
    names are ones never seen in training; their words are outside the vocabulary (token
    id 1, `<unk>`), so the tagger must read the context, and where the context does not
    say ("alice visited <unk>": a place or a company?) the tag is a guess. Some templates
    belong to two topics, so the topic is not always decidable either: neither task can
    be learned perfectly. Deterministic from `seed`.

    Tasks:

    - `entities` (token classification, 7 BIO tags: O, B-PER, I-PER, B-LOC, I-LOC,
      B-ORG, I-ORG): one tag per token; -1 on padding, and on every token of an
      `unlabelled_tags` fraction of the sentences.
    - `topic` (multiclass, 4 classes): the template's topic.

    Args:
        seed: int, the seed of everything random.
        num_train, num_validation, num_test: the sizes of the splits.
        max_length: int >= 12, the padded length (sentences are at most 12 tokens).
        unlabelled_tags: fraction in [0, 1) of sentences without entity tags.
        new_names: fraction in [0, 1) of the names in validation and test sentences that
            are drawn from names never seen in training.

    Returns:
        An `MTLData` with inputs int32 token ids `(n, max_length)` (0: padding, 1: a word
        outside the vocabulary) and labels `entities` int32 `(n, max_length)` and `topic`
        int32 `(n,)`. Its `info` holds `"sentences"` (split -> list of strings),
        `"vocabulary"` (a list: word at its id), `"tag_names"`, `"topics"`, `"tasks"`,
        `"sizes"` and `"seed"`.

    Example:

    >>> data = keras_mtl.datasets.tagged_sentences(num_train=4, num_validation=0, num_test=2)
    >>> (x, y), _, _ = data
    >>> x.shape, y["entities"].shape, y["topic"].shape
    ((4, 12), (4, 12), (4,))
    >>> sentence = data.info["sentences"]["train"][0].split()
    >>> [data.info["vocabulary"][i] for i in x[0, :len(sentence)]] == sentence
    True
    """
    _check_int("seed", seed, minimum=0)
    _check_int("num_train", num_train, minimum=1)
    _check_int("num_validation", num_validation, minimum=0)
    _check_int("num_test", num_test, minimum=1)
    _check_int("max_length", max_length, minimum=12)
    _check_fraction("unlabelled_tags", unlabelled_tags)
    _check_fraction("new_names", new_names)

    words = set()
    for names in _ENTITIES.values():
        for name in names:
            words.update(name.split())
    for templates in _TEMPLATES.values():
        for template in templates:
            words.update(w for w in template.split() if not w.startswith("{"))
    vocabulary = ["<pad>", "<unk>"] + sorted(words)
    ids = {word: i for i, word in enumerate(vocabulary)}

    rng = np.random.default_rng(seed)
    sizes = {"train": num_train, "validation": num_validation, "test": num_test}
    splits, sentences = {}, {}
    for split in _SPLITS:
        n = sizes[split]
        x = np.zeros((n, max_length), "int32")
        tags = np.full((n, max_length), -1, "int32")
        topics = rng.integers(0, len(_TOPICS), n).astype("int32")
        share_new = 0.0 if split == "train" else new_names
        sentences[split] = []
        for i, topic in enumerate(topics):
            templates = _TEMPLATES[_TOPICS[topic]]
            tokens, token_tags = _fill_template(
                templates[rng.integers(len(templates))], rng, share_new
            )
            sentences[split].append(" ".join(tokens))
            x[i, :len(tokens)] = [ids.get(t, 1) for t in tokens]
            tags[i, :len(tokens)] = [_TAG_NAMES.index(t) for t in token_tags]
        tags[rng.random(n) < unlabelled_tags] = -1
        splits[split] = (x, {"entities": tags, "topic": topics})

    tasks = [
        Task("entities", "token_classification", num_classes=len(_TAG_NAMES),
             class_names=list(_TAG_NAMES)),
        Task("topic", "multiclass", num_classes=len(_TOPICS), class_names=list(_TOPICS)),
    ]
    info = {
        "name": "tagged_sentences",
        "tasks": {
            "entities": "BIO tag of each token (persons, locations, organisations); -1 on "
                        "padding and unlabelled sentences.",
            "topic": "The sentence's topic: meeting, work, travel or business.",
        },
        "sizes": sizes,
        "sentences": sentences,
        "vocabulary": vocabulary,
        "tag_names": list(_TAG_NAMES),
        "topics": list(_TOPICS),
        "seed": seed,
    }
    return MTLData(
        train=splits["train"], validation=splits["validation"], test=splits["test"],
        tasks=tasks, info=info,
    )


def _fill_template(template, rng, share_new):
    tokens, tags = [], []
    for word in template.split():
        if word.startswith("{"):
            entity = word[1:-1]
            names = _NEW_ENTITIES[entity] if rng.random() < share_new else _ENTITIES[entity]
            name = names[rng.integers(len(names))].split()
            tokens += name
            tags += [f"B-{entity}"] + [f"I-{entity}"] * (len(name) - 1)
        else:
            tokens.append(word)
            tags.append("O")
    return tokens, tags


# === Task distributions for meta-learning ===

# Classes of few_shot_digits per split: 10 digits x 4 rotations = 40 classes.
_FEW_SHOT_SPLIT_SIZES = {"train": 24, "val": 8, "test": 8}


def sinusoid_tasks(*, amplitude=(0.1, 5.0), phase=(0.0, np.pi), x_range=(-5.0, 5.0), seed=0):
    """The MAML paper's sinusoid regression tasks, as a `keras_mtl.meta.TaskDistribution`.

    A task is `y = amplitude * sin(x - phase)` with amplitude in [0.1, 5], phase in [0, pi];
    its examples have `x` uniform in [-5, 5]. Inputs and labels are float32 `(n, 1)`.

    Args:
        amplitude: `(low, high)` of the uniform amplitude.
        phase: `(low, high)` of the uniform phase.
        x_range: `(low, high)` of the uniform inputs.
        seed: integer >= 0.

    Returns:
        A `keras_mtl.meta.SinusoidTasks` over the "train" split (`.split("test")` for the
        others, drawn from separate random streams).

    Example:

    >>> tasks = keras_mtl.datasets.sinusoid_tasks()
    >>> (x_s, y_s), (x_q, y_q) = next(iter(tasks.episodes(25, shots=5, query_size=10, seed=0)))
    >>> tuple(x_s.shape), tuple(y_q.shape)
    ((25, 5, 1), (25, 10, 1))

    Reference:
        - [Finn, Abbeel, Levine, Model-Agnostic Meta-Learning for Fast Adaptation of Deep
          Networks, ICML 2017](https://arxiv.org/abs/1703.03400) (section 5.1)
    """
    from keras_mtl.meta import SinusoidTasks

    return SinusoidTasks(amplitude=amplitude, phase=phase, x_range=x_range, seed=seed)


def few_shot_digits(ways=5, *, seed=0):
    """N-way K-shot classification from scikit-learn's 8x8 digits, with rotated classes.

    As Omniglot is augmented, each digit at each rotation by 0, 90, 180 and 270 degrees is
    its own class: 40 classes of about 180 images each (1,797 images x 4, no download).
    The classes are split once, from `seed`, into 24 train, 8 val and 8 test classes, so
    no class of the test split was seen in meta-training. Each task draws `ways` classes of
    its split and labels them 0..ways-1 in a random order, afresh for every task.

    Args:
        ways: integer from 2 to 8, classes per task.
        seed: integer >= 0, the seed of the class split.

    Returns:
        A `keras_mtl.meta.FewShotClassification` over the "train" split. Inputs are
        float32 images `(n, 8, 8, 1)` in [0, 1]; labels int32 `(n,)`.

    Example:

    >>> tasks = keras_mtl.datasets.few_shot_digits(ways=5)
    >>> (x_s, y_s), (x_q, y_q) = tasks.split("test").sample_task(shots=1, query_size=3, seed=0)
    >>> x_s.shape, sorted(y_s.tolist()), x_q.shape
    ((5, 8, 8, 1), [0, 1, 2, 3, 4], (15, 8, 8, 1))
    """
    from sklearn.datasets import load_digits

    from keras_mtl.meta import FewShotClassification

    _check_int("ways", ways, minimum=2)
    if ways > min(_FEW_SHOT_SPLIT_SIZES.values()):
        raise ConfigError(
            f"`ways` must be at most {min(_FEW_SHOT_SPLIT_SIZES.values())}, the classes of "
            f"the smallest split. Received: ways={ways}"
        )
    _check_int("seed", seed, minimum=0)
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")
    x = np.concatenate([np.rot90(images, k, axes=(1, 2)) for k in range(4)])[..., None]
    classes = np.concatenate([digits.target + 10 * k for k in range(4)])
    return FewShotClassification(x, classes, ways, _FEW_SHOT_SPLIT_SIZES, seed=seed)
