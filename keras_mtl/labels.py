"""Checking labels against the tasks: keys, dtypes, shapes and values, before and during training.

What a task accepts comes from its kind (`keras_mtl.kinds.TaskKind`): the shape of one
example's labels and which values are valid. Arrays are checked whole with NumPy before
training; a `tf.data.Dataset` is checked from its `element_spec` and on its first batch before
training, then, in the graph, on the labels of the model's first `CHECKED_STEPS` training
steps (a check on every step would cost a few percent of a small model's step time).
"""

import keras
import numpy as np
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.kinds.base import present_labels
from keras_mtl.losses import is_nan_marker

# Training steps of a model (its optimizer's first iterations) whose labels are checked in
# the graph.
CHECKED_STEPS = 10

# The attribute of an `MTLModel` telling whether its training steps check labels in the graph
# (True for labels from a dataset or generator, False for arrays checked whole by `fit`).
GRAPH_CHECK_ATTRIBUTE = "_checks_labels_in_graph"

# Starts the message of an in-graph check, so that `fit` can tell its failures apart.
_GRAPH_CHECK_TAG = "keras_mtl label check: "


class _NumpyOps:
    @staticmethod
    def is_finite(x):
        return np.isfinite(x) if x.dtype.kind == "f" else np.ones(x.shape, dtype=bool)

    @staticmethod
    def is_integer(x):
        if x.dtype.kind != "f":
            return np.ones(x.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.isfinite(x) & (np.floor(x) == x)


class _TensorOps:
    @staticmethod
    def is_finite(x):
        return tf.math.is_finite(x) if x.dtype.is_floating else tf.ones_like(x, dtype=tf.bool)

    @staticmethod
    def is_integer(x):
        if not x.dtype.is_floating:
            return tf.ones_like(x, dtype=tf.bool)
        return tf.math.is_finite(x) & (tf.floor(x) == x)


# === Before training ===


def check_labels(model, x, y, argument):
    """Raises `keras_mtl.errors.LabelError` unless `y` (or the labels of dataset `x`) fit.

    See `MTLModel.check_labels`.
    """
    dataset = None
    if y is None and isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise errors.LabelError(
                f"`{argument}`: the dataset must yield `(inputs, labels)` or "
                "`(inputs, labels, sample_weights)` with labels a dict keyed by task name. "
                f"Received element_spec={spec}"
            )
        dataset, y = x, spec[1]
    if y is None:
        return
    keys_argument = f"{argument} (the labels of the dataset)" if dataset is not None else argument
    by_task = _keyed_by_task(model, y, keys_argument)
    bare = not isinstance(y, dict)
    for task in model.tasks:
        if dataset is not None:
            where = f"the labels {task.name!r} of the dataset `{argument}`"
            _check_spec(task, by_task[task.name], _output_shape(model, task), where)
        else:
            where = f"`{argument}`" if bare else f"`{argument}[{task.name!r}]`"
            _check_array(task, by_task[task.name], _output_shape(model, task), where)
    if dataset is not None:
        for element in dataset.take(1):
            first = _keyed_by_task(model, element[1], keys_argument)
            for task in model.tasks:
                where = f"the labels {task.name!r} of the first batch of the dataset `{argument}`"
                _check_array(task, first[task.name], _output_shape(model, task), where)


def _keyed_by_task(model, y, argument):
    expected = model.task_names
    if not isinstance(y, dict):
        if len(expected) == 1:
            if isinstance(y, (list, tuple)) and len(y) == 1:
                y = y[0]
            return {expected[0]: y}
        raise errors.LabelError(
            f"`{argument}` must be a dict with one entry per task {expected}. Received "
            f"labels of type {type(y).__name__}"
        )
    missing = [name for name in expected if name not in y]
    unknown = [name for name in y if name not in expected]
    if unknown:
        raise errors.LabelError(
            f"`{argument}` names unknown tasks {unknown}; the model's tasks are {expected}. "
            f"Received keys {list(y)}"
        )
    if missing:
        raise errors.LabelError(
            f"`{argument}` lacks labels for tasks {missing}; the model's tasks are "
            f"{expected}. Received keys {list(y)}. For a task without labels here, pass "
            "labels filled with its missing-label marker (-1 for classes, NaN for "
            "regression)."
        )
    return y


def _output_shape(model, task):
    return tuple(model.output[task.name].shape[1:])


def _fail(task, requirement, received, where, hint=""):
    raise errors.LabelError(
        f"Task {task.name!r} ({task.kind}): labels must {requirement}. Received {received} in "
        f"{where}.{hint}"
    )


def _check_shape(task, shape, output_shape, where):
    """Checks the per-example `shape` of labels (None entries: unknown)."""
    expected = task.kind_object.label_shape(task, output_shape)
    if expected is None or _same_shape(shape, expected):
        return
    _fail(
        task,
        f"have shape {_describe_shapes(expected)}",
        f"shape {_format_shape(('n',) + tuple(shape))}",
        where,
        task.kind_object.label_shape_hint(task, shape),
    )


def _same_shape(received, expected):
    # (n,) and (n, 1) are the same labels, as are (n, H, W) and (n, H, W, 1).
    received, expected = _squeeze_last(received), _squeeze_last(expected)
    return len(received) == len(expected) and all(
        r is None or e is None or r == e for r, e in zip(received, expected)
    )


def _squeeze_last(shape):
    shape = tuple(shape)
    return shape[:-1] if shape and shape[-1] == 1 else shape


def _describe_shapes(expected):
    expected = tuple(expected)
    if expected and expected[-1] != 1:
        return _format_shape(("n",) + expected)
    squeezed = _squeeze_last(expected)
    return " or ".join(_format_shape(("n",) + v) for v in (squeezed, squeezed + (1,)))


def _format_shape(shape):
    parts = [str(d) if d is not None else "None" for d in shape]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def _marker_clause(task):
    marker = task.resolved_missing_label
    if marker is None:
        return ""
    return f", or {'NaN' if is_nan_marker(marker) else marker} for a missing label"


def _check_spec(task, spec, output_shape, where):
    """Checks what the `element_spec` of a dataset tells about a task's labels."""
    if not isinstance(spec, tf.TensorSpec):
        return
    if spec.dtype == tf.string:
        _fail(
            task,
            f"be numbers ({task.kind_object.expected_labels(task)})",
            "strings (tf.string)",
            where,
            _class_names_hint(task),
        )
    if spec.shape.rank is not None and spec.shape.rank >= 1:
        _check_shape(task, spec.shape[1:], output_shape, where)


def _check_array(task, values, output_shape, where):
    """Checks a task's labels given as an array (NumPy, tensor, list, pandas)."""
    if isinstance(values, (tf.RaggedTensor, tf.SparseTensor)):
        return
    values = values.numpy() if isinstance(values, tf.Tensor) else np.asarray(values)
    values = _numeric(task, values, where)
    if values.ndim == 0:
        _fail(task, "be an array with one entry per example", "a scalar", where)
    _check_shape(task, values.shape[1:], output_shape, where)
    _check_values(task, values, where)


def _numeric(task, values, where):
    """`values` as a numeric NumPy array; strings and other non-numbers fail."""
    expected = task.kind_object.expected_labels(task)
    strings = values.dtype.kind in "US"
    if values.dtype.kind == "O":
        first = next((v for v in values.ravel() if isinstance(v, (str, bytes))), None)
        strings = first is not None
        if not strings:
            try:
                values = values.astype("float64")
            except (TypeError, ValueError):
                _fail(task, f"be numbers ({expected})", f"objects of type "
                      f"{type(values.ravel()[0]).__name__}", where)
    if strings:
        example = next(iter(values.ravel()), "")
        example = example.item() if isinstance(example, np.generic) else example
        _fail(
            task,
            f"be numbers ({expected})",
            f"strings (dtype {values.dtype}), e.g. {example!r},",
            where,
            _class_names_hint(task),
        )
    if values.dtype.kind == "b":
        return values.astype("int8")
    if values.dtype.kind not in "iuf":
        _fail(task, f"be numbers ({expected})", f"dtype {values.dtype}", where)
    return values


def _class_names_hint(task):
    if task.class_names is None:
        return ""
    return (
        f" Map class names to ids first, e.g. `np.array([task.class_names.index(v) for v in "
        f"labels])` with class_names={task.class_names!r}."
    )


def _check_values(task, values, where):
    kind = task.kind_object
    marker = task.resolved_missing_label
    valid = kind.valid_labels(task, values, _NumpyOps)
    if marker is not None:
        valid |= ~present_labels(values, marker)
    if valid.all():
        return
    invalid = np.flatnonzero(~valid.ravel())
    index = np.unravel_index(invalid[0], values.shape)
    index = int(index[0]) if len(index) == 1 else tuple(int(i) for i in index)
    value = values[index].item()
    hint = ""
    if values.dtype.kind == "f" and np.isnan(values.ravel()[invalid]).any():
        if marker is None:
            hint = (
                " This task masks no labels (missing_label=None); set missing_label='nan' "
                "to skip NaN labels."
            )
        else:
            hint = (
                f" NaN marks a missing label only for tasks whose `missing_label` is NaN (the "
                f"default of regression tasks); this task marks them with {marker}: replace "
                f"NaN by {marker}, e.g. `np.where(np.isnan(y), {marker}, y)`."
            )
    _fail(
        task,
        f"be {kind.expected_labels(task)}{_marker_clause(task)}",
        f"{value!r} at index {index} ({len(invalid)} invalid of {values.size} entries)",
        where,
        hint,
    )


# === In the graph ===


@tf.autograph.experimental.do_not_convert
def checked_in_graph(model, data):
    """`data` (a training step's batch) whose labels are checked during the first steps.

    During the model's first `CHECKED_STEPS` training steps a `tf.debugging.Assert` per task
    fails the step, before any update, on a label its kind does not accept; later steps
    skip the check (one comparison a step). Labels that `fit` checked whole (arrays) are not
    checked again; XLA drops assertions, so a model compiled with `jit_compile=True` is not
    checked here either.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if (
        y is None
        or not getattr(model, GRAPH_CHECK_ATTRIBUTE, True)
        or getattr(model, "optimizer", None) is None
        or model.jit_compile
    ):
        return data
    by_task = y if isinstance(y, dict) else {model.task_names[0]: y}
    names = [
        name
        for name, labels in by_task.items()
        if isinstance(labels, tf.Tensor) and labels.dtype != tf.string
    ]
    if not names:
        return data
    tasks = {task.name: task for task in model.tasks}
    labels = [by_task[name] for name in names]

    def check():
        step = model.optimizer.iterations
        assertions = [_assertion(tasks[name], tensor, step) for name, tensor in zip(names, labels)]
        with tf.control_dependencies(assertions):
            return [tf.identity(tensor) for tensor in labels]

    checked = tf.cond(model.optimizer.iterations < CHECKED_STEPS, check, lambda: labels)
    if isinstance(y, dict):
        y = dict(y, **dict(zip(names, checked)))
    else:
        y = checked[0]
    return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)


def _assertion(task, labels, step):
    if labels.dtype == tf.bool:
        labels = tf.cast(labels, tf.int8)
    valid = task.kind_object.valid_labels(task, labels, _TensorOps)
    if task.resolved_missing_label is not None:
        valid = valid | tf.logical_not(task.kind_object.label_mask(task, labels))
    valid = tf.reshape(valid, [-1])
    first_invalid = tf.gather(tf.reshape(labels, [-1]), tf.argmin(tf.cast(valid, tf.int8)))
    message = tf.strings.join([
        f"{_GRAPH_CHECK_TAG}Task {task.name!r} ({task.kind}): labels must be "
        f"{task.kind_object.expected_labels(task)}{_marker_clause(task)}. Received ",
        tf.strings.format("{}", first_invalid),
        " in the batch of training step ",
        tf.strings.format("{}", step + 1),
        ".",
    ])
    return tf.debugging.Assert(tf.reduce_all(valid), [message])


def graph_check_error(error):
    """The `LabelError` for a failed in-graph check (`tf.errors.InvalidArgumentError`), or None."""
    text = str(error)
    start = text.find(_GRAPH_CHECK_TAG)
    if start < 0:
        return None
    # TensorFlow frames the message as `[...]` in graphs, `b"..."` eagerly, quotes escaped.
    line = text[start + len(_GRAPH_CHECK_TAG):].splitlines()[0].replace("\\'", "'")
    return errors.LabelError(line[:line.rindex(".") + 1])
