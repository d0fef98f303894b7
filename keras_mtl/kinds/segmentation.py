"""Semantic segmentation: a class per pixel, labels `(H, W)` class ids, -1 ignored."""

import keras

from keras_mtl.kinds import _dense
from keras_mtl.kinds.multiclass import Multiclass


class Segmentation(Multiclass):
    """One class out of `num_classes` per pixel: softmax per pixel, masked sparse
    cross-entropy, labels `(H, W)` integer class ids (-1: ignored pixel).

    The head reads the shared feature map (not pooled): `head_units` 3x3 convolutions, then
    a 1x1 convolution to the class scores, resized (bilinear) to `output_size` or to the
    model's input size when the map is smaller. Metrics: mean IoU and pixel accuracy over
    the labelled pixels (`"mean_iou"`, `"pixel_accuracy"`); mean IoU averages over the
    classes present in the labels or predictions seen.

    Args (of `keras_mtl.Task`):
        num_classes: the number of classes (background included).
        output_size: `(height, width)` of the output (and labels); default: the input's.

    Example:

    >>> task = keras_mtl.Task("seg", "segmentation", num_classes=3, output_size=(8, 8))
    >>> model = keras_mtl.build_mtl_model(keras.Input((4, 4, 2)), [task], shared_units=4)
    >>> model.output["seg"].shape
    (None, 8, 8, 3)
    """

    name = "segmentation"
    options = {"output_size": None}
    metrics = ("mean_iou", "pixel_accuracy")
    metric_aliases = {
        "mean_iou": lambda task: keras.metrics.MeanIoU(
            task.num_classes, sparse_y_pred=False, name="mean_iou", dtype="float32"
        ),
        "pixel_accuracy": lambda task: keras.metrics.SparseCategoricalAccuracy(
            name="pixel_accuracy"
        ),
        "accuracy": lambda task: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    }
    head_input = "feature_map"

    def validate(self, task):
        super().validate(task)
        _dense.check_output_size(self, task)

    def build_head(self, task, features, input_size=None):
        return _dense.build_map_head(
            self, task, features, input_size,
            keras.layers.Activation(self.output_activation(task), name=task.name,
                                    dtype="float32"),
        )

    def describe_export_outputs(self, task):
        return [(name, f"{meaning} of each pixel")
                for name, meaning in super().describe_export_outputs(task)]

    def label_shape_hint(self, task, received_shape):
        if len(received_shape) == 3 and received_shape[-1] == task.num_classes:
            return (
                " These look like one-hot label maps; give class ids instead, e.g. "
                "`np.argmax(y, axis=-1)`."
            )
        return ""

    def constant_prediction(self, task, labels):
        return self._constant_from_ids(task, labels.ravel(), labels.shape[1:3])
