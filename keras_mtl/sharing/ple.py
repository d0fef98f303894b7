"""Progressive Layered Extraction: shared and task-specific experts, level after level."""

import keras
from keras import ops

from keras_mtl import errors
from keras_mtl.sharing.base import (
    ExpertStrategy,
    check_positive_int,
    flatten_leading,
    glorot_uniform,
    restore_leading,
    serialize_activation,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class PLE(ExpertStrategy):
    """Progressive Layered Extraction: task-specific and shared experts, mixed by gates.

    Each level holds `task_experts` experts per task and `shared_experts` shared experts.
    Task `k`'s gate mixes its own experts and the shared ones; except at the last level, a
    shared gate mixes all the level's experts into the input of the next level's shared
    experts, while task `k`'s mixture feeds its own experts there. With `num_levels=1` this
    is the Customized Gate Control (CGC) of the same paper. Every expert is a stack of
    `expert_layers` Dense layers of `expert_units` units; each group of experts is computed
    by one einsum per layer; the gates start uniform (zero weights), as in `MMoE`.
    `gate_weights(features)` returns each task's gate for a batch.

    Args:
        num_levels: number of extraction levels (1 gives CGC).
        shared_experts: number of shared experts per level.
        task_experts: number of experts of each task per level.
        expert_layers: depth of each expert (`shared_layers` in `build_mtl_model`).
        expert_units: width of each expert layer (`shared_units` in `build_mtl_model`).
        dropout: dropout rate after each expert layer.
        activation: activation of the expert layers.
        task_names: the names of the tasks (set by `build_mtl_model`).

    Example:

    >>> layer = keras_mtl.sharing.PLE(num_levels=2, expert_units=8, task_names=["a", "b"])
    >>> outputs = layer(keras.ops.ones((2, 5)))
    >>> tuple(outputs["a"].shape), layer.expert_names()["a"]
    ((2, 8), ['a/expert_0', 'shared/expert_0'])

    Reference:
        Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL)
        Model for Personalized Recommendations", RecSys 2020.
    """

    def __init__(
        self,
        num_levels=2,
        shared_experts=1,
        task_experts=1,
        expert_layers=1,
        expert_units=16,
        dropout=0.0,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_levels", num_levels)
        check_positive_int("shared_experts", shared_experts)
        check_positive_int("task_experts", task_experts)
        check_positive_int("expert_layers", expert_layers)
        check_positive_int("expert_units", expert_units)
        self.num_levels = num_levels
        self.shared_experts = shared_experts
        self.task_experts = task_experts
        self.expert_layers = expert_layers
        self.expert_units = expert_units
        self._set_layer_options(dropout, activation)

    def build(self, input_shape):
        num_tasks = len(self._require_task_names())
        units = self.expert_units
        self.levels = []
        for level in range(self.num_levels):
            input_dim = input_shape[-1] if level == 0 else units
            weights = {"task_kernels": [], "task_biases": [], "shared_kernels": [],
                       "shared_biases": []}
            for depth in range(self.expert_layers):
                fan_in = input_dim if depth == 0 else units
                weights["task_kernels"].append(self.add_weight(
                    shape=(num_tasks, self.task_experts, fan_in, units),
                    initializer=glorot_uniform(fan_in, units),
                    name=f"level_{level}_task_expert_kernel_{depth}",
                ))
                weights["task_biases"].append(self.add_weight(
                    shape=(num_tasks, self.task_experts, units),
                    initializer="zeros",
                    name=f"level_{level}_task_expert_bias_{depth}",
                ))
                weights["shared_kernels"].append(self.add_weight(
                    shape=(self.shared_experts, fan_in, units),
                    initializer=glorot_uniform(fan_in, units),
                    name=f"level_{level}_shared_expert_kernel_{depth}",
                ))
                weights["shared_biases"].append(self.add_weight(
                    shape=(self.shared_experts, units),
                    initializer="zeros",
                    name=f"level_{level}_shared_expert_bias_{depth}",
                ))
            task_choices = self.task_experts + self.shared_experts
            weights["task_gate_kernel"] = self.add_weight(
                shape=(num_tasks, input_dim, task_choices),
                initializer="zeros",
                name=f"level_{level}_task_gate_kernel",
            )
            weights["task_gate_bias"] = self.add_weight(
                shape=(num_tasks, task_choices),
                initializer="zeros",
                name=f"level_{level}_task_gate_bias",
            )
            if level < self.num_levels - 1:
                shared_choices = num_tasks * self.task_experts + self.shared_experts
                weights["shared_gate_kernel"] = self.add_weight(
                    shape=(input_dim, shared_choices),
                    initializer="zeros",
                    name=f"level_{level}_shared_gate_kernel",
                )
                weights["shared_gate_bias"] = self.add_weight(
                    shape=(shared_choices,),
                    initializer="zeros",
                    name=f"level_{level}_shared_gate_bias",
                )
            self.levels.append(weights)

    def _expert_activation(self, x, training):
        x = self._activation(x)
        if self.dropout_layer is not None:
            x = self.dropout_layer(x, training=training)
        return x

    def _level(self, level, task_inputs, shared_inputs, training):
        """One level. `task_inputs` is `(batch, tasks, in)`, or `None` at the first level."""
        weights = self.levels[level]
        num_tasks = len(self.task_names)
        if task_inputs is None:
            tasks = ops.einsum("bi,teiu->bteu", shared_inputs, weights["task_kernels"][0])
            gate_logits = ops.einsum("bi,tig->btg", shared_inputs, weights["task_gate_kernel"])
        else:
            tasks = ops.einsum("bti,teiu->bteu", task_inputs, weights["task_kernels"][0])
            gate_logits = ops.einsum("bti,tig->btg", task_inputs, weights["task_gate_kernel"])
        tasks = self._expert_activation(tasks + weights["task_biases"][0], training)
        shared = ops.einsum("bi,eiu->beu", shared_inputs, weights["shared_kernels"][0])
        shared = self._expert_activation(shared + weights["shared_biases"][0], training)
        for depth in range(1, self.expert_layers):
            tasks = ops.einsum("btei,teiu->bteu", tasks, weights["task_kernels"][depth])
            tasks = self._expert_activation(tasks + weights["task_biases"][depth], training)
            shared = ops.einsum("bei,eiu->beu", shared, weights["shared_kernels"][depth])
            shared = self._expert_activation(shared + weights["shared_biases"][depth], training)

        task_gates = ops.softmax(gate_logits + weights["task_gate_bias"], axis=-1)
        shared_for_tasks = ops.repeat(ops.expand_dims(shared, 1), num_tasks, axis=1)
        choices = ops.concatenate([tasks, shared_for_tasks], axis=2)
        task_outputs = ops.einsum("btg,btgu->btu", task_gates, choices)

        shared_output = None
        if "shared_gate_kernel" in weights:
            shared_gate = ops.softmax(
                ops.einsum("bi,ig->bg", shared_inputs, weights["shared_gate_kernel"])
                + weights["shared_gate_bias"],
                axis=-1,
            )
            all_experts = ops.concatenate(
                [tasks[:, t] for t in range(num_tasks)] + [shared], axis=1
            )
            shared_output = ops.einsum("bg,bgu->bu", shared_gate, all_experts)
        return task_outputs, shared_output, task_gates

    def _forward(self, inputs, training=None, last_level=None):
        last_level = self.num_levels - 1 if last_level is None else last_level
        task_inputs, shared_inputs = None, inputs
        for level in range(last_level + 1):
            task_inputs, shared_inputs, gates = self._level(
                level, task_inputs, shared_inputs, training
            )
        return task_inputs, gates

    def call(self, inputs, training=None):
        inputs, leading = flatten_leading(inputs)
        outputs, _ = self._forward(inputs, training=training)
        names = self._require_task_names()
        return restore_leading({name: outputs[:, t, :] for t, name in enumerate(names)}, leading)

    def gate_weights(self, features, level=-1):
        """Each task's gate at `level` (default the last) for a batch of features.

        Returns a dict task -> `(batch, task_experts + shared_experts)`: the task's own
        experts first, then the shared ones (see `expert_names()`).
        """
        if isinstance(level, bool) or not isinstance(level, int) or not (
            -self.num_levels <= level < self.num_levels
        ):
            raise errors.ConfigError(
                f"`level` must be an integer in [{-self.num_levels}, {self.num_levels}). "
                f"Received: level={level!r}"
            )
        features = ops.convert_to_tensor(features, dtype=self.compute_dtype)
        if not self.built:
            self.build(tuple(features.shape))
        flat, leading = flatten_leading(features)
        _, gates = self._forward(flat, training=False, last_level=level % self.num_levels)
        names = self._require_task_names()
        return restore_leading({name: gates[:, t, :] for t, name in enumerate(names)}, leading)

    def expert_names(self):
        """The name of each task's gate columns, in order: its own experts, then the shared."""
        shared = [f"shared/expert_{i}" for i in range(self.shared_experts)]
        return {
            name: [f"{name}/expert_{i}" for i in range(self.task_experts)] + shared
            for name in self._require_task_names()
        }

    def compute_output_shape(self, input_shape):
        return self._output_shapes(input_shape, self.expert_units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_levels": self.num_levels,
                "shared_experts": self.shared_experts,
                "task_experts": self.task_experts,
                "expert_layers": self.expert_layers,
                "expert_units": self.expert_units,
                "dropout": self.dropout,
                "activation": serialize_activation(self.activation),
            }
        )
        return config
