"""Dense regression: `units` real values per pixel (depth, surface normals), NaN missing."""

import keras
import numpy as np

from keras_mtl import errors
from keras_mtl.kinds import _dense
from keras_mtl.kinds.base import present_labels
from keras_mtl.kinds.regression import Regression
from keras_mtl.losses import angular_error, cosine_distance, relative_error


class DenseRegression(Regression):
    """`units` values per pixel (1 for depth, 3 for surface normals), labels
    `(H, W, units)`, NaN: missing.

    The head reads the shared feature map as a segmentation head does (3x3 convolutions,
    a 1x1 convolution, bilinear resizing to `output_size` or the input's size). The default
    loss is the L1 error over the labelled entries, as the NYUv2 literature uses for depth;
    metrics: absolute and relative error (`"abs_err"`, `"rel_err"`). With `normalize=True`
    the outputs are unit vectors, a pixel's label is missing when any of its entries is
    NaN, the loss is the cosine distance and the metric the mean angular error in degrees
    (`"angular_error"`), as for surface normals.

    Args (of `keras_mtl.Task`):
        units: values per pixel (default 1).
        output_size: `(height, width)` of the output (and labels); default: the input's.
        normalize: unit-vector outputs (normals).

    Example:

    >>> task = keras_mtl.Task("normals", "dense_regression", units=3, normalize=True)
    >>> model = keras_mtl.build_mtl_model(keras.Input((8, 8, 3)), [task], shared_units=4)
    >>> model.output["normals"].shape, task.build_loss().elementwise
    ((None, 8, 8, 3), 'vector')
    """

    name = "dense_regression"
    options = {"output_size": None, "normalize": False}
    metric_aliases = dict(
        Regression.metric_aliases,
        abs_err=lambda task: keras.metrics.MeanAbsoluteError(name="abs_err"),
        rel_err=lambda task: keras.metrics.MeanMetricWrapper(relative_error, name="rel_err"),
        angular_error=lambda task: keras.metrics.MeanMetricWrapper(
            angular_error, name="angular_error"
        ),
    )
    head_input = "feature_map"

    def validate(self, task):
        super().validate(task)
        _dense.check_output_size(self, task)
        if not isinstance(task.normalize, bool):
            self._fail(task, f"`normalize` must be True or False. Received: "
                             f"normalize={task.normalize!r}")
        if task.normalize and self.output_units(task) < 2:
            self._fail(task, "`normalize=True` makes unit vectors and needs `units` >= 2. "
                             f"Received: units={task.units!r}")

    def default_loss(self, task):
        return cosine_distance if task.normalize else "mean_absolute_error"

    def default_metrics(self, task):
        return ["angular_error"] if task.normalize else ["abs_err", "rel_err"]

    def elementwise(self, task):
        return "vector" if task.normalize else True

    def build_head(self, task, features, input_size=None):
        if task.normalize:
            output = keras.layers.UnitNormalization(name=task.name, dtype="float32")
        else:
            output = keras.layers.Activation(
                self.output_activation(task), name=task.name, dtype="float32"
            )
        return _dense.build_map_head(self, task, features, input_size, output)

    def constant_prediction(self, task, labels):
        if task.normalize or self.activation_name(task) != "linear":
            return None
        units = self.output_units(task)
        values = labels.astype("float64").reshape(len(labels), *labels.shape[1:3], units)
        present = present_labels(values, task.resolved_missing_label)
        if not present.reshape(-1, units).any(axis=0).all():
            raise errors.LabelError(f"Task {task.name!r} has no labels in the data.")
        # The best constant under the L1 loss is the median of each unit's labels.
        flat = values.reshape(-1, units)
        median = np.array([np.median(flat[present.reshape(-1, units)[:, u], u])
                           for u in range(units)])
        return np.broadcast_to(median, values.shape[1:]).copy()
