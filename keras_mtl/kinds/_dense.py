"""What the dense kinds share: the head that keeps a map's spatial axes and upsamples it,
and the checks of `output_size`."""

import keras

from keras_mtl.kinds.base import _is_int


def check_output_size(kind, task):
    """`output_size` is None or two positive integers; stored as a tuple."""
    size = task.output_size
    if size is None:
        return
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(_is_int(d) and d >= 1 for d in size)
    ):
        kind._fail(
            task,
            "`output_size` must be None or two positive integers (height, width). Received: "
            f"output_size={size!r}",
        )
    task.output_size = tuple(int(d) for d in size)


def build_map_head(kind, task, features, input_size, output_layer):
    """Per-pixel head on a `(batch, height, width, channels)` map.

    `head_units` are 3x3 convolutions; a 1x1 convolution gives the output units, which are
    resized (bilinear) to `task.output_size`, else to `input_size` (the model's input),
    when the map has another size; `output_layer` (named `task.name`, float32) comes last.
    """
    x = features
    for i, width in enumerate(task.head_units):
        x = keras.layers.Conv2D(
            width, 3, padding="same", activation="relu", name=f"{task.name}_head_{i}"
        )(x)
        if task.head_dropout:
            x = keras.layers.Dropout(task.head_dropout, name=f"{task.name}_head_dropout_{i}")(x)
    x = keras.layers.Conv2D(kind.output_units(task), 1, name=f"{task.name}_logits")(x)
    size = task.output_size or input_size
    if size is not None and tuple(x.shape[1:3]) != tuple(size):
        x = keras.layers.Resizing(
            size[0], size[1], interpolation="bilinear", name=f"{task.name}_upsample",
            dtype="float32",
        )(x)
    return output_layer(x)
