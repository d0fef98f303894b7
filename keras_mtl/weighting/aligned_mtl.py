"""Aligned-MTL: aligning the principal components of the gradient system (Senushkin et al.)."""

import keras
import tensorflow as tf

from keras_mtl.weighting import _small
from keras_mtl.weighting.base import GradientWeighting

# float32 machine epsilon: eigenvalues below `T * eps * largest` are rounding noise of the
# float32 gradients, as numerical rank is usually decided.
_FLOAT32_EPS = 1.1920929e-07


@keras.saving.register_keras_serializable(package="keras_mtl")
class AlignedMTL(GradientWeighting):
    """Aligned-MTL: the task gradients, made orthogonal with equal norms, then summed.

    With `M = G G^T = V Lambda V^T` (the Gram matrix of the task gradients `G`, one per row)
    and `sigma` the square root of its smallest non-zero eigenvalue, the aligned gradients
    are `B G` with `B = sigma V Lambda^(-1/2) V^T`: their singular values all equal `sigma`
    (condition number 1), so every principal direction of the gradient system contributes
    with the same magnitude and no direction dominates. The update is `1^T B G`, i.e.
    `sum_t alpha_t g_t` with `alpha = B 1`; `alpha` is logged as `weight_<task>`. Linearly
    dependent gradients are handled by the pseudo-inverse (zero eigenvalues dropped). Tasks
    without labels in the batch take no part.

    Args:
        mode: `"exact"` (gradients of the shared parameters) or `"rep"` (gradients of the
            shared representation, the paper's Aligned-MTL-UB). `"rep"` needs every task to
            read the same representation tensor (Hard sharing); with MMoE, PLE, CrossStitch
            or Soft it raises `keras_mtl.errors.ConfigError`.

    Example:

    >>> tasks = [keras_mtl.Task("a", "regression"), keras_mtl.Task("b", "binary")]
    >>> model = keras_mtl.build_mtl_model((8,), tasks, weighting="aligned_mtl")

    Reference:
        Senushkin, Patakin, Kuznetsov and Konushin, "Independent Component Alignment for
        Multi-Task Learning", CVPR 2023.
    """

    def combine(self, state, gram, losses, present):
        alpha = aligned_mtl_coefficients(gram, present)
        return alpha, tf.ones_like(alpha), alpha


def aligned_mtl_coefficients(gram, present):
    """`alpha = B w` with `B = sigma V Lambda^(-1/2) V^T` and `w` one per present task."""
    gram, active, _ = _small.normalized_gram(gram, present)
    eigenvalues, vectors = tf.linalg.eigh(gram)
    kept = eigenvalues > gram.shape[0] * _FLOAT32_EPS * tf.reduce_max(eigenvalues)
    smallest = tf.reduce_min(tf.where(kept, eigenvalues, tf.reduce_max(eigenvalues)))
    inverse_roots = tf.where(kept, tf.math.rsqrt(tf.where(kept, eigenvalues, 1.0)), 0.0)
    mask = tf.cast(active, "float64")
    # B does not change when the Gram matrix is scaled: sigma and Lambda^(-1/2) compensate.
    alpha = tf.sqrt(smallest) * tf.linalg.matvec(
        vectors, inverse_roots * tf.linalg.matvec(vectors, mask, transpose_a=True)
    )
    return tf.cast(alpha * mask, "float32")
