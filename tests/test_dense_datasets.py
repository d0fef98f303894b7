"""The offline data sets of dense tasks: multi_shapes and tagged_sentences."""

import numpy as np
import pytest

import keras_mtl
from keras_mtl import errors


def test_multi_shapes_is_deterministic_with_consistent_partial_labels():
    data = keras_mtl.datasets.multi_shapes(seed=3, image_size=16, num_train=12,
                                           num_validation=2, num_test=4)
    again = keras_mtl.datasets.multi_shapes(seed=3, image_size=16, num_train=12,
                                            num_validation=2, num_test=4)
    (x, y), (x_val, _), (x_test, _) = data
    np.testing.assert_array_equal(x, again.train[0])
    np.testing.assert_array_equal(y["depth"], again.train[1]["depth"])
    assert not np.array_equal(x, keras_mtl.datasets.multi_shapes(
        seed=4, image_size=16, num_train=12, num_validation=2, num_test=4).train[0])
    assert (x.shape, x_val.shape, x_test.shape) == ((12, 16, 16, 3), (2, 16, 16, 3),
                                                     (4, 16, 16, 3))
    assert 0.0 <= x.min() and x.max() <= 1.0
    seg, depth, count = y["segmentation"], y["depth"], y["count"]
    assert seg.shape == (12, 16, 16) and depth.shape == (12, 16, 16, 1)
    assert set(np.unique(seg)) <= {-1, 0, 1, 2, 3} and (seg == -1).any() and (seg > 0).any()
    assert np.isnan(depth).any() and np.nanmin(depth) >= 1.0 and np.nanmax(depth) <= 10.0
    # Depth holes only hide labels: elsewhere the depth is the true one.
    true = data.info["true_depth"]["train"]
    present = ~np.isnan(depth)
    np.testing.assert_array_equal(depth[present], true[present])
    # Shapes are nearer than the floor behind them; every counted image has a shape pixel.
    labelled = seg[..., None] >= 0
    assert true[labelled & (seg[..., None] > 0)].mean() < true[labelled & (seg[..., None] == 0)
                                                              ].mean()
    assert set(np.unique(count)) <= set(range(-1, 5))
    model = keras_mtl.build_mtl_model(
        (16, 16, 3), data.tasks, shared_units=2,
        compile=False,
    )
    model.check_labels(x, y)


def test_tagged_sentences_tags_match_the_words():
    data = keras_mtl.datasets.tagged_sentences(seed=1, num_train=50, num_validation=0,
                                               num_test=5, unlabelled_tags=0.2)
    (x, y), _, _ = data
    vocabulary, tag_names = data.info["vocabulary"], data.info["tag_names"]
    assert x.shape == (50, 12) and y["entities"].shape == (50, 12) and y["topic"].shape == (50,)
    unlabelled = (y["entities"] == -1).all(axis=1)
    assert 0 < unlabelled.sum() < 25
    for i, sentence in enumerate(data.info["sentences"]["train"]):
        words = sentence.split()
        assert [vocabulary[t] for t in x[i, :len(words)]] == words
        assert np.all(x[i, len(words):] == 0) and np.all(y["entities"][i, len(words):] == -1)
        if not unlabelled[i]:
            tags = [tag_names[t] for t in y["entities"][i, :len(words)]]
            for word, tag, previous in zip(words, tags, ["O"] + tags):
                if tag.startswith("I-"):
                    assert previous[2:] == tag[2:]
                if word in ("the", "in", "to"):
                    assert tag == "O"
    assert set(np.unique(y["topic"])) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(
        x, keras_mtl.datasets.tagged_sentences(seed=1, num_train=50, num_validation=0,
                                               num_test=5, unlabelled_tags=0.2).train[0])


def test_tagged_sentences_test_names_unseen_in_training_read_as_unknown():
    data = keras_mtl.datasets.tagged_sentences(seed=2, num_train=200, num_validation=0,
                                               num_test=200, new_names=0.5)
    (x, y), _, (xt, yt) = data
    vocabulary = data.info["vocabulary"]
    assert not (x == 1).any()  # every training word is in the vocabulary
    unknown = xt == 1
    assert unknown.any()
    # Only names are new: an unknown token is tagged as an entity, never "O".
    tags = yt["entities"][unknown]
    assert np.all((tags != 0))
    for i, sentence in enumerate(data.info["sentences"]["test"]):
        words = sentence.split()
        assert [w if w in vocabulary else "<unk>" for w in words] == [
            vocabulary[t] for t in xt[i, :len(words)]]
    with pytest.raises(errors.ConfigError, match=r"`new_names` must be in \[0, 1\)"):
        keras_mtl.datasets.tagged_sentences(new_names=1.5)


def test_dense_data_set_arguments_are_checked():
    with pytest.raises(errors.ConfigError, match=r"`image_size`.*at least 16.*image_size=8"):
        keras_mtl.datasets.multi_shapes(image_size=8)
    with pytest.raises(errors.ConfigError, match=r"`missing_depth` must be in \[0, 1\)"):
        keras_mtl.datasets.multi_shapes(missing_depth=1.0)
    with pytest.raises(errors.ConfigError, match=r"`max_length`.*at least 12"):
        keras_mtl.datasets.tagged_sentences(max_length=5)
