"""Distributions of tasks: where meta-learning draws its episodes from.

A `TaskDistribution` draws tasks and, for each, a support set and a query set. Its
`episodes()` is a `tf.data.Dataset` of meta-batches `((x_support, y_support), (x_query,
y_query))`, each array with a leading tasks axis, which a meta-learner's `fit` reads as
`x` (support) and `y` (query). `split("train" | "val" | "test")` gives the same
distribution over disjoint tasks or classes.
"""

import numbers

import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.meta.base import check_steps as _check_int

SPLITS = ("train", "val", "test")


class TaskDistribution:
    """A distribution of tasks, each with support and query examples.

    Subclasses implement `draw_task(rng)` (a task's description) and
    `draw_examples(task, rng, shots, query_size)` (its support and query sets), and say how
    a split restricts the tasks (`split`).

    Args:
        split: which split of the tasks this distribution draws: "train", "val" or "test".
        seed: integer >= 0, the seed of the split itself (which classes go where).
    """

    def __init__(self, split="train", seed=0):
        if split not in SPLITS:
            raise errors.ConfigError(
                f"`split` must be one of {list(SPLITS)}. Received: split={split!r}"
            )
        _check_int("seed", seed, 0)
        self.split_name = split
        self.seed = seed

    # === What subclasses implement ===

    def draw_task(self, rng):
        """One task of this split, drawn with the NumPy generator `rng`."""
        raise NotImplementedError

    def draw_examples(self, task, rng, shots, query_size):
        """`((x_support, y_support), (x_query, y_query))` of `task`, as NumPy arrays."""
        raise NotImplementedError

    def split(self, name):
        """The same distribution over the tasks of split `name` ("train", "val", "test")."""
        raise NotImplementedError

    def pooled(self, num_examples, seed=0):
        """`(x, y)`: examples of many tasks of this split pooled, for a baseline trained
        with plain `fit` (see `keras_mtl.meta.pooled_baseline`)."""
        raise NotImplementedError

    def support_size(self, shots):
        """How many support examples `shots` gives (more than `shots` for N-way tasks)."""
        return shots

    # === Sampling ===

    def sample_task(self, shots, query_size, seed=None):
        """One task's `((x_support, y_support), (x_query, y_query))`, as NumPy arrays."""
        self._check_sizes(shots, query_size)
        rng = self._rng(seed)
        return self.draw_examples(self.draw_task(rng), rng, shots, query_size)

    def sample_batch(self, meta_batch_size, shots, query_size, seed=None):
        """A meta-batch as NumPy arrays, each with a leading tasks axis."""
        _check_int("meta_batch_size", meta_batch_size, 1)
        self._check_sizes(shots, query_size)
        return self._batch(self._rng(seed), meta_batch_size, shots, query_size)

    def episodes(self, meta_batch_size, shots, query_size, seed=None, num_batches=None):
        """A `tf.data.Dataset` of meta-batches `((x_support, y_support), (x_query, y_query))`.

        Shapes: `(meta_batch_size, shots, ...)` for the support set and
        `(meta_batch_size, query_size, ...)` for the query set (for N-way tasks, `shots`
        and `query_size` are per class: `ways * shots` examples). Each meta-batch draws new
        tasks; the dataset repeats without end unless `num_batches` is given (pass
        `steps_per_epoch` to `fit`).

        Args:
            meta_batch_size: positive integer, tasks per meta-batch.
            shots: positive integer, support examples per task (per class for N-way tasks).
            query_size: positive integer, query examples per task (per class for N-way).
            seed: integer seed of the draws (None: a fresh one); the same seed gives the
                same episodes.
            num_batches: positive integer, a finite dataset of that many meta-batches.
        """
        _check_int("meta_batch_size", meta_batch_size, 1)
        self._check_sizes(shots, query_size)
        if num_batches is not None:
            _check_int("num_batches", num_batches, 1)
        if seed is not None:
            _check_int("seed", seed, 0)
        first = self._batch(self._rng(seed), meta_batch_size, shots, query_size)
        signature = tf.nest.map_structure(
            lambda a: tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)), first
        )

        def generate():
            rng = self._rng(seed)
            count = 0
            while num_batches is None or count < num_batches:
                yield self._batch(rng, meta_batch_size, shots, query_size)
                count += 1

        return tf.data.Dataset.from_generator(generate, output_signature=signature)

    def _batch(self, rng, meta_batch_size, shots, query_size):
        tasks = [
            self.draw_examples(self.draw_task(rng), rng, shots, query_size)
            for _ in range(meta_batch_size)
        ]
        return tf.nest.map_structure(lambda *arrays: np.stack(arrays), *tasks)

    def _rng(self, seed):
        # Each split draws from its own stream, so the same seed never gives the same task
        # in two splits.
        entropy = [SPLITS.index(self.split_name), self.seed]
        if seed is not None:
            entropy.append(seed)
        return np.random.default_rng(entropy if seed is not None else None)

    def _check_sizes(self, shots, query_size):
        _check_int("shots", shots, 1)
        _check_int("query_size", query_size, 1)


