"""Helpers for the methods that solve a small problem on the T x T Gram matrix.

The Gram matrix is summed from float32 gradients; the small problems (linear systems,
eigen-decompositions, Newton steps) are solved in float64, where they cost nothing next to
the gradients, and are scale-free: the matrix is divided by its largest diagonal entry.
"""

import tensorflow as tf

# Relative size below which a task's gradient norm counts as zero.
_ZERO_NORM = 1e-10


def normalized_gram(gram, present):
    """`(gram64, active, scale)`: the Gram matrix over the active tasks, divided by `scale`.

    A task is active when it has labels in the batch and a non-zero gradient; rows and
    columns of the other tasks are zero. `scale` is the largest squared gradient norm (1
    when there is none), so the largest diagonal entry of `gram64` is 1.
    """
    gram = tf.cast(gram, "float64")
    diagonal = tf.linalg.diag_part(gram)
    scale = tf.reduce_max(tf.where(tf.convert_to_tensor(present), diagonal, 0.0))
    scale = tf.where(scale > 0, scale, 1.0)
    active = tf.logical_and(present, diagonal > _ZERO_NORM**2 * scale)
    mask = tf.cast(active, "float64")
    gram = gram / scale * mask[:, None] * mask[None, :]
    return gram, active, scale


def identity_on_inactive(gram, active):
    """`gram` with a 1 on the diagonal of every inactive task (so systems stay regular)."""
    return gram + tf.linalg.diag(1.0 - tf.cast(active, gram.dtype))
