"""The machinery shared by the weighting methods: per-task losses, replicas, Gram matrices.

Everything here runs inside `MTLModel.train_step` (traced by `tf.function`, possibly under a
`tf.distribute` strategy). The combination rules (PCGrad, MGDA, CAGrad, ...) see only the
tasks' Gram matrix, so they are the same whether the task gradients are those of the shared
parameters (`mode="exact"`) or of the shared representation (`mode="rep"`).
"""

import keras
import tensorflow as tf

from keras_mtl import errors

_EPSILON = 1e-12


# === Replicas ===


def num_replicas():
    """The number of replicas training in sync (1 without a distribution strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def all_reduce_sum(values):
    """The sum over replicas of `values` (a tensor or a list of tensors); a no-op on one."""
    if num_replicas() == 1:
        return values
    return tf.distribute.get_replica_context().all_reduce("sum", values)


def same_on_replicas(value):
    """`value` as computed on the first replica, on every replica (for random draws)."""
    if num_replicas() == 1:
        return value
    context = tf.distribute.get_replica_context()
    first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), value.dtype)
    return context.all_reduce("sum", value * first)


# === Losses and labels ===


def static_weights(model):
    """The static loss weights given to `compile`, per task (1.0 where none was given)."""
    return [float(w) for w in model._total_loss.loss_weights]


def keyed_by_task(model, value):
    """`value` keyed by task name: a single-task model also takes a bare array (or None)."""
    if value is None or isinstance(value, dict) or len(model.task_names) != 1:
        return value
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return {model.task_names[0]: value}


def task_losses(model, y, y_pred, sample_weight):
    """Each task's unweighted loss (as Keras computes it, scaled for distribution).

    Also records them for the logged `<task>_loss` and `loss`, as a training step does
    (`MTLModel.record_losses`). Returns a list of scalars in the order of
    `model.task_names`. A single-task model may be given bare (not dict) labels and sample
    weights.
    """
    return model.record_losses(y, y_pred, sample_weight)[0]


def additional_loss(model):
    """The sum of the model's added losses (regularizers, `add_loss`) in float32, or None."""
    # As Keras sums them, but in float32: under mixed precision a layer may add float16.
    extra = [keras.ops.sum(keras.ops.cast(loss, "float32")) for loss in model.losses]
    return tf.add_n(extra) if extra else None


def task_presence(model, y):
    """A boolean vector: True for each task with at least one label in the global batch."""
    counts = []
    for task in model.tasks:
        labels = y[task.name] if isinstance(y, dict) else y
        mask = task.kind_object.label_mask(task, tf.convert_to_tensor(labels))
        counts.append(tf.reduce_sum(tf.cast(mask, "float32")))
    counts = all_reduce_sum(tf.stack(counts))
    return counts > 0


# === Gram matrices and combinations ===


def stack_task_gradients(task_grads):
    """Per tensor, the tasks' gradients as the rows of a `(T, size)` matrix.

    `task_grads[t]` is the list of task `t`'s gradient tensors (the same tensors, in the
    same order, for every task). One stacked matrix per tensor turns the Gram matrix and the
    combined update into matrix products, much faster than `T^2` separate inner products;
    no gradient is flattened into one long vector.
    """
    num_tasks = len(task_grads)
    return [
        tf.reshape(tf.stack([task_grads[t][v] for t in range(num_tasks)]), [num_tasks, -1])
        for v in range(len(task_grads[0]))
    ]


def gram_matrix(stacked):
    """The Gram matrix `G[i, j] = sum_v <g_i,v, g_j,v>` from `stack_task_gradients`."""
    return tf.add_n([tf.matmul(rows, rows, transpose_b=True) for rows in stacked])


def pairwise_gram_matrix(task_grads):
    """The Gram matrix when the tasks' tensors differ in shape (one inner product a pair)."""
    num_tasks = len(task_grads)
    entries = {}
    for i in range(num_tasks):
        for j in range(i, num_tasks):
            entries[i, j] = tf.add_n(
                [tf.reduce_sum(a * b) for a, b in zip(task_grads[i], task_grads[j])]
            )
    return tf.stack(
        [
            tf.stack([entries[min(i, j), max(i, j)] for j in range(num_tasks)])
            for i in range(num_tasks)
        ]
    )


def linear_combination(coefficients, stacked, shapes):
    """`sum_t coefficients[t] * g_t`, per tensor, from `stack_task_gradients`."""
    row = tf.cast(coefficients, stacked[0].dtype)[None, :] if stacked else None
    return [
        tf.reshape(tf.matmul(row, rows), shape) for rows, shape in zip(stacked, shapes)
    ]


def min_norm_weights(gram, present, max_iterations=250, tolerance=1e-6):
    """The weights of the min-norm point of the convex hull of the present tasks' gradients.

    Frank-Wolfe with exact line search (Sener and Koltun, 2018, Algorithm 2), on the Gram
    matrix; exact after one step for two tasks. Absent tasks get weight 0. The loop runs
    as one XLA kernel (hundreds of tiny steps would otherwise cost milliseconds).
    """
    return _min_norm_weights_xla(
        tf.cast(gram, "float32"), tf.convert_to_tensor(present), max_iterations, tolerance
    )


