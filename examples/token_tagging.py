"""Token tagging: entity tags per word and a topic per sentence, from one encoder.

Trains a small convolutional text encoder on `keras_mtl.datasets.tagged_sentences()`
(sentences from a small grammar with person, location and organisation names, some
ambiguous: "jordan" and "washington" are people and places) with two tasks: BIO entity
tags per token (padding and unlabelled sentences marked -1) and the sentence's topic.
Prints the test metrics and a few test sentences with their predicted tags.

    python examples/token_tagging.py [--epochs 15] [--sharing hard]

Runs in about a minute on 2 CPU cores, offline.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mtl  # noqa: E402


def encoder(vocabulary_size, length):
    """Token ids -> one 64-channel vector per token (each sees a window of 7 words)."""
    inputs = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, 32)(inputs)
    x = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name="text_encoder")


def tagged(words, tags):
    """`new york` tagged B-LOC I-LOC is shown as `[new york]LOC`."""
    out, span, kind = [], [], None
    for word, tag in zip(words, tags):
        if span and not (tag.startswith("I-") and tag[2:] == kind):
            out.append(f"[{' '.join(span)}]{kind}")
            span, kind = [], None
        if tag.startswith("B-") or (tag.startswith("I-") and not span):
            span, kind = [word], tag[2:]
        elif tag.startswith("I-"):
            span.append(word)
        else:
            out.append(word)
    if span:
        out.append(f"[{' '.join(span)}]{kind}")
    return " ".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--sharing", default="hard")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)

    data = keras_mtl.datasets.tagged_sentences(seed=args.seed)
    (x, y), (xv, yv), (xt, yt) = data
    vocabulary, tag_names = data.info["vocabulary"], data.info["tag_names"]
    print(f"tagged_sentences: {len(x)} train, {len(xv)} validation, {len(xt)} test sentences, "
          f"{len(vocabulary)} words, tags {tag_names}")

    model = keras_mtl.build_mtl_model(
        encoder(len(vocabulary), x.shape[1]), data.tasks, sharing=args.sharing,
        shared_layers=1, shared_units=64, learning_rate=3e-3,
    )
    model.fit(x, y, validation_data=(xv, yv), epochs=args.epochs, batch_size=32, verbose=2)
    scores = model.evaluate(xt, yt, verbose=0, return_dict=True)
    labelled = yt["entities"] >= 0
    majority = np.mean(yt["entities"][labelled] == 0)
    print("\nTest metrics")
    print(f"  entity tags: token accuracy {scores['entities_token_accuracy']:.3f} (all 'O': "
          f"{majority:.3f}), macro F1 {scores['entities_macro_f1']:.3f}")
    print(f"  topic: accuracy {scores['topic_accuracy']:.3f} (chance 0.25)")

    predicted = model.predict(xt[:8], verbose=0)
    topics = data.info["topics"]
    print("\nTest sentences: predicted tags and topic (true ones below when they differ)")
    for i, sentence in enumerate(data.info["sentences"]["test"][:8]):
        words = sentence.split()
        tags = [tag_names[t] for t in np.argmax(predicted["entities"][i], -1)[:len(words)]]
        topic = topics[int(np.argmax(predicted["topic"][i]))]
        print(f"  {tagged(words, tags):70s} -> {topic}")
        true_tags = yt["entities"][i, :len(words)]
        truth = tagged(words, [tag_names[t] for t in true_tags]) if (true_tags >= 0).all() \
            else "(tags unlabelled)"
        true_topic = topics[yt["topic"][i]]
        if truth != tagged(words, tags) or true_topic != topic:
            print(f"    true: {truth:64s} -> {true_topic}")


if __name__ == "__main__":
    main()
