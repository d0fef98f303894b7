"""Exporting a multi-task model for serving, and reusing its trained trunk.

`export_saved_model` writes a TensorFlow SavedModel whose `serving_default` signature has
one named output per task (plus post-processed forms) and whose `assets/` hold the task
specifications as JSON, read back by `load_task_specs`. (`keras_mtl.add_task`, which reuses a
trained model's trunk in memory, lives with the model in `keras_mtl.model`.)
"""

import json
import os
import shutil
import tempfile
import warnings

import keras
import tensorflow as tf

from keras_mtl import errors
from keras_mtl.tasks import Task

SERVING_SIGNATURE = "serving_default"
FEATURES_SIGNATURE = "features"
TASK_SPECS_FILE = "keras_mtl_tasks.json"
BACKBONE_FEATURES = "backbone_features"
_SPECS_FORMAT = "keras_mtl.task_specs"
_SPECS_VERSION = 1


# === Export ===


def export_saved_model(
    model, path, *, postprocess=True, overwrite=False, include_features=True
):
    """Exports a multi-task model as a TensorFlow SavedModel for serving.

    The `serving_default` signature takes the model's inputs by name (the names of its
    `keras.Input`s; string inputs stay strings), with a free batch size, and returns a dict
    of named outputs. For every task, `<task>` is the raw output, exactly what
    `model.predict(x)[task]` returns. With `postprocess=True` it also returns:

    - binary and multiclass tasks: `<task>_class_id` (int64, shape `(batch,)`: the predicted
      class; a binary task predicts 1 when its probability exceeds the task's `threshold`),
      `<task>_probability` (float32, `(batch,)`: the probability of the predicted class) and,
      when the task has `class_names`, `<task>_label` (string, `(batch,)`).
    - multilabel tasks: `<task>_multi_hot` (int32, `(batch, num_classes)`: 1 where the
      probability exceeds the task's `threshold`) and, when the task has `class_names`,
      `<task>_labels` (string, `(batch, num_classes)`: the class name where predicted, `""`
      elsewhere).
    - segmentation and token classification tasks: the same outputs as a multiclass task,
      for each pixel (shape `(batch, height, width)`) or token (`(batch, length)`).
    - regression, dense regression and custom tasks: the raw output only.

    A classification head whose output activation is linear is taken to output logits: its
    raw output stays the logits and the post-processed forms use their sigmoid / softmax.

    With `include_features=True`, a model built by `keras_mtl.build_mtl_model` (it has one
    sharing strategy) gets a second signature, `features`, with the same inputs and outputs
    `backbone_features` (what the sharing strategy receives) and `<task>_features` (what
    each task head receives). It lets another model reuse the trunk through
    `keras_mtl.HubLayer` (frozen, or fine-tuned: the SavedModel's `trainable_variables` are
    then the trunk's).

    The task specifications, the inputs and the meaning, dtype and shape of every output
    are written to `assets/keras_mtl_tasks.json`; `keras_mtl.load_task_specs(path)` reads
    the tasks back.

    The export is written to a temporary directory next to `path` and moved into place at
    the end, so a failed export leaves an earlier export at `path` as it was.

    Args:
        model: a `keras_mtl.MTLModel` (or a built `keras.Model` whose outputs are a dict
            keyed by task name and that has a `tasks` attribute).
        path: the directory to write (a local path).
        postprocess: add the post-processed outputs described above.
        overwrite: replace an existing non-empty directory at `path`. Without it such a
            directory raises `keras_mtl.errors.ExportError`.
        include_features: add the `features` signature when the model has a sharing
            strategy.

    Returns:
        The absolute path of the export.

    Example:

    ```python
    tasks = [
        keras_mtl.Task("digit", "multiclass", num_classes=3, class_names=["a", "b", "c"]),
        keras_mtl.Task("odd", "binary"),
    ]
    model = keras_mtl.build_mtl_model((8,), tasks, shared_units=16)
    keras_mtl.export_saved_model(model, "/tmp/mtl/1")
    serve = tf.saved_model.load("/tmp/mtl/1").signatures["serving_default"]
    outputs = serve(inputs=tf.ones((2, 8)))
    outputs["digit_label"], outputs["odd_probability"]
    keras_mtl.load_task_specs("/tmp/mtl/1")  # [Task('digit', ...), Task('odd', ...)]
    ```
    """
    tasks = _check_exportable(model)
    for name, value in (("postprocess", postprocess), ("overwrite", overwrite),
                        ("include_features", include_features)):
        if not isinstance(value, bool):
            raise errors.ExportError(f"`{name}` must be True or False. Received: {name}={value!r}")
    if postprocess:
        for task in tasks:
            _probability_transform(task)
    path = _check_target(path, overwrite)

    input_names, input_specs = _input_specs(model)
    serving_outputs = _serving_output_names(tasks, postprocess)
    _check_unique_outputs(serving_outputs, "serving_default")
    features_model = _features_model(model) if include_features else None

    def serve(inputs):
        outputs = model(_model_inputs(model, input_names, inputs), training=False)
        result = {}
        for task in tasks:
            result.update(_task_outputs(task, outputs[task.name], postprocess))
        return result

    archive = keras.export.ExportArchive()
    # The root's `variables` / `trainable_variables` are what a `HubLayer` reusing the export
    # fine-tunes: the trunk's when there is a `features` signature. Head variables are saved
    # all the same, as `serving_default` uses them.
    archive.track(features_model if features_model is not None else model)
    endpoints = {
        SERVING_SIGNATURE: archive.add_endpoint(
            SERVING_SIGNATURE, serve, input_signature=[input_specs]
        )
    }
    if features_model is not None:

        def features(inputs):
            return features_model(_model_inputs(model, input_names, inputs), training=False)

        endpoints[FEATURES_SIGNATURE] = archive.add_endpoint(
            FEATURES_SIGNATURE, features, input_signature=[input_specs]
        )

    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.export-", dir=parent)
    try:
        archive.write_out(staging, verbose=False)
        specs = _specs_document(model, tasks, input_specs, endpoints, postprocess)
        assets = os.path.join(staging, "assets")
        os.makedirs(assets, exist_ok=True)
        with open(os.path.join(assets, TASK_SPECS_FILE), "w", encoding="utf-8") as f:
            json.dump(specs, f, indent=2)
        _move_into_place(staging, path, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_task_specs(path, *, as_config=False):
    """Reads the task specifications of a SavedModel written by `export_saved_model`.

    Needs no model code: it reads `assets/keras_mtl_tasks.json` in the export directory.

    Args:
        path: the export directory.
        as_config: return the tasks' config dicts instead of `keras_mtl.Task`s (useful when a
            task's custom loss or metric is not importable where the specs are read).

    Returns:
        The list of `keras_mtl.Task` (or of their configs), in the model's order.

    Example:

    ```python
    tasks = keras_mtl.load_task_specs("/tmp/mtl/1")
    {t.name: (t.kind, t.class_names, t.threshold) for t in tasks}
    ```
    """
    document = read_specs_document(path)
    configs = document["tasks"]
    if as_config:
        return configs
    return [Task.from_config(config) for config in configs]


def read_specs_document(path):
    """The whole JSON document of an export: tasks, inputs and the meaning of every output."""
    file = os.path.join(os.fspath(path), "assets", TASK_SPECS_FILE)
    if not os.path.isfile(file):
        raise errors.ExportError(
            f"{os.fspath(path)!r} holds no keras_mtl task specifications (no "
            f"assets/{TASK_SPECS_FILE}); was it written by keras_mtl.export_saved_model?"
        )
    with open(file, encoding="utf-8") as f:
        document = json.load(f)
    if document.get("format") != _SPECS_FORMAT:
        raise errors.ExportError(
            f"{file!r} is not a keras_mtl task specification file. Received format="
            f"{document.get('format')!r}"
        )
    return document


def _check_exportable(model):
    if not isinstance(model, keras.Model):
        raise errors.ExportError(
            "`model` must be a keras_mtl.MTLModel (a keras.Model). Received an object of "
            f"type {type(model).__name__}: {model!r}"
        )
    if not model.built:
        raise errors.ExportError(
            f"The model {model.name!r} has never been built, so it has no inputs or outputs "
            "to export. Build it from `keras.Input`s, as keras_mtl.build_mtl_model does."
        )
    if not getattr(model, "inputs", None) or not getattr(model, "outputs", None):
        raise errors.ExportError(
            f"The model {model.name!r} has no symbolic inputs and outputs (a subclassed "
            "model); export_saved_model needs a functional keras_mtl.MTLModel, as built by "
            "keras_mtl.build_mtl_model."
        )
    tasks = getattr(model, "tasks", None)
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        raise errors.ExportError(
            f"The model {model.name!r} has no `tasks`; export_saved_model needs a "
            "keras_mtl.MTLModel (built by keras_mtl.build_mtl_model)."
        )
    if not isinstance(model.output, dict) or sorted(model.output) != sorted(
        t.name for t in tasks
    ):
        raise errors.ExportError(
            f"The outputs of the model {model.name!r} must be a dict keyed by its task names "
            f"{[t.name for t in tasks]}."
        )
    return list(tasks)


def _check_target(path, overwrite):
    try:
        path = os.fspath(path)
    except TypeError:
        raise errors.ExportError(
            f"`path` must be a directory path (str or os.PathLike). Received: path={path!r}"
        ) from None
    if "://" in path:
        raise errors.ExportError(
            "`path` must be a local directory; export locally, then copy the directory to "
            f"remote storage. Received: path={path!r}"
        )
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    while not os.path.exists(parent):  # ends at the root, which exists
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise errors.ExportError(
            f"Cannot export to {path!r}: {parent!r} is a file, not a directory."
        )
    if os.path.exists(path) and not overwrite:
        if not os.path.isdir(path):
            raise errors.ExportError(
                f"{path!r} exists and is not a directory; pass overwrite=True to replace it."
            )
        if os.listdir(path):
            raise errors.ExportError(
                f"{path!r} exists and is not empty; pass overwrite=True to replace it, or "
                "choose a new directory (e.g. the next version number)."
            )
    return path


def _move_into_place(staging, path, overwrite):
    """Renames `staging` to `path`; an existing `path` is swapped out, then deleted."""
    if not os.path.lexists(path):
        os.rename(staging, path)
        return
    if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
        os.rmdir(path)
        os.rename(staging, path)
        return
    if not overwrite:
        raise errors.ExportError(
            f"{path!r} appeared while exporting and is not empty; pass overwrite=True to "
            "replace it."
        )
    previous = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.previous-",
                                dir=os.path.dirname(path))
    os.rmdir(previous)
    os.rename(path, previous)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(previous, path)
        raise
    if os.path.isdir(previous) and not os.path.islink(previous):
        shutil.rmtree(previous, ignore_errors=True)
    else:
        os.remove(previous)