class SinusoidTasks(TaskDistribution):
    """The MAML paper's sinusoid regression tasks: `y = amplitude * sin(x - phase)`.

    Each task draws an amplitude and a phase; its examples draw `x` uniformly. Splits draw
    from separate random streams, so their tasks differ (with probability one).

    Args:
        amplitude: `(low, high)` of the uniform amplitude.
        phase: `(low, high)` of the uniform phase.
        x_range: `(low, high)` of the uniform inputs.
        split: "train", "val" or "test".
        seed: integer >= 0.

    Example:

    >>> tasks = keras_mtl.datasets.sinusoid_tasks()
    >>> (x, y), (xq, yq) = tasks.sample_task(shots=5, query_size=10, seed=0)
    >>> x.shape, y.shape, xq.shape
    ((5, 1), (5, 1), (10, 1))

    Reference:
        - [Finn, Abbeel, Levine, ICML 2017](https://arxiv.org/abs/1703.03400), section 5.1
    """

    def __init__(self, amplitude=(0.1, 5.0), phase=(0.0, np.pi), x_range=(-5.0, 5.0),
                 split="train", seed=0):
        super().__init__(split=split, seed=seed)
        for name, value in (("amplitude", amplitude), ("phase", phase), ("x_range", x_range)):
            if (
                not isinstance(value, (tuple, list))
                or len(value) != 2
                or not all(isinstance(v, numbers.Real) for v in value)
                or not value[0] <= value[1]
            ):
                raise errors.ConfigError(
                    f"`{name}` must be a pair (low, high) of numbers with low <= high. "
                    f"Received: {name}={value!r}"
                )
        self.amplitude = tuple(float(v) for v in amplitude)
        self.phase = tuple(float(v) for v in phase)
        self.x_range = tuple(float(v) for v in x_range)

    def draw_task(self, rng):
        """A task: `(amplitude, phase)`."""
        return rng.uniform(*self.amplitude), rng.uniform(*self.phase)

    def function(self, task, x):
        """The task's target values at `x`."""
        amplitude, phase = task
        return (amplitude * np.sin(np.asarray(x) - phase)).astype("float32")

    def draw_examples(self, task, rng, shots, query_size):
        x = rng.uniform(*self.x_range, size=(shots + query_size, 1)).astype("float32")
        y = self.function(task, x)
        return (x[:shots], y[:shots]), (x[shots:], y[shots:])

    def split(self, name):
        return SinusoidTasks(self.amplitude, self.phase, self.x_range, split=name,
                             seed=self.seed)

    def pooled(self, num_examples, seed=0):
        _check_int("num_examples", num_examples, 1)
        rng = np.random.default_rng([SPLITS.index(self.split_name), self.seed, seed, 1])
        x = rng.uniform(*self.x_range, size=(num_examples, 1)).astype("float32")
        amplitude = rng.uniform(*self.amplitude, size=(num_examples, 1))
        phase = rng.uniform(*self.phase, size=(num_examples, 1))
        return x, (amplitude * np.sin(x - phase)).astype("float32")

    def __repr__(self):
        return (f"SinusoidTasks(split={self.split_name!r}, amplitude={self.amplitude}, "
                f"phase={self.phase}, x_range={self.x_range})")


