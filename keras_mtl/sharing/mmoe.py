"""Multi-gate Mixture-of-Experts: shared experts, one softmax gate per task."""

import keras
from keras import ops

from keras_mtl.sharing.base import (
    ExpertStrategy,
    check_positive_int,
    flatten_leading,
    glorot_uniform,
    restore_leading,
    serialize_activation,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MMoE(ExpertStrategy):
    """Multi-gate Mixture-of-Experts: each task mixes shared experts with its own gate.

    Every expert is a stack of `expert_layers` Dense layers of `expert_units` units. Task `k`
    reads `f_k(x) = sum_i softmax(W_k x + b_k)_i * e_i(x)`. The gates start uniform (zero
    weights); each expert starts as a Glorot-initialised `Dense` layer would. All experts are
    computed together (one matmul per layer over kernels stacked as `(in, num_experts, units)`
    for the first layer and `(num_experts, units, units)` for deeper ones), as are the gates.
    `gate_weights(features)` returns each task's gate for a batch; see also
    `keras_mtl.sharing.gate_weights`, which reads them from a whole model.

    Args:
        num_experts: number of shared experts.
        expert_layers: depth of each expert (`shared_layers` in `build_mtl_model`).
        expert_units: width of each expert layer (`shared_units` in `build_mtl_model`).
        dropout: dropout rate after each expert layer.
        activation: activation of the expert layers.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.MMoE(num_experts=4, expert_units=8, task_names=["a", "b"])
    >>> outputs = layer(keras.ops.ones((2, 5)))
    >>> tuple(outputs["a"].shape), tuple(layer.gate_weights(keras.ops.ones((2, 5)))["b"].shape)
    ((2, 8), (2, 4))

    Reference:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
        Mixture-of-Experts", KDD 2018.
    """

    def __init__(
        self,
        num_experts=8,
        expert_layers=1,
        expert_units=16,
        dropout=0.0,
        activation="relu",
        **kwargs,
    ):
        if kwargs.get("name") is None:
            # Keras would derive "m_mo_e" from the class name.
            uid = keras.backend.get_uid("mmoe")
            kwargs["name"] = "mmoe" if uid == 1 else f"mmoe_{uid - 1}"
        super().__init__(**kwargs)
        check_positive_int("num_experts", num_experts)
        check_positive_int("expert_layers", expert_layers)
        check_positive_int("expert_units", expert_units)
        self.num_experts = num_experts
        self.expert_layers = expert_layers
        self.expert_units = expert_units
        self._set_layer_options(dropout, activation)

    def build(self, input_shape):
        task_names = self._require_task_names()
        input_dim = input_shape[-1]
        units, experts = self.expert_units, self.num_experts
        # The first kernel is (in, experts, units), so all experts are one matmul on the
        # inputs; deeper ones are (experts, units, units), one batched matmul.
        self.expert_kernels = [
            self.add_weight(
                shape=(input_dim, experts, units) if i == 0 else (experts, units, units),
                initializer=glorot_uniform(input_dim if i == 0 else units, units),
                name=f"expert_kernel_{i}",
            )
            for i in range(self.expert_layers)
        ]
        self.expert_biases = [
            self.add_weight(shape=(experts, units), initializer="zeros", name=f"expert_bias_{i}")
            for i in range(self.expert_layers)
        ]
        # Zero gates start every task on the mean of the experts; random gates start it on
        # random, input-dependent mixtures, which measured a long plateau on synthetic_tasks.
        self.gate_kernel = self.add_weight(
            shape=(input_dim, len(task_names), experts), initializer="zeros", name="gate_kernel"
        )
        self.gate_bias = self.add_weight(
            shape=(len(task_names), self.num_experts), initializer="zeros", name="gate_bias"
        )

    def _experts(self, inputs, training=None):
        """All experts' outputs, `(batch, experts, units)`."""
        # Plain matmuls: TensorFlow's einsum is slower here, forward and backward.
        kernel = self.expert_kernels[0]
        x = ops.matmul(inputs, ops.reshape(kernel, (kernel.shape[0], -1)))
        x = ops.reshape(x, (-1, self.num_experts, self.expert_units)) + self.expert_biases[0]
        x = self._expert_activation(x, training)
        for kernel, bias in zip(self.expert_kernels[1:], self.expert_biases[1:]):
            x = ops.transpose(ops.matmul(ops.transpose(x, (1, 0, 2)), kernel), (1, 0, 2))
            x = self._expert_activation(x + bias, training)
        return x

    def _expert_activation(self, x, training):
        x = self._activation(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return x

    def _gates(self, inputs):
        num_tasks = len(self.task_names)
        kernel = ops.reshape(self.gate_kernel, (-1, num_tasks * self.num_experts))
        logits = ops.matmul(inputs, kernel)
        logits = ops.reshape(logits, (-1, num_tasks, self.num_experts)) + self.gate_bias
        return ops.softmax(logits, axis=-1)

    def call(self, inputs, training=None):
        inputs, leading = flatten_leading(inputs)
        experts = self._experts(inputs, training=training)
        mixed = ops.matmul(self._gates(inputs), experts)  # (batch, tasks, units)
        names = self._require_task_names()
        return restore_leading({name: mixed[:, t, :] for t, name in enumerate(names)}, leading)

    def gate_weights(self, features):
        """Each task's gate for a batch of features: a dict task -> `(batch, num_experts)`."""
        features = ops.convert_to_tensor(features, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(features.shape))
        flat, leading = flatten_leading(features)
        gates = self._gates(flat)
        names = self._require_task_names()
        return restore_leading({name: gates[:, t, :] for t, name in enumerate(names)}, leading)

    def expert_names(self):
        """The name of each gate column, in order: `expert_0`, `expert_1`, ..."""
        return {
            name: [f"expert_{i}" for i in range(self.num_experts)]
            for name in self._require_task_names()
        }

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.expert_units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_experts": self.num_experts,
                "expert_layers": self.expert_layers,
                "expert_units": self.expert_units,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