def _input_specs(model):
    """Input names in the model's order, and a dict of TensorSpecs with a free batch size."""
    names = [tensor.name for tensor in model.inputs]
    if len(set(names)) != len(names):
        raise errors.ExportError(
            f"The inputs of the model {model.name!r} must have distinct names to become the "
            f"signature's input names. Received: {names}"
        )
    unnamed = [name for name in names if name.startswith("keras_tensor")]
    if unnamed:
        warnings.warn(
            f"The model's inputs {unnamed} have names Keras generated, which change from one "
            "session to the next; clients of the export call the signature by these names. "
            "Name them: keras.Input(..., name='image').",
            stacklevel=3,
        )
    specs = {}
    for name, tensor in zip(names, model.inputs):
        shape = (None,) + tuple(tensor.shape[1:])
        specs[name] = tf.TensorSpec(shape, tf.as_dtype(tensor.dtype), name=name)
    return names, specs


def _model_inputs(model, names, inputs):
    """The signature's dict of inputs, arranged the way the model takes them."""
    structure = model.input
    if isinstance(structure, dict):
        by_tensor = {id(t): n for n, t in zip(names, model.inputs)}
        return {key: inputs[by_tensor[id(t)]] for key, t in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [inputs[name] for name in names]
    return inputs[names[0]]


# === Post-processing ===


def _probability_transform(task):
    """None for a task without post-processing, else a function from outputs to probabilities."""
    return task.kind_object.probability_transform(task)


def _serving_output_names(tasks, postprocess):
    """Every output name of `serving_default`, with what each one means."""
    described = []
    for task in tasks:
        described.append((task.name, task.name, f"raw output of the {task.kind} task"))
        if postprocess:
            described.extend(
                (name, task.name, meaning)
                for name, meaning in task.kind_object.describe_export_outputs(task)
            )
    return described


def _check_unique_outputs(described, signature):
    names = [d[0] if isinstance(d, tuple) else d for d in described]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise errors.ExportError(
            f"The output names {duplicates} of the {signature!r} signature are used twice: a "
            "task name collides with a post-processed output name (e.g. tasks 'a' and "
            "'a_class_id'). Rename the task, or pass postprocess=False / "
            "include_features=False."
        )


def _task_outputs(task, output, postprocess):
    outputs = {task.name: output}
    if postprocess:
        outputs.update(task.kind_object.export_outputs(task, output))
    return outputs


# === Features (the trunk, for reuse) ===


def _features_model(model):
    structure = getattr(model, "structure", None)
    if structure is None or structure.sharing_layer is None:
        return None
    names = [BACKBONE_FEATURES] + [f"{name}_features" for name in structure.head_inputs]
    _check_unique_outputs(names, FEATURES_SIGNATURE)
    outputs = dict(zip(names, [structure.backbone_output, *structure.head_inputs.values()]))
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


# === Task specifications ===


def _spec_of(tensor_spec):
    return {
        "dtype": tf.as_dtype(tensor_spec.dtype).name,
        "shape": [None if d is None else int(d) for d in tensor_spec.shape],
    }


def _specs_document(model, tasks, input_specs, endpoints, postprocess):
    import keras_mtl

    def signature_outputs(name):
        return endpoints[name].get_concrete_function().structured_outputs

    serving = signature_outputs(SERVING_SIGNATURE)
    outputs = {}
    for output_name, task_name, meaning in _serving_output_names(tasks, postprocess):
        outputs[output_name] = dict(
            task=task_name, meaning=meaning, **_spec_of(serving[output_name])
        )
    signatures = {SERVING_SIGNATURE: outputs}
    if FEATURES_SIGNATURE in endpoints:
        features = signature_outputs(FEATURES_SIGNATURE)
        signatures[FEATURES_SIGNATURE] = {
            name: dict(
                meaning="features the sharing strategy receives"
                if name == BACKBONE_FEATURES
                else f"features the head of task {name[: -len('_features')]!r} receives",
                **_spec_of(spec),
            )
            for name, spec in features.items()
        }
    return {
        "format": _SPECS_FORMAT,
        "format_version": _SPECS_VERSION,
        "keras_mtl_version": getattr(keras_mtl, "__version__", None),
        "model_name": model.name,
        "inputs": {name: _spec_of(spec) for name, spec in input_specs.items()},
        "signatures": signatures,
        "tasks": [_json_safe_config(task) for task in tasks],
    }


def _json_safe_config(task):
    # A NaN missing-label marker becomes "nan" (same meaning), since NaN is not JSON.
    config = task.get_config()
    marker = config["missing_label"]
    if isinstance(marker, float) and marker != marker:
        config["missing_label"] = "nan"
    return config
