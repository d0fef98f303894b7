"""Tasks from separate data sets: `mix()` turns several single-task data sets into one stream
for `MTLModel.fit`, with the task sampling schemes of the literature; `evaluate_per_task()`
and `PerTaskEvaluation` score each task on its own data.

A *source* is one data set with the labels of one task, or of a few tasks. In the mixed
stream every example carries a label for every task of the model: the tasks its source does
not label get that task's missing-label marker (`Task.resolved_missing_label`, given by the
task's kind), so masking, partial-label weighting and every sharing strategy and weighting
method work unchanged.
"""

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.losses import is_nan_marker
from keras_mtl.tasks import validate_tasks

SAMPLINGS = ("proportional", "uniform", "temperature", "annealed")
BATCHINGS = ("per_task", "mixed")

# The annealed schedule's exponent goes from 1 (proportional) at the first epoch to this
# value at the last one, as in Stickland and Murray (2019) and TF Model Garden.
ANNEALED_FINAL_EXPONENT = 0.2


# === Sampling weights ===


def sampling_weights(sizes, sampling="proportional", temperature=None, epoch=0, epochs=None):
    """The probability of drawing each source, as a NumPy array summing to 1.

    Args:
        sizes: the number of examples of each source (a list of positive numbers).
        sampling: `"proportional"` (`p_i ∝ n_i`), `"uniform"` (`p_i = 1/k`),
            `"temperature"` (`p_i ∝ n_i^(1/T)`, as in multilingual training: T=1 is
            proportional, large T tends to uniform), `"annealed"` (`p_i ∝ n_i^a(e)` with
            `a(e) = 1 - 0.8 * e / (E - 1)` at epoch `e` of `E = epochs`: proportional at the
            first epoch, `n_i^0.2` at the last, close to uniform), or a list of non-negative
            weights, one per source (normalised).
        temperature: `T` of the `"temperature"` scheme.
        epoch: the current (0-based) epoch, for `"annealed"`.
        epochs: the number of epochs of training, for `"annealed"`.

    Example:

    >>> keras_mtl.data.sampling_weights([900, 100], "proportional").tolist()
    [0.9, 0.1]
    >>> keras_mtl.data.sampling_weights([900, 100], "temperature", temperature=2.0).round(3)
    array([0.75, 0.25])
    >>> keras_mtl.data.sampling_weights([900, 100], "annealed", epoch=4, epochs=5).round(3)
    array([0.608, 0.392])

    Reference:
        Arivazhagan et al., "Massively Multilingual Neural Machine Translation in the Wild",
        2019 (temperature sampling); Stickland and Murray, "BERT and PALs: Projected
        Attention Layers for Efficient Adaptation in Multi-Task Learning", ICML 2019
        (annealed sampling).
    """
    sizes = np.asarray(sizes, dtype="float64")
    if not isinstance(sampling, str):
        weights = np.asarray(sampling, dtype="float64")
    elif sampling == "proportional":
        weights = sizes
    elif sampling == "uniform":
        weights = np.ones_like(sizes)
    elif sampling == "temperature":
        weights = sizes ** (1.0 / temperature)
    elif sampling == "annealed":
        weights = sizes ** _annealed_exponent(epoch, epochs)
    else:
        raise errors.ConfigError(
            f"`sampling` must be one of {list(SAMPLINGS)} or a dict of weights. "
            f"Received: sampling={sampling!r}"
        )
    return weights / weights.sum()


def _annealed_exponent(epoch, epochs):
    if epochs is None or epochs <= 1:
        return 1.0
    progress = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    return 1.0 - (1.0 - ANNEALED_FINAL_EXPONENT) * progress


# === Sources ===


class _Source:
    """One data set of `mix`: its key, the tasks it labels, its examples and its size."""

    def __init__(self, key, task_names, x, y, dataset, size):
        self.key = key
        self.task_names = task_names
        self.x = x  # arrays (a nest of NumPy arrays) or None for a dataset source
        self.y = y  # dict task -> NumPy array, or None
        self.dataset = dataset  # a tf.data.Dataset of unbatched examples, or None
        self.size = size

    @property
    def name(self):
        return f"datasets[{self.key!r}]"


