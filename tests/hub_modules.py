"""Small TF Hub-format SavedModels, built locally for the HubLayer tests.

Each builder writes a reusable SavedModel (https://www.tensorflow.org/hub/reusable_saved_models)
with `tf.saved_model.save` and returns its directory. The roots are plain trackable objects
that carry the attributes a TF Hub module exposes: `__call__`, `variables`,
`trainable_variables` and `regularization_losses`.
"""

import os

import numpy as np
import tensorflow as tf

DENSE_INPUT_DIM = 3
DENSE_OUTPUT_DIM = 4
BATCH_NORM_DIM = 4
TEXT_EMBEDDING_DIM = 8
TEXT_BUCKETS = 64
SIGNATURE_NAME = "features"
REGULARIZATION_FACTOR = 0.01


def _root():
    # A bare trackable root: unlike tf.Module, it lets us set `variables` and
    # `trainable_variables` as plain attributes, as TF Hub's reusable format expects.
    return tf.train.Checkpoint()


def _initial(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def build_dense(path):
    """x -> (x @ kernel + bias) @ projection.

    `kernel` and `bias` are listed as trainable; `projection` is a `tf.Variable` whose own
    `trainable` flag is True but that the module does not list, so it must stay frozen. The
    names contain `/`, as the names of variables restored from real TF Hub modules do.
    """
    root = _root()
    kernel = tf.Variable(_initial((DENSE_INPUT_DIM, DENSE_OUTPUT_DIM), 0), name="dense/kernel")
    bias = tf.Variable(_initial((DENSE_OUTPUT_DIM,), 1), name="dense/bias")
    projection = tf.Variable(
        _initial((DENSE_OUTPUT_DIM, DENSE_OUTPUT_DIM), 2), name="dense/projection"
    )
    root.kernel, root.bias, root.projection = kernel, bias, projection
    root.variables = [kernel, bias, projection]
    root.trainable_variables = [kernel, bias]

    @tf.function(input_signature=[tf.TensorSpec([None, DENSE_INPUT_DIM], tf.float32)])
    def call(x):
        return tf.matmul(tf.matmul(x, kernel) + bias, projection)

    @tf.function(input_signature=[])
    def kernel_l2():
        return REGULARIZATION_FACTOR * tf.reduce_sum(tf.square(kernel))

    root.__call__ = call
    root.regularization_losses = [kernel_l2]
    tf.saved_model.save(root, path)
    return path


def build_arguments(path):
    """x -> x @ kernel * multiplier + offset, with `multiplier` and `offset` as arguments."""
    root = _root()
    kernel = tf.Variable(_initial((DENSE_INPUT_DIM, DENSE_OUTPUT_DIM), 3), name="kernel")
    root.kernel = kernel
    root.variables = [kernel]
    root.trainable_variables = [kernel]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, DENSE_INPUT_DIM], tf.float32),
            tf.TensorSpec([], tf.float32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def call(x, multiplier, offset):
        return tf.matmul(x, kernel) * multiplier + offset

    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


def build_batch_norm(path, momentum=0.5, epsilon=1e-3):
    """Batch normalization whose `__call__(x, training)` updates moving statistics in training."""
    root = _root()
    gamma = tf.Variable(np.ones(BATCH_NORM_DIM, "float32"), name="bn/gamma")
    beta = tf.Variable(np.zeros(BATCH_NORM_DIM, "float32"), name="bn/beta")
    moving_mean = tf.Variable(np.zeros(BATCH_NORM_DIM, "float32"), trainable=False,
                              name="bn/moving_mean")
    moving_variance = tf.Variable(np.ones(BATCH_NORM_DIM, "float32"), trainable=False,
                                  name="bn/moving_variance")
    root.gamma, root.beta = gamma, beta
    root.moving_mean, root.moving_variance = moving_mean, moving_variance
    root.variables = [gamma, beta, moving_mean, moving_variance]
    root.trainable_variables = [gamma, beta]

    @tf.function
    def call(x, training=False):
        if training:
            mean, variance = tf.nn.moments(x, axes=[0])
            moving_mean.assign(momentum * moving_mean + (1.0 - momentum) * mean)
            moving_variance.assign(momentum * moving_variance + (1.0 - momentum) * variance)
        else:
            mean, variance = moving_mean, moving_variance
        return tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon)

    spec = tf.TensorSpec([None, BATCH_NORM_DIM], tf.float32)
    for training in (True, False):
        call.get_concrete_function(spec, training=training)
    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


