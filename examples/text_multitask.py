"""Two text tasks on a TF Hub text-embedding module, frozen then fine-tuned, through its handle.

Offline, the script first writes a small text-embedding SavedModel in the TF Hub format (hashed
word embeddings averaged over a sentence, a stand-in for a module such as nnlm-en-dim50) and
uses its directory as the handle. `keras_mtl.build_mtl_model(handle, tasks)` wraps it in a
`keras_mtl.HubLayer`, reads its input signature (a batch of `tf.string` sentences) and puts a
shared block and one head per task on top. The data is synthetic: each sentence mixes topic
words (task `topic`, 3 classes) and sentiment words (task `positive`, binary) with noise.

    python examples/text_multitask.py [--epochs 6] [--seed 0]

Online, the same script runs on a real module from tfhub.dev / Kaggle; it is downloaded once
into TFHUB_CACHE_DIR (default: a tfhub_modules folder in the temp directory) and later runs
need no network:

    python examples/text_multitask.py --handle https://tfhub.dev/google/nnlm-en-dim50/2

Runs in about 25 seconds on 2 CPU cores (TensorFlow start-up included), offline.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl  # noqa: E402

TOPICS = {
    "sport": "match goal team coach score league player season",
    "food": "recipe soup bread cheese kitchen dinner spice sauce",
    "tech": "software laptop network code chip battery screen app",
}
POSITIVE = "great love excellent wonderful happy enjoyed superb".split()
NEGATIVE = "awful hate terrible boring sad disappointing poor".split()
FILLER = "the a of and it was this with about very really quite".split()


def write_text_embedding_module(path, dim=32, buckets=2048):
    """Writes a TF Hub-format text-embedding SavedModel: sentences -> mean word embedding."""
    root = tf.train.Checkpoint()
    rng = np.random.default_rng(0)
    embeddings = tf.Variable(rng.normal(0.0, 0.3, (buckets, dim)).astype("float32"),
                             name="embeddings")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(sentences):
        ids = tf.strings.to_hash_bucket_fast(tf.strings.split(tf.strings.lower(sentences)),
                                             buckets)
        vectors = tf.ragged.map_flat_values(tf.gather, embeddings, ids)
        return tf.math.divide_no_nan(
            tf.reduce_sum(vectors, axis=1), tf.cast(ids.row_lengths()[:, None], tf.float32)
        )

    # The attributes TF Hub's reusable SavedModel format defines.
    root.embeddings = embeddings
    root.variables = [embeddings]
    root.trainable_variables = [embeddings]
    root.__call__ = embed
    tf.saved_model.save(root, path)
    return path


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    topic_names = sorted(TOPICS)
    topic = rng.integers(0, len(topic_names), n)
    positive = rng.integers(0, 2, n)
    sentences = []
    for t, p in zip(topic, positive):
        words = list(rng.choice(TOPICS[topic_names[t]].split(), 2))
        words += list(rng.choice(POSITIVE if p else NEGATIVE, 1))
        words += list(rng.choice(FILLER, rng.integers(2, 6)))
        rng.shuffle(words)
        sentences.append(" ".join(words))
    x = np.array(sentences, dtype=object)
    return x, {"topic": topic.astype("int32"), "positive": positive[:, None].astype("float32")}


def train(handle, trainable_backbone, data, epochs):
    (x, y), (xt, yt) = data
    tasks = [
        keras_mtl.Task("topic", "multiclass", num_classes=3, class_names=sorted(TOPICS)),
        keras_mtl.Task("positive", "binary"),
    ]
    model = keras_mtl.build_mtl_model(
        handle, tasks, shared_layers=1, shared_units=64, learning_rate=3e-3,
        trainable_backbone=trainable_backbone,
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model, model.evaluate(xt, yt, verbose=0, return_dict=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handle", default=None,
                        help="a tfhub.dev / Kaggle URL or SavedModel directory; by default a "
                             "local stand-in module is written first")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    handle = args.handle or write_text_embedding_module(
        os.path.join(tempfile.mkdtemp(prefix="keras_mtl_"), "text_embedding")
    )
    print(f"backbone handle: {handle}")
    data = make_data(1200, args.seed), make_data(400, args.seed + 1)
    print("example:", data[0][0][0], {k: v[0].tolist() for k, v in data[0][1].items()})

    print(f"\n{'backbone':<12} {'topic acc':>10} {'positive acc':>13} {'seconds':>8}")
    for label, trainable in (("frozen", False), ("fine-tuned", True)):
        start = time.perf_counter()
        model, metrics = train(handle, trainable, data, args.epochs)
        print(f"{label:<12} {metrics['topic_accuracy']:>10.3f} "
              f"{metrics['positive_accuracy']:>13.3f} {time.perf_counter() - start:>8.1f}")

    # The fine-tuned model predicts from raw sentences.
    sentences = np.array(["the team scored a superb goal", "awful soup and bread"], dtype=object)
    predictions = model.predict(sentences, verbose=0)
    for sentence, topic, positive in zip(sentences, predictions["topic"],
                                         predictions["positive"]):
        print(f"{sentence!r}: topic={sorted(TOPICS)[int(np.argmax(topic))]} "
              f"positive={float(positive[0]):.2f}")


if __name__ == "__main__":
    main()
