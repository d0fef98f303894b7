"""Every use keras_mtl makes of Keras' private attributes, in one place.

Keras does not keep its private attributes from one version to the next. keras_mtl uses
these, for `keras_mtl.HubLayer` only:

- `keras.Variable._initialize_with_initializer` (overridden) and the TensorFlow backend's
  `Variable._initialize`: a Keras variable whose storage *is* an existing `tf.Variable`
  (a SavedModel's own), not a copy, so that training updates what the restored functions
  read. No public API adopts a `tf.Variable`.
- `keras.layers.Layer._convert_input_args` and `_allow_non_tensor_positional_args`: a layer
  whose inputs reach `call` as given (strings stay strings, nothing is cast to the layer's
  compute dtype), because a SavedModel's signature fixes its input dtypes.
- `keras.Model._maybe_symbolic_build` and `_get_metrics_result_or_logs` (overridden by
  `MTLModel`, which calls the functions below): under `MultiWorkerMirroredStrategy`
  Keras 3.15 fails before the first step, and under any `tf.distribute` strategy it reports
  epoch metrics from the last step's per-replica values when the logs hold more than the
  metrics (`weight_<task>`).

Everything else (losses, logged metrics, weighting methods, the model's structure) goes
through Keras' public API (`compute_loss`, `metrics`, `get_config` / `from_config`).
`requirements.txt` pins Keras below its next minor version for the sake of this file: on a
Keras upgrade, run `tests/test_keras_compat.py`, whose tests name the attribute and the
Keras version when one has moved. The functions below also fail loudly, with the same
message, rather than silently copying a variable or converting inputs.
"""

import keras
import tensorflow as tf


class KerasVersionError(RuntimeError):
    """This version of Keras no longer has a private attribute keras_mtl relies on."""


def moved(attribute):
    """The error for a private Keras `attribute` that this Keras no longer has."""
    return KerasVersionError(
        f"keras_mtl relies on the private Keras attribute `{attribute}`, which Keras "
        f"{keras.__version__} does not have (or no longer uses). Install the Keras version "
        "pinned in keras_mtl's requirements.txt, or update keras_mtl/_keras_compat.py."
    )


# === Variables that adopt a tf.Variable ===


class AdoptedVariable(keras.Variable):
    """A Keras variable whose value *is* an existing `tf.Variable`, not a copy of it.

    Keras' TensorFlow backend keeps the storage of a `keras.Variable` in a `tf.Variable`;
    here that storage is the given variable, so `assign` (what optimizers do) changes the
    state every other user of the `tf.Variable` reads, and gradients flow to it through its
    handle.

    Args:
        variable: the `tf.Variable` to adopt.
        trainable: whether Keras trains it.
        name: the Keras variable's name.
    """

    def __init__(self, variable, *, trainable, name):
        self._adopted = variable
        super().__init__(
            initializer=self._initial_value,
            shape=tuple(variable.shape),
            dtype=variable.dtype.name,
            trainable=trainable,
            autocast=False,
            name=name,
        )
        if self.value is not variable:
            raise moved("keras.Variable._initialize_with_initializer")

    def _initial_value(self, shape, dtype):
        return self._adopted

    # Keras creates the storage of a variable with an initializer here.
    def _initialize_with_initializer(self, initializer):
        self._initialize(self._adopted)


# === Layers whose inputs reach `call` as given ===

_INPUT_FLAGS = {"_convert_input_args": False, "_allow_non_tensor_positional_args": True}


def pass_inputs_unchanged(layer):
    """Makes Keras hand `layer.call` its inputs as given: no conversion to tensors of the
    layer's compute dtype, and non-tensor positional arguments allowed."""
    for attribute, value in _INPUT_FLAGS.items():
        if not hasattr(layer, attribute):
            raise moved(f"keras.layers.Layer.{attribute}")
        setattr(layer, attribute, value)


# === tf.distribute: several workers, epoch metrics ===


def is_multi_worker(strategy):
    """Whether `strategy` is a MultiWorkerMirroredStrategy with more than one worker."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)
    )


def logs_for_workers(strategy, logs):
    """The step's logs, each of shape `(1,)` under several workers (else unchanged).

    With several workers Keras 3.15 averages each log over the replicas with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar; one entry per replica
    averages to the same scalar, which is what Keras then reports.
    """
    if not is_multi_worker(strategy):
        return logs
    return {name: tf.reshape(value, [1]) for name, value in logs.items()}


def symbolic_build_arguments(strategy, iterator, data_batch):
    """The arguments for `keras.Model._maybe_symbolic_build`, fit for several workers.

    Keras 3.15 reads the first batch's shapes from `strategy.reduce` of the whole (x, y)
    structure; with several workers `reduce` takes only one tensor, so `fit` and `evaluate`
    fail before the first step. One replica's share of the first batch has the same shapes.
    """
    if not hasattr(keras.Model, "_maybe_symbolic_build"):
        raise moved("keras.Model._maybe_symbolic_build")
    if iterator is None or not is_multi_worker(strategy):
        return iterator, data_batch
    for _, _, batches in iterator:
        data_batch = keras.tree.map_structure(
            lambda value: strategy.experimental_local_results(value)[0]
            if isinstance(value, tf.distribute.DistributedValues)
            else value,
            next(batches),
        )
        break
    return None, data_batch


def epoch_logs(model, logs):
    """The logs `keras.Model._get_metrics_result_or_logs` should return, or None for its own.

    Keras reports the metrics' results over all replicas at the end of an epoch only when the
    step's logs have exactly the metrics' names; `weight_<task>` would make it report the last
    step's per-replica values averaged, wrong for masked labels and AUC.
    """
    if not hasattr(keras.Model, "_get_metrics_result_or_logs"):
        raise moved("keras.Model._get_metrics_result_or_logs")
    metric_logs = model.get_metrics_result()
    if isinstance(logs, dict) and set(metric_logs) <= set(logs):
        return {**logs, **metric_logs}
    return None
