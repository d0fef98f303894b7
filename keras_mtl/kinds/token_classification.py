"""Token classification (tagging): a class per token, labels `(L,)` tag ids, -1 padding."""

import keras

from keras_mtl.kinds.multiclass import Multiclass
from keras_mtl.losses import MacroF1


class TokenClassification(Multiclass):
    """One tag out of `num_classes` per token: softmax per token, masked sparse
    cross-entropy, labels `(L,)` integer tag ids (-1: padding or unlabelled token).

    The head reads the shared sequence `(batch, L, channels)` (not pooled) and applies its
    Dense layers to each token. Metrics over the labelled tokens: token accuracy
    (`"token_accuracy"`) and macro F1 (`"macro_f1"`, over the tags that occur). Exports give
    each token's tag id, probability and, with `class_names`, tag name.

    Example:

    >>> task = keras_mtl.Task("tags", "token_classification", num_classes=5)
    >>> backbone = keras.Sequential([keras.Input((7,), dtype="int32"),
    ...                              keras.layers.Embedding(20, 4)])
    >>> model = keras_mtl.build_mtl_model(backbone, [task], shared_units=4)
    >>> model.output["tags"].shape
    (None, 7, 5)
    """

    name = "token_classification"
    metrics = ("token_accuracy", "macro_f1")
    metric_aliases = {
        "token_accuracy": lambda task: keras.metrics.SparseCategoricalAccuracy(
            name="token_accuracy"
        ),
        "accuracy": lambda task: keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        "macro_f1": lambda task: MacroF1(task.num_classes, name="macro_f1"),
    }
    head_input = "sequence"

    def build_head(self, task, features, input_size=None):
        return super().build_head(task, features)

    def describe_export_outputs(self, task):
        return [(name, f"{meaning} of each token")
                for name, meaning in super().describe_export_outputs(task)]

    def label_shape_hint(self, task, received_shape):
        if len(received_shape) == 2 and received_shape[-1] == task.num_classes:
            return (
                " These look like one-hot tags; give tag ids instead, e.g. "
                "`np.argmax(y, axis=-1)`."
            )
        return ""

    def constant_prediction(self, task, labels):
        return self._constant_from_ids(task, labels.ravel(), labels.shape[1:2])