def build_text_embedding(path):
    """Sentences (tf.string, shape [batch]) -> mean of hashed token embeddings."""
    root = _root()
    embeddings = tf.Variable(_initial((TEXT_BUCKETS, TEXT_EMBEDDING_DIM), 4), name="embeddings")
    root.embeddings = embeddings
    root.variables = [embeddings]
    root.trainable_variables = [embeddings]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def call(sentences):
        tokens = tf.strings.split(tf.strings.lower(sentences))
        ids = tf.strings.to_hash_bucket_fast(tokens, TEXT_BUCKETS)
        vectors = tf.ragged.map_flat_values(tf.gather, embeddings, ids)
        # An empty sentence has no tokens: its mean is defined as zeros, not NaN.
        return tf.math.divide_no_nan(
            tf.reduce_sum(vectors, axis=1),
            tf.cast(tf.expand_dims(ids.row_lengths(), 1), tf.float32),
        )

    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


def build_signature(path):
    """A module without `__call__` whose named signature returns a dict of two outputs."""
    root = _root()
    kernel = tf.Variable(_initial((DENSE_INPUT_DIM, DENSE_OUTPUT_DIM), 5), name="kernel")
    root.kernel = kernel
    root.variables = [kernel]
    root.trainable_variables = [kernel]

    @tf.function(input_signature=[tf.TensorSpec([None, DENSE_INPUT_DIM], tf.float32, name="x")])
    def features(x):
        hidden = tf.matmul(x, kernel)
        return {"embedding": hidden, "logits": tf.reduce_sum(hidden, axis=1, keepdims=True)}

    root.features = features
    tf.saved_model.save(root, path, signatures={SIGNATURE_NAME: features})
    return path


def build_dict_output(path):
    """A callable module whose `__call__` returns a dict (selected with `output_key`)."""
    root = _root()
    kernel = tf.Variable(_initial((DENSE_INPUT_DIM, DENSE_OUTPUT_DIM), 6), name="kernel")
    root.kernel = kernel
    root.variables = [kernel]
    root.trainable_variables = [kernel]

    @tf.function(input_signature=[tf.TensorSpec([None, DENSE_INPUT_DIM], tf.float32)])
    def call(x):
        hidden = tf.matmul(x, kernel)
        return {"pooled": tf.reduce_mean(hidden, axis=1, keepdims=True), "sequence": hidden}

    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


def build_dict_input(path, length=5, vocabulary=16):
    """A BERT-like encoder: a dict of int32 `ids` and `mask` -> masked mean of embeddings."""
    root = _root()
    embeddings = tf.Variable(_initial((vocabulary, DENSE_OUTPUT_DIM), 7), name="embeddings")
    root.embeddings = embeddings
    root.variables = [embeddings]
    root.trainable_variables = [embeddings]

    @tf.function(
        input_signature=[
            {
                "ids": tf.TensorSpec([None, length], tf.int32),
                "mask": tf.TensorSpec([None, length], tf.int32),
            }
        ]
    )
    def call(inputs):
        mask = tf.cast(inputs["mask"], tf.float32)[:, :, None]
        vectors = tf.gather(embeddings, inputs["ids"]) * mask
        return tf.math.divide_no_nan(tf.reduce_sum(vectors, 1), tf.reduce_sum(mask, 1))

    root.__call__ = call
    tf.saved_model.save(root, path)
    return path


BUILDERS = {
    "dense": build_dense,
    "arguments": build_arguments,
    "batch_norm": build_batch_norm,
    "text": build_text_embedding,
    "signature": build_signature,
    "dict_output": build_dict_output,
    "dict_input": build_dict_input,
}


def build_all(directory):
    """Builds every module under `directory`; returns {kind: path}."""
    return {
        kind: builder(os.path.join(str(directory), kind)) for kind, builder in BUILDERS.items()
    }
