"""MTAN: a shared network with a soft attention mask per task at every stage."""

import math

import keras
from keras import ops

from keras_mtl import errors
from keras_mtl.sharing.base import SharingStrategy, check_positive_int, serialize_activation


@keras.saving.register_keras_serializable(package="keras_mtl")
class MTAN(SharingStrategy):
    """Multi-Task Attention Network: shared stages, each task attending to their features.

    A shared network of `shared_layers` stages runs on the backbone's features (a map
    `(batch, H, W, C)`, a sequence `(batch, L, C)` or a vector): each stage is a convolution
    with `kernel_size` over the spatial or sequence axes (a Dense layer for vectors) and
    `activation`. At every stage `s` each task `t` has an attention module, a 1x1
    convolution with ReLU then a 1x1 convolution with a sigmoid, which reads the stage's
    shared features `f_s` (and, after the first stage, the task's attended features of the
    previous stage `a_t^{s-1}`, concatenated) and gives a mask `m_t^s` of `f_s`'s shape.
    The task's features are `a_t^s = m_t^s * f_s`; each head reads its task's last `a_t`.
    Tasks share every convolution; only the small attention modules are their own, so a
    task selects the shared features it needs, per position and channel.

    The masks start near pass-through: the last attention layer has a zero kernel and a
    bias giving `initial_attention` everywhere (0.95 by default), so training starts from
    hard sharing and learns where to attend. `attention_masks(x)` returns them. Unlike
    the paper, the modules have no batch normalization (tiny CPU batches) and each stage
    keeps the resolution (downsampling belongs to the backbone).

    Args:
        shared_layers: the number of shared stages (0 passes the features through).
        units: the channels of every stage and mask.
        kernel_size: the size of the shared convolutions (1 is a per-position Dense layer).
        initial_attention: the value every mask starts at, in (0, 1).
        dropout: dropout rate after each shared stage.
        activation: activation of the shared stages.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.MTAN(shared_layers=2, units=4, task_names=["seg", "depth"])
    >>> outputs = layer(keras.ops.ones((1, 8, 8, 3)))
    >>> tuple(outputs["seg"].shape)
    (1, 8, 8, 4)
    >>> masks = layer.attention_masks(keras.ops.ones((1, 8, 8, 3)))
    >>> [tuple(m.shape) for m in masks["depth"]], round(float(keras.ops.min(masks["depth"][0])), 3)
    ([(1, 8, 8, 4), (1, 8, 8, 4)], 0.95)

    Reference:
        Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.
    """

    def __init__(
        self,
        shared_layers=2,
        units=64,
        kernel_size=3,
        initial_attention=0.95,
        dropout=0.0,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("shared_layers", shared_layers, minimum=0)
        check_positive_int("units", units)
        check_positive_int("kernel_size", kernel_size)
        if (
            isinstance(initial_attention, bool)
            or not isinstance(initial_attention, (int, float))
            or not 0 < initial_attention < 1
        ):
            raise errors.ConfigError(
                "`initial_attention` must be in (0, 1). Received: "
                f"initial_attention={initial_attention!r}"
            )
        self.shared_layers = shared_layers
        self.units = units
        self.kernel_size = kernel_size
        self.initial_attention = initial_attention
        self._set_layer_options(dropout, activation)

    def build(self, input_shape):
        names = self._require_task_names()
        rank = len(input_shape)
        if rank > 4:
            raise errors.ConfigError(
                f"MTAN works on vectors, sequences and 2-D feature maps; received features "
                f"of shape {tuple(input_shape)}."
            )
        logit = math.log(self.initial_attention / (1.0 - self.initial_attention))
        self.stages, self.attention_hidden, self.attention_masks_layers = [], [], []
        shape = tuple(input_shape)
        for i in range(self.shared_layers):
            stage = self._stage(rank, f"stage_{i}")
            stage.build(shape)
            shape = stage.compute_output_shape(shape)
            attention_in = shape[:-1] + (self.units * (1 if i == 0 else 2),)
            hidden, masks = {}, {}
            for name in names:
                hidden[name] = keras.layers.Dense(
                    self.units, activation="relu", name=f"attention_{name}_{i}_hidden"
                )
                hidden[name].build(attention_in)
                masks[name] = keras.layers.Dense(
                    self.units,
                    activation="sigmoid",
                    kernel_initializer="zeros",
                    bias_initializer=keras.initializers.Constant(logit),
                    name=f"attention_{name}_{i}_mask",
                )
                masks[name].build(shape[:-1] + (self.units,))
            self.stages.append(stage)
            self.attention_hidden.append(hidden)
            self.attention_masks_layers.append(masks)

    def _stage(self, rank, name):
        if rank == 4:
            return keras.layers.Conv2D(self.units, self.kernel_size, padding="same", name=name)
        if rank == 3:
            return keras.layers.Conv1D(self.units, self.kernel_size, padding="same", name=name)
        return keras.layers.Dense(self.units, name=name)

    def _forward(self, inputs, training=None):
        """The attended features and the masks, per task."""
        names = self._require_task_names()
        attended = {name: None for name in names}
        masks = {name: [] for name in names}
        x = inputs
        for i, stage in enumerate(self.stages):
            x = self._activation(stage(x))
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
            for name in names:
                reads = x if i == 0 else ops.concatenate([x, attended[name]], axis=-1)
                mask = self.attention_masks_layers[i][name](self.attention_hidden[i][name](reads))
                masks[name].append(mask)
                attended[name] = mask * x
        if not self.stages:
            attended = {name: inputs for name in names}
        return attended, masks

    def call(self, inputs, training=None):
        return self._forward(inputs, training=training)[0]

    def attention_masks(self, inputs):
        """Each task's masks for `inputs`, one tensor a stage (shaped as its features)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        return self._forward(ops.convert_to_tensor(inputs), training=False)[1]

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.units if self.shared_layers else None)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "shared_layers": self.shared_layers,
                "units": self.units,
                "kernel_size": self.kernel_size,
                "initial_attention": self.initial_attention,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