@tf.function(jit_compile=True, autograph=False)
def _min_norm_weights_xla(gram, present, max_iterations, tolerance):
    return _min_norm_weights(gram, present, max_iterations, tolerance)


def _min_norm_weights(gram, present, max_iterations, tolerance):
    num_tasks = gram.shape[0]
    mask = tf.cast(present, "float32")
    start = mask / tf.maximum(tf.reduce_sum(mask), 1.0)
    large = tf.reduce_max(tf.abs(gram)) * 10.0 + 1.0

    def step(iteration, weights, change):
        direction = tf.linalg.matvec(gram, weights)
        direction = tf.where(present, direction, large)
        vertex = tf.one_hot(tf.argmin(direction), num_tasks)
        v1v1 = tf.tensordot(weights, direction, 1)
        v1v2 = tf.tensordot(vertex, tf.linalg.matvec(gram, weights), 1)
        v2v2 = tf.tensordot(vertex, tf.linalg.matvec(gram, vertex), 1)
        gamma = _segment_min_norm(v1v1, v1v2, v2v2)
        new_weights = gamma * weights + (1.0 - gamma) * vertex
        change = tf.reduce_sum(tf.abs(new_weights - weights))
        return iteration + 1, new_weights, change

    def not_done(iteration, weights, change):
        return tf.logical_and(iteration < max_iterations, change > tolerance)

    if num_tasks == 1:
        return start
    _, weights, _ = tf.while_loop(
        not_done, step, (tf.constant(0), start, tf.constant(1.0)), maximum_iterations=max_iterations
    )
    return tf.where(tf.reduce_any(present), weights, tf.zeros_like(weights))


def _segment_min_norm(v1v1, v1v2, v2v2):
    """The weight `gamma` on `v1` minimising `||gamma*v1 + (1-gamma)*v2||`."""
    denominator = v1v1 + v2v2 - 2.0 * v1v2
    gamma = (v2v2 - v1v2) / tf.maximum(denominator, _EPSILON)
    return tf.where(denominator > _EPSILON, tf.clip_by_value(gamma, 0.0, 1.0), 1.0)


def adam_update(
    state, name, variable, gradient, learning_rate, mask=None, beta_1=0.9, beta_2=0.999
):
    """One Adam step on a method's own variable, with moments kept in `state`.

    Entries where `mask` is False keep their value.
    """
    m = state.get(f"{name}_m")
    v = state.get(f"{name}_v")
    count = state.get(f"{name}_iterations")
    count.assign_add(1.0)
    m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
    v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
    m_hat = m / (1.0 - tf.pow(beta_1, count))
    v_hat = v / (1.0 - tf.pow(beta_2, count))
    step = learning_rate * m_hat / (tf.sqrt(v_hat) + 1e-7)
    if mask is not None:
        step = tf.where(mask, step, tf.zeros_like(step))
    variable.assign_sub(step)


# === Model structure ===


def sharing_strategy_layer(model):
    """The model's one sharing strategy layer; `ConfigError` unless there is exactly one."""
    structure = model.structure
    if structure is None or structure.sharing_layer is None:
        raise errors.ConfigError(
            "`mode='rep'` needs a model with exactly one sharing strategy layer (as "
            "`keras_mtl.build_mtl_model` makes). Use `mode='exact'` instead."
        )
    return structure.sharing_layer


def shares_one_representation(model):
    """Whether every task's head reads the same tensor (None: unknown).

    True for Hard sharing (one tensor for every task); False when the strategy gives each
    task its own tensor (MMoE, PLE, CrossStitch, Soft). From the model's structure
    (`MTLModel.structure.one_representation`); None when the model does not know its
    structure or it cannot be told, and training then checks the traced tensors.
    """
    structure = model.structure
    return None if structure is None else structure.one_representation


def representation_structure(model):
    """The model's structure, checked to allow gradients of the representation
    (`mode="rep"`): each head reads one tensor and no layer belongs to two heads."""
    structure = model.structure
    if structure is None:
        raise errors.ConfigError(
            "`mode='rep'` needs to know which tensor each task's head reads, and the model "
            f"{model.name!r} does not record it (build it with keras_mtl.build_mtl_model). "
            "Use `mode='exact'` instead."
        )
    for name, tensor in structure.head_inputs.items():
        if keras.tree.is_nested(tensor):
            raise errors.ConfigError(
                f"`mode='rep'`: the head of task {name!r} must read one tensor; it reads "
                f"{len(keras.tree.flatten(tensor))}. Use `mode='exact'` instead."
            )
    if structure.heads_sharing_layers:
        raise errors.ConfigError(
            "`mode='rep'`: layers after the sharing strategy must belong to one task; "
            f"{structure.heads_sharing_layers} are used by several tasks. Use "
            "`mode='exact'` instead."
        )
    return structure