class FewShotClassification(TaskDistribution):
    """N-way K-shot classification tasks drawn from a labelled pool of examples.

    A task picks `ways` classes of its split and numbers them 0..ways-1 in a random order
    (labels are drawn afresh for every task); its support set has `shots` examples per
    class and its query set `query_size` per class, all distinct, shuffled. The classes are
    split between "train", "val" and "test" once, from `seed`: no class is in two splits.

    Args:
        x: the examples, `(n, ...)`.
        classes: the class of each example, `(n,)` integers.
        ways: integer >= 2, classes per task.
        split_sizes: dict split -> number of classes, summing to at most the classes.
        split: "train", "val" or "test".
        seed: integer >= 0, the seed of the class split.

    Attributes:
        split_classes: dict split -> the class ids in that split.
    """

    def __init__(self, x, classes, ways, split_sizes, split="train", seed=0):
        super().__init__(split=split, seed=seed)
        _check_int("ways", ways, 2)
        self.x = np.asarray(x)
        self.classes = np.asarray(classes)
        self.ways = ways
        self.split_sizes = dict(split_sizes)
        ids = np.unique(self.classes)
        if sorted(self.split_sizes) != sorted(SPLITS) or sum(self.split_sizes.values()) > len(ids):
            raise errors.ConfigError(
                f"`split_sizes` must give the number of classes of each split {list(SPLITS)}, "
                f"{len(ids)} in all at most. Received: split_sizes={split_sizes!r}"
            )
        for name, size in self.split_sizes.items():
            if size < ways:
                raise errors.ConfigError(
                    f"`ways` must be at most the {size} classes of the {name!r} split. "
                    f"Received: ways={ways}"
                )
        order = np.random.default_rng(seed).permutation(ids)
        bounds = np.cumsum([0] + [self.split_sizes[s] for s in SPLITS])
        self.split_classes = {
            s: np.sort(order[bounds[i]:bounds[i + 1]]) for i, s in enumerate(SPLITS)
        }
        self._members = {c: np.flatnonzero(self.classes == c) for c in ids}

    @property
    def num_classes(self):
        """The number of classes in this split."""
        return len(self.split_classes[self.split_name])

    def support_size(self, shots):
        return self.ways * shots

    def draw_task(self, rng):
        """A task: `ways` class ids of this split, in the order of their labels."""
        return rng.choice(self.split_classes[self.split_name], size=self.ways, replace=False)

    def draw_examples(self, task, rng, shots, query_size):
        smallest = min(len(self._members[c]) for c in task)
        if shots + query_size > smallest:
            raise errors.ConfigError(
                f"`shots` + `query_size` must be at most {smallest}, the examples of the "
                f"smallest class. Received: shots={shots}, query_size={query_size}"
            )
        support, query = [], []
        for label, c in enumerate(task):
            chosen = rng.choice(self._members[c], size=shots + query_size, replace=False)
            support += [(i, label) for i in chosen[:shots]]
            query += [(i, label) for i in chosen[shots:]]
        sets = []
        for pairs in (support, query):
            pairs = [pairs[i] for i in rng.permutation(len(pairs))]
            index = np.array([i for i, _ in pairs])
            labels = np.array([label for _, label in pairs], dtype="int32")
            sets.append((self.x[index], labels))
        return tuple(sets)

    def split(self, name):
        return type(self)(self.x, self.classes, self.ways, self.split_sizes, split=name,
                          seed=self.seed)

    def pooled(self, num_examples=None, seed=0):
        """Every example of this split's classes, labelled 0..num_classes-1 (shuffled)."""
        ids = self.split_classes[self.split_name]
        index = np.concatenate([self._members[c] for c in ids])
        relabel = {c: i for i, c in enumerate(ids)}
        labels = np.array([relabel[c] for c in self.classes[index]], dtype="int32")
        order = np.random.default_rng(seed).permutation(len(index))
        if num_examples is not None:
            _check_int("num_examples", num_examples, 1)
            order = order[:num_examples]
        return self.x[index[order]], labels[order]

    def __repr__(self):
        return (f"{type(self).__name__}(split={self.split_name!r}, ways={self.ways}, "
                f"classes={self.num_classes})")