def _prepare_sources(datasets, tasks, allow_missing_tasks):
    """Checks `datasets` against `tasks`; returns the `_Source`s and the full label specs."""
    if not isinstance(datasets, dict) or not datasets:
        raise errors.SourceError(
            "`datasets` must be a non-empty dict mapping a task name (or a tuple of task "
            "names) to a `tf.data.Dataset` of `(x, y)` examples or to `(x, y)` arrays. "
            f"Received: datasets of type {type(datasets).__name__}"
        )
    names = [task.name for task in tasks]
    sources, labelled = [], {}
    for key, value in datasets.items():
        key_names = (key,) if isinstance(key, str) else key
        if not isinstance(key_names, tuple) or not key_names or not all(
            isinstance(n, str) for n in key_names
        ):
            raise errors.SourceError(
                "The keys of `datasets` must be task names or tuples of task names. "
                f"Received key {key!r}"
            )
        unknown = [n for n in key_names if n not in names]
        if unknown:
            raise errors.SourceError(
                f"`datasets[{key!r}]` is a source for unknown tasks {unknown}; the tasks are "
                f"{names}."
            )
        for name in key_names:
            if name in labelled:
                raise errors.SourceError(
                    f"Task {name!r} has two sources, `datasets[{labelled[name]!r}]` and "
                    f"`datasets[{key!r}]`; give each task one source (concatenate them)."
                )
            labelled[name] = key
        sources.append(_make_source(key, key_names, value))
    absent = [n for n in names if n not in labelled]
    if absent and not allow_missing_tasks:
        raise errors.SourceError(
            f"Tasks {absent} have no source in `datasets` (keys {list(datasets)}). Give "
            "each task a source, or pass allow_missing_tasks=True to train them on no "
            "labels (their labels are all missing-label markers)."
        )
    _check_inputs_agree(sources)
    label_specs = {task.name: _label_spec(task, sources) for task in tasks}
    return sources, label_specs


def _make_source(key, key_names, value):
    if isinstance(value, tf.data.Dataset):
        spec = value.element_spec
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise errors.SourceError(
                f"`datasets[{key!r}]` must yield `(x, y)` examples. Received "
                f"element_spec={spec}"
            )
        dataset = value.map(lambda x, y: (x, _labels_by_task(key, key_names, y)))
        return _Source(key, key_names, None, None, dataset, _dataset_size(value))
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise errors.SourceError(
            f"`datasets[{key!r}]` must be a `tf.data.Dataset` or a pair `(x, y)` of arrays. "
            f"Received an object of type {type(value).__name__}"
        )
    x = _input_arrays(value[0])
    y = {name: _as_array(v) for name, v in _labels_by_task(key, key_names, value[1]).items()}
    lengths = {len(a) for a in tf.nest.flatten(x) + list(y.values())}
    if len(lengths) != 1:
        raise errors.SourceError(
            f"`datasets[{key!r}]`: `x` and `y` must have the same number of examples. "
            f"Received lengths {sorted(lengths)}"
        )
    return _Source(key, key_names, x, y, None, lengths.pop())


def _input_arrays(x):
    """Inputs as NumPy arrays: a dict or a list of arrays keeps its structure, as in Keras."""
    if isinstance(x, dict):
        return {k: _as_array(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and all(hasattr(v, "shape") for v in x):
        return tuple(_as_array(v) for v in x)
    return _as_array(x)


def _as_array(value):
    value = np.asarray(value)
    # As Keras does with arrays given to `fit`: float64 becomes the default float type.
    return value.astype(keras.config.floatx()) if value.dtype == np.float64 else value


def _labels_by_task(key, key_names, y):
    if isinstance(y, dict):
        if sorted(y) != sorted(key_names):
            raise errors.SourceError(
                f"The labels of `datasets[{key!r}]` must be keyed by its tasks "
                f"{list(key_names)}. Received keys {list(y)}"
            )
        return dict(y)
    if len(key_names) == 1:
        return {key_names[0]: y}
    if isinstance(y, (tuple, list)) and len(y) == len(key_names):
        return dict(zip(key_names, y))
    raise errors.SourceError(
        f"The labels of `datasets[{key!r}]` must be a dict keyed by its tasks "
        f"{list(key_names)}, or a tuple in that order. Received labels of type "
        f"{type(y).__name__}"
    )


def _dataset_size(dataset):
    """The number of examples of a finite dataset (counted when unknown), None if infinite."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _example_spec(source):
    """`(x_spec, {task: label_spec})` of one example of `source`."""
    if source.dataset is not None:
        x_spec, y_spec = source.dataset.element_spec
        return x_spec, y_spec
    spec = lambda a: tf.TensorSpec(a.shape[1:], tf.as_dtype(a.dtype))  # noqa: E731
    return tf.nest.map_structure(spec, source.x), {n: spec(a) for n, a in source.y.items()}


def _check_inputs_agree(sources):
    first = sources[0]
    first_spec = _example_spec(first)[0]
    for source in sources[1:]:
        spec = _example_spec(source)[0]
        try:
            tf.nest.assert_same_structure(first_spec, spec)
        except (ValueError, TypeError):
            raise errors.SourceError(
                f"The inputs of all sources must have the same structure; those of "
                f"{source.name} differ from those of {first.name}. Expected {first_spec}, "
                f"received {spec}"
            ) from None
        for a, b in zip(tf.nest.flatten(first_spec), tf.nest.flatten(spec)):
            if a.dtype != b.dtype or not a.shape.is_compatible_with(b.shape):
                raise errors.SourceError(
                    f"The inputs of all sources must have the same dtype and shape per "
                    f"example; those of {source.name} differ from those of {first.name}. "
                    f"Expected {first_spec}, received {spec}"
                )


def _label_spec(task, sources):
    """The per-example `tf.TensorSpec` of a task's labels in the mixed stream."""
    marker = task.resolved_missing_label
    labelling = [s for s in sources if task.name in s.task_names]
    if labelling:
        spec = _example_spec(labelling[0])[1][task.name]
        dtype = spec.dtype
        if marker is not None and is_nan_marker(marker) and not dtype.is_floating:
            dtype = tf.as_dtype(keras.config.floatx())
        for source in labelling[1:]:
            other = _example_spec(source)[1][task.name]
            if other.shape.num_elements() != spec.shape.num_elements():
                raise errors.SourceError(
                    f"Task {task.name!r}: the labels of {source.name} have the per-example "
                    f"shape {other.shape}, those of {labelling[0].name} {spec.shape}."
                )
        shape = spec.shape
        if len(labelling) < len(sources) and not shape.is_fully_defined():
            raise errors.SourceError(
                f"Task {task.name!r}: its labels in {labelling[0].name} have the per-example "
                f"shape {shape}, not fully known, so the sources without this task cannot "
                "be filled with missing-label markers. Give the labels a fixed shape."
            )
        return tf.TensorSpec(shape, dtype)
    kind = task.kind_object
    shape = kind.label_shape(task, (task.output_units,)) if kind.head_input == "vector" else None
    if shape is None:
        raise errors.SourceError(
            f"Task {task.name!r} has no source, and the shape of its labels cannot be told "
            "from the task alone; give it a source."
        )
    return tf.TensorSpec(shape, tf.as_dtype(keras.config.floatx()))


def _check_markers(tasks, sources):
    for task in tasks:
        unlabelled = [s.name for s in sources if task.name not in s.task_names]
        if unlabelled and task.resolved_missing_label is None:
            raise errors.SourceError(
                f"Task {task.name!r} marks no missing labels (missing_label=None), so it "
                f"cannot be absent from {unlabelled}. Give the task a `missing_label`."
            )


def _full_labels(spec, task, labels, batch_shape):
    """`labels` cast and reshaped to `spec`, or the task's markers when `labels` is None."""
    shape = tf.concat([batch_shape, tf.constant(spec.shape.as_list(), tf.int32)], axis=0)
    if labels is None:
        marker = task.resolved_missing_label
        value = float("nan") if is_nan_marker(marker) else marker
        return tf.fill(shape, tf.constant(value, spec.dtype))
    return tf.reshape(tf.cast(labels, spec.dtype), shape)


def _array_labels(source, tasks, label_specs):
    """The labels of an array source for every task, as NumPy arrays (markers filled)."""
    labels = {}
    for task in tasks:
        spec = label_specs[task.name]
        shape = (source.size, *spec.shape.as_list())
        dtype = spec.dtype.as_numpy_dtype
        if task.name in source.y:
            labels[task.name] = source.y[task.name].astype(dtype).reshape(shape)
        else:
            marker = task.resolved_missing_label
            value = np.nan if is_nan_marker(marker) else marker
            labels[task.name] = np.full(shape, value, dtype=dtype)
    return labels


def _filled_dataset(source, tasks, label_specs):
    """A dataset source's examples with a label for every task."""

    def fill(x, y):
        return x, {
            task.name: _full_labels(
                label_specs[task.name], task, y.get(task.name), tf.constant([], tf.int32)
            )
            for task in tasks
        }

    return source.dataset.map(fill, num_parallel_calls=tf.data.AUTOTUNE)


def _source_stream(source, tasks, label_specs, batch_size, repeat, seed, shuffle):
    """The examples of one source, full labels, shuffled, repeated, in batches or not."""
    if source.dataset is not None:
        dataset = _filled_dataset(source, tasks, label_specs)
        if repeat:
            dataset = dataset.repeat()
        return dataset if batch_size is None else dataset.batch(batch_size, drop_remainder=repeat)
    # Arrays: shuffle and batch indices, then gather whole batches (no per-example work).
    data = (
        tf.nest.map_structure(tf.constant, source.x),
        {n: tf.constant(a) for n, a in _array_labels(source, tasks, label_specs).items()},
    )
    indices = tf.data.Dataset.range(source.size)
    if shuffle:
        indices = indices.shuffle(source.size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    chunk = batch_size or 256
    indices = indices.batch(chunk, drop_remainder=repeat and batch_size is not None)
    dataset = indices.map(
        lambda i: tf.nest.map_structure(lambda a: tf.gather(a, i), data),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset if batch_size is not None else dataset.unbatch()


# === mix ===


def mix(
    datasets,
    tasks,
    *,
    sampling="proportional",
    temperature=None,
    batch_size=32,
    batching="per_task",
    seed=None,
    steps_per_epoch=None,
    epochs=None,
    repeat=True,
    shuffle=True,
    allow_missing_tasks=False,
):
    """One stream of `(x, y)` batches for `MTLModel.fit` from several single-task data sets.

    Each source is drawn with a probability set by `sampling`; the labels of the tasks a
    source does not label are that task's missing-label marker (-1 for class ids, NaN for
    regression, or the task's own `missing_label`), so they add nothing to those tasks'
    losses and metrics.

    **Epochs.** With `repeat=True` (the default) every source repeats forever (reshuffled
    on each pass) and the stream is infinite; an epoch is `steps_per_epoch` batches, by
    default `ceil(total examples / batch_size)`: as many batches as one pass over all the
    sources together. The stream carries it as `stream.steps_per_epoch`, which
    `MTLModel.fit` uses when it is given no `steps_per_epoch` (a plain Keras model needs
    `fit(stream, steps_per_epoch=stream.steps_per_epoch)`). Keras keeps one iterator across
    the epochs of a `fit` with `steps_per_epoch`, so the stream continues, and the annealed
    schedule advances, from one epoch to the next. With `repeat=False`, each source is read
    exactly once, in an order set by the sampling, and the stream ends when all are
    exhausted: every example appears once (use this for validation data).

    **Batching.** `"per_task"`: each batch comes from one source (MT-DNN, TF Model Garden's
    multi-task trainer); the sampling weights are the probabilities of each batch's source.
    `"mixed"`: each example's source is drawn on its own, so a batch mixes the sources.

    **Sampling** (see `sampling_weights` for the formulas): `"proportional"` to the sources'
    sizes, `"uniform"`, `"temperature"` (`n_i^(1/temperature)`), `"annealed"` (from
    proportional at the first epoch to `n_i^0.2` at the last of `epochs`, the epoch of a
    step being `step // steps_per_epoch`), or a dict of non-negative weights with one entry
    per key of `datasets`.

    Args:
        datasets: dict from a task name, or a tuple of task names for a source labelling
            several tasks, to a `tf.data.Dataset` of unbatched `(x, y)` examples (call
            `.unbatch()` on a batched one) or to a pair `(x, y)` of arrays. `y` is the
            task's labels, or for a tuple key a dict keyed by its tasks (or a tuple in the
            key's order). Inputs must agree in structure, dtype and shape across sources.
            Array sources are shuffled on every pass when `shuffle` is True; datasets are
            read in their own order.
        tasks: the `keras_mtl.Task`s of the model (`model.tasks`).
        sampling: `"proportional"`, `"uniform"`, `"temperature"`, `"annealed"` or a dict
            of weights.
        temperature: the positive temperature of `sampling="temperature"`.
        batch_size: examples per batch.
        batching: `"per_task"` or `"mixed"`.
        seed: an integer: the same seed gives the same stream. None draws one from NumPy's
            global generator (set by `keras.utils.set_random_seed`).
        steps_per_epoch: batches per epoch (see above).
        epochs: the number of epochs of training, required by `sampling="annealed"`.
        repeat: True for an infinite stream, False for one pass over every source.
        shuffle: whether to shuffle array sources.
        allow_missing_tasks: whether a task of `tasks` may have no source (all its labels
            are then markers).

    Returns:
        A `tf.data.Dataset` of `(x, {task: labels})` batches, with `steps_per_epoch` (None
        when `repeat=False`) and `sources` (the keys of `datasets`) as attributes.

    Example:

    >>> tasks = [keras_mtl.Task("topic", "multiclass", num_classes=3),
    ...          keras_mtl.Task("score", "regression")]
    >>> rng = np.random.default_rng(0)
    >>> stream = keras_mtl.data.mix(
    ...     {"topic": (rng.normal(size=(90, 4)), rng.integers(0, 3, 90)),
    ...      "score": (rng.normal(size=(10, 4)), rng.normal(size=10))},
    ...     tasks, sampling="temperature", temperature=2.0, batch_size=8, seed=0)
    >>> stream.steps_per_epoch
    13
    >>> x, y = next(iter(stream))
    >>> x.shape, sorted(y)
    (TensorShape([8, 4]), ['score', 'topic'])

    `model.fit(stream, epochs=10)` then runs 10 epochs of 13 steps.
    """
    tasks = validate_tasks(tasks)
    _check_positive_int("batch_size", batch_size)
    if steps_per_epoch is not None:
        _check_positive_int("steps_per_epoch", steps_per_epoch)
    if epochs is not None:
        _check_positive_int("epochs", epochs)
    if batching not in BATCHINGS:
        raise errors.ConfigError(
            f"`batching` must be one of {list(BATCHINGS)}. Received: batching={batching!r}"
        )
    if seed is not None and not _is_int(seed):
        raise errors.ConfigError(f"`seed` must be an integer or None. Received: seed={seed!r}")
    _check_sampling(sampling, temperature, epochs, datasets)
    sources, label_specs = _prepare_sources(datasets, tasks, allow_missing_tasks)
    _check_markers(tasks, sources)
    sizes = [s.size for s in sources]
    if isinstance(sampling, str) and sampling != "uniform" and None in sizes:
        infinite = [s.name for s in sources if s.size is None]
        raise errors.SourceError(
            f"`sampling={sampling!r}` needs the size of every source, but {infinite} are "
            "infinite. Pass finite datasets, or sampling weights as a dict."
        )
    if steps_per_epoch is None and None not in sizes:
        steps_per_epoch = max(1, math.ceil(sum(sizes) / batch_size))
    elif steps_per_epoch is None and repeat:
        if None in sizes:
            raise errors.ConfigError(
                "Some sources are infinite, so an epoch cannot be one pass over the data; "
                "give `steps_per_epoch`."
            )
    if isinstance(sampling, dict):
        unknown = sorted(map(repr, set(sampling) - set(datasets)))
        lacking = sorted(map(repr, set(datasets) - set(sampling)))
        if unknown or lacking:
            raise errors.ConfigError(
                "`sampling` as a dict must have one weight per key of `datasets` "
                f"{list(datasets)}. Unknown keys: {unknown}; missing keys: {lacking}"
            )
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    if isinstance(sampling, dict):
        # A source of weight 0 is never drawn; left in, a one-pass stream would never end.
        sources = [s for s in sources if sampling[s.key] > 0]
        sizes = [s.size for s in sources]

    per_task = batching == "per_task"
    streams = [
        _source_stream(
            source, tasks, label_specs, batch_size if per_task else None, repeat,
            seed + 1 + i, shuffle,
        )
        for i, source in enumerate(sources)
    ]
    selector = _selector(
        sources, sizes, sampling, temperature, epochs, steps_per_epoch,
        1 if per_task else batch_size, seed,
    )
    stream = tf.data.Dataset.choose_from_datasets(
        streams, selector, stop_on_empty_dataset=False
    )
    if not per_task:
        stream = stream.batch(batch_size, drop_remainder=repeat)
    if not repeat and None not in sizes:
        # One pass has a known number of batches (Keras then knows where an epoch ends).
        if per_task:
            batches = sum(math.ceil(size / batch_size) for size in sizes)
        else:
            batches = math.ceil(sum(sizes) / batch_size)
        stream = stream.apply(tf.data.experimental.assert_cardinality(batches))
    stream = stream.prefetch(tf.data.AUTOTUNE)
    stream.steps_per_epoch = steps_per_epoch if repeat else None
    stream.sources = list(datasets)
    return stream


def _selector(sources, sizes, sampling, temperature, epochs, steps_per_epoch, draws, seed):
    """An infinite dataset of source indices: `draws` of them for each training step."""
    if isinstance(sampling, dict):
        fixed = [float(sampling[s.key]) for s in sources]
    elif sampling == "uniform":
        fixed = [1.0] * len(sources)
    elif sampling != "annealed":
        fixed = sampling_weights(sizes, sampling, temperature).tolist()
    if sampling == "annealed":
        fixed = None
        log_sizes = tf.constant(np.log(np.maximum(sizes, 1)), tf.float32)
    epochs_float = float(epochs or 1)

    def draw(step):
        if fixed is not None:
            logits = tf.math.log(tf.constant(fixed, tf.float32))
        else:
            # The annealed exponent of the epoch this step belongs to.
            epoch = tf.cast(step // steps_per_epoch, tf.float32)
            progress = tf.minimum(epoch, epochs_float - 1) / max(epochs_float - 1, 1.0)
            exponent = 1.0 - (1.0 - ANNEALED_FINAL_EXPONENT) * progress
            logits = exponent * log_sizes
        picked = tf.random.stateless_categorical(
            logits[None], draws, seed=tf.stack([tf.constant(seed, tf.int64), step]),
            dtype=tf.int64,
        )
        return picked[0]

    return tf.data.Dataset.counter().map(draw).unbatch()


def _check_sampling(sampling, temperature, epochs, datasets):
    if isinstance(sampling, dict):
        values = list(sampling.values())
        for key, value in sampling.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                math.isfinite(value) and value >= 0
            ):
                raise errors.ConfigError(
                    f"Sampling weights must be finite numbers >= 0. Received: "
                    f"sampling[{key!r}]={value!r}"
                )
        if not any(v > 0 for v in values):
            raise errors.ConfigError(
                f"Sampling weights must not all be zero. Received: sampling={sampling!r}"
            )
    elif sampling not in SAMPLINGS:
        raise errors.ConfigError(
            f"`sampling` must be one of {list(SAMPLINGS)} or a dict of weights keyed like "
            f"`datasets`. Received: sampling={sampling!r}"
        )
    if sampling == "temperature":
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise errors.ConfigError(
                "`temperature` must be a positive number for sampling='temperature'. "
                f"Received: temperature={temperature!r}"
            )
    elif temperature is not None:
        raise errors.ConfigError(
            "`temperature` applies only to sampling='temperature'. Received: "
            f"sampling={sampling!r}, temperature={temperature!r}"
        )
    if sampling == "annealed" and epochs is None:
        raise errors.ConfigError(
            "sampling='annealed' anneals over the whole training: give `epochs` (and "
            "optionally `steps_per_epoch`). Received: epochs=None"
        )


def _check_positive_int(name, value):
    if not _is_int(value) or value < 1:
        raise errors.ConfigError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# === Per-task evaluation ===


def evaluate_per_task(model, datasets, *, batch_size=32, verbose=0):
    """Evaluates each task of `model` on its own data; returns a pandas DataFrame.

    Each source of `datasets` (keyed as for `mix`: a task name, or a tuple of task names) is
    evaluated on its own, with the other tasks' labels set to their missing-label markers,
    so a task's loss and metrics are those of its own data only, whatever the other tasks'
    data sets hold. Tasks without a source are left out.

    Args:
        model: a compiled `keras_mtl.MTLModel`.
        datasets: dict task name (or tuple of names) -> `tf.data.Dataset` of unbatched
            `(x, y)` examples, or `(x, y)` arrays.
        batch_size: examples per evaluation batch.
        verbose: passed to `model.evaluate`.

    Returns:
        A DataFrame indexed by task name (`"task"`), in the model's task order, with the
        column `examples` (the size of the task's data) and one column per metric as the
        model logs it without the task prefix (`loss`, `accuracy`, `mae`, ...); a metric
        another task does not have is NaN in that task's row.

    Example:

    >>> tasks = [keras_mtl.Task("topic", "multiclass", num_classes=3),
    ...          keras_mtl.Task("score", "regression")]
    >>> model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    >>> rng = np.random.default_rng(0)
    >>> frame = keras_mtl.data.evaluate_per_task(
    ...     model, {"topic": (rng.normal(size=(30, 4)), rng.integers(0, 3, 30)),
    ...             "score": (rng.normal(size=(20, 4)), rng.normal(size=20))})
    >>> frame.index.tolist(), frame["examples"].tolist()
    (['topic', 'score'], [30, 20])
    >>> sorted(frame.columns)
    ['accuracy', 'examples', 'loss', 'mae']
    """
    import pandas as pd

    _check_positive_int("batch_size", batch_size)
    rows = {}
    for source, stream in _evaluation_streams(model, datasets, batch_size):
        results = model.evaluate(stream, verbose=verbose, return_dict=True)
        by_task = _results_by_task(results, model.task_names)
        for name in source.task_names:
            rows[name] = {"examples": source.size, **by_task.get(name, {})}
    order = [name for name in model.task_names if name in rows]
    frame = pd.DataFrame.from_dict({name: rows[name] for name in order}, orient="index")
    frame.index.name = "task"
    return frame


def _evaluation_streams(model, datasets, batch_size):
    """`(source, one-pass stream of batches)` for each source, in order."""
    tasks = getattr(model, "tasks", None)
    if tasks is None:
        raise errors.ConfigError(
            "`model` must be a `keras_mtl.MTLModel` (it knows its tasks). Received a model "
            f"of type {type(model).__name__}"
        )
    sources, label_specs = _prepare_sources(datasets, tasks, allow_missing_tasks=True)
    _check_markers(tasks, sources)
    return [
        (
            source,
            _source_stream(source, tasks, label_specs, batch_size, False, 0, False)
            .apply(tf.data.experimental.assert_cardinality(math.ceil(source.size / batch_size)))
            .prefetch(tf.data.AUTOTUNE),
        )
        for source in sources
    ]


def _results_by_task(results, task_names):
    """Splits logs `{"<task>_<metric>": value}` into `{task: {metric: value}}`.

    A key is given to the longest task name it starts with, so task `a` does not take the
    metrics of a task `a_b`.
    """
    by_task = {}
    for key, value in results.items():
        owners = [name for name in task_names if key.startswith(f"{name}_")]
        if owners:
            owner = max(owners, key=len)
            by_task.setdefault(owner, {})[key[len(owner) + 1:]] = float(value)
    return by_task


class PerTaskEvaluation(keras.callbacks.Callback):
    """Logs each task's metrics on its own validation data at the end of every epoch.

    Adds `val_<task>_<metric>` (with `prefix="val_"`) to the epoch's logs, from
    `keras_mtl.data.evaluate_per_task(model, datasets)`, so the callbacks after it in the
    list (`EarlyStopping("val_topic_accuracy", mode="max")`, `ModelCheckpoint`, KerasTuner's
    objective in `MTLHyperModel`, `History`) see them. Put it before those callbacks:
    Keras calls callbacks in the order of the list. `MTLHyperModel.fit` puts it before
    its Δm callback, which then reads these per-task validation losses. The per-task tables
    of every epoch are kept in `frames`.

    Args:
        datasets: dict task name (or tuple of names) -> validation data, as for
            `evaluate_per_task`.
        batch_size: examples per evaluation batch.
        prefix: the prefix of the logged names.

    Example:

    >>> tasks = [keras_mtl.Task("topic", "multiclass", num_classes=3),
    ...          keras_mtl.Task("score", "regression")]
    >>> rng = np.random.default_rng(0)
    >>> def data(n, labels):
    ...     return rng.normal(size=(n, 4)).astype("float32"), labels(n)
    >>> train = {"topic": data(60, lambda n: rng.integers(0, 3, n)),
    ...          "score": data(40, lambda n: rng.normal(size=n))}
    >>> valid = {"topic": data(20, lambda n: rng.integers(0, 3, n)),
    ...          "score": data(20, lambda n: rng.normal(size=n))}
    >>> model = keras_mtl.build_mtl_model((4,), tasks, shared_units=8)
    >>> history = model.fit(
    ...     keras_mtl.data.mix(train, tasks, batch_size=20, seed=0), epochs=2, verbose=0,
    ...     callbacks=[keras_mtl.data.PerTaskEvaluation(valid),
    ...                keras.callbacks.EarlyStopping("val_topic_accuracy", mode="max")])
    >>> len(history.history["val_topic_accuracy"]), len(history.history["val_score_mae"])
    (2, 2)
    """

    def __init__(self, datasets, batch_size=32, prefix="val_"):
        super().__init__()
        _check_positive_int("batch_size", batch_size)
        self.datasets = datasets
        self.batch_size = batch_size
        self.prefix = prefix
        self.frames = []

    def on_epoch_end(self, epoch, logs=None):
        frame = evaluate_per_task(self.model, self.datasets, batch_size=self.batch_size)
        self.frames.append(frame)
        if logs is None:
            return
        for task_name, row in frame.iterrows():
            for metric, value in row.items():
                if metric != "examples" and not np.isnan(value):
                    logs[f"{self.prefix}{task_name}_{metric}"] = float(value)
