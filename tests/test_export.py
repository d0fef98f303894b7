"""Tests of keras_mtl.export: SavedModel export for serving, task specs, reuse, add_task.

Exported signatures are compared with `model.predict` of the same model; post-processed
outputs with NumPy computations on those predictions.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl import errors
from keras_mtl.export import export_saved_model, load_task_specs
from keras_mtl.model import add_task
from keras_mtl.tasks import Task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub_modules  # noqa: E402

HAS_HUB = importlib.util.find_spec("keras_mtl.hub") is not None
needs_hub = pytest.mark.skipif(not HAS_HUB, reason="keras_mtl.hub is not there yet")

INPUT_DIM = 6
ATOL = 1e-5


def _tasks():
    return [
        Task("digit", "multiclass", num_classes=3, class_names=["zero", "one", "two"]),
        Task("odd", "binary", class_names=["even", "odd"], threshold=0.3),
        Task("tags", "multilabel", num_classes=4, class_names=["p", "q", "r", "s"],
             threshold=0.4),
        Task("size", "regression", units=2),
    ]


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, INPUT_DIM)).astype("float32")
    y = {
        "digit": rng.integers(0, 3, size=n),
        "odd": rng.integers(0, 2, size=(n, 1)).astype("float32"),
        "tags": rng.integers(0, 2, size=(n, 4)).astype("float32"),
        "size": rng.normal(size=(n, 2)).astype("float32"),
    }
    return x, y


def _trained_model(sharing="hard", weighting="static", tasks=None, epochs=1):
    # Eager training: tracing a train function costs seconds, one eager step does not.
    x, y = _data()
    model = keras_mtl.build_mtl_model(
        (INPUT_DIM,), tasks or _tasks(), shared_layers=1, shared_units=8,
        sharing=sharing, weighting=weighting, run_eagerly=True,
    )
    if tasks is None:
        model.fit(x, y, batch_size=len(x), epochs=epochs, verbose=0)
    return model


def _serve(path):
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def _numpy(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


def _strategy(model):
    (strategy,) = [
        layer for layer in model.layers if isinstance(layer, keras_mtl.sharing.SharingStrategy)
    ]
    return strategy


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = _trained_model(epochs=3)
    path = tmp_path_factory.mktemp("export") / "model" / "1"
    returned = export_saved_model(model, path)
    return model, path, returned


# === Round trip ===


def _sharing_weighting_cases():
    # Every registered strategy (read from the registry, so strategies written later are
    # covered as they land) with static weighting, and with hard sharing the methods that add
    # variables of their own to the model, one of each form (learned log-variances, learned
    # task weights, loss logits, per-variable moving averages, learned loss scales). Export
    # traces only the inference function, so a method's training state can break it only
    # through the model's variables; the mixed-precision and sharing tests train every method.
    cases = [(name, "static") for name in keras_mtl.sharing.names()]
    cases += [("hard", name) for name in ("uncertainty", "gradnorm", "famo", "db_mtl", "imtl")]
    return cases


@pytest.mark.parametrize("sharing,weighting", _sharing_weighting_cases())
def test_round_trip_equals_predict_for_every_strategy_and_method(sharing, weighting, tmp_path):
    model = _trained_model(sharing=sharing, weighting=weighting)
    export_saved_model(model, tmp_path / "m")
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    serve = loaded.signatures["serving_default"]
    for batch in (1, 64):
        x, _ = _data(batch, seed=batch)
        expected = model.predict(x, verbose=0)
        got = _numpy(serve(inputs=tf.constant(x)))
        for task in model.task_names:
            assert got[task].shape == expected[task].shape
            np.testing.assert_allclose(got[task], expected[task], atol=ATOL)
    features = _numpy(loaded.signatures["features"](inputs=tf.constant(x)))
    assert sorted(features) == sorted(
        ["backbone_features"] + [f"{t}_features" for t in model.task_names]
    )
    np.testing.assert_allclose(features["backbone_features"], x, atol=ATOL)
    # Each task's features are what its head reads: the head applied to them gives its output.
    for task in model.task_names:
        head = model.get_layer(task)
        head_output = keras.ops.convert_to_numpy(head(features[f"{task}_features"]))
        np.testing.assert_allclose(head_output, expected[task], atol=ATOL)


def test_signature_inputs_and_outputs_are_named_with_free_batch(exported):
    model, path, _ = exported
    serve = _serve(path)
    (inputs,) = serve.structured_input_signature[1].values()
    assert list(serve.structured_input_signature[1]) == ["inputs"]
    assert inputs.shape.as_list() == [None, INPUT_DIM] and inputs.dtype == tf.float32
    specs = {k: (v.dtype, v.shape.as_list()) for k, v in serve.structured_outputs.items()}
    assert specs == {
        "digit": (tf.float32, [None, 3]),
        "digit_class_id": (tf.int64, [None]),
        "digit_probability": (tf.float32, [None]),
        "digit_label": (tf.string, [None]),
        "odd": (tf.float32, [None, 1]),
        "odd_class_id": (tf.int64, [None]),
        "odd_probability": (tf.float32, [None]),
        "odd_label": (tf.string, [None]),
        "tags": (tf.float32, [None, 4]),
        "tags_multi_hot": (tf.int32, [None, 4]),
        "tags_labels": (tf.string, [None, 4]),
        "size": (tf.float32, [None, 2]),
    }


def test_postprocessed_outputs_match_numpy(exported):
    model, path, _ = exported
    x, _ = _data(200, seed=3)
    p = model.predict(x, verbose=0)
    got = _numpy(_serve(path)(inputs=tf.constant(x)))

    digit_id = p["digit"].argmax(axis=1)
    np.testing.assert_array_equal(got["digit_class_id"], digit_id)
    np.testing.assert_allclose(got["digit_probability"], p["digit"].max(axis=1), atol=ATOL)
    np.testing.assert_array_equal(
        got["digit_label"].astype(str), np.array(["zero", "one", "two"])[digit_id]
    )

    odd_p = p["odd"][:, 0]
    odd_id = (odd_p > 0.3).astype("int64")
    assert 0 < odd_id.sum() < len(odd_id)  # both classes occur, so the check means something
    np.testing.assert_array_equal(got["odd_class_id"], odd_id)
    np.testing.assert_allclose(
        got["odd_probability"], np.where(odd_id == 1, odd_p, 1 - odd_p), atol=ATOL
    )
    np.testing.assert_array_equal(
        got["odd_label"].astype(str), np.array(["even", "odd"])[odd_id]
    )

    active = p["tags"] > 0.4
    np.testing.assert_array_equal(got["tags_multi_hot"], active.astype("int32"))
    np.testing.assert_array_equal(
        got["tags_labels"].astype(str), np.where(active, np.array(["p", "q", "r", "s"]), "")
    )
    np.testing.assert_allclose(got["size"], p["size"], atol=ATOL)


def test_threshold_decides_binary_class(tmp_path):
    # Same probabilities, two thresholds: the class id flips exactly between them.
    x, _ = _data(300, seed=4)
    keras.utils.set_random_seed(2)
    low = _trained_model(tasks=[Task("odd", "binary", threshold=0.2)])
    high = keras_mtl.build_mtl_model(
        (INPUT_DIM,), [Task("odd", "binary", threshold=0.8)], shared_units=8
    )
    high.set_weights(low.get_weights())
    p = low.predict(x, verbose=0)["odd"][:, 0]
    outputs = {}
    for name, model in (("low", low), ("high", high)):
        path = tmp_path / name
        export_saved_model(model, path)
        outputs[name] = _numpy(_serve(path)(inputs=tf.constant(x)))["odd_class_id"]
    np.testing.assert_array_equal(outputs["low"], (p > 0.2).astype("int64"))
    np.testing.assert_array_equal(outputs["high"], (p > 0.8).astype("int64"))


def test_logit_heads_are_post_processed_through_sigmoid_and_softmax(tmp_path):
    tasks = [
        Task("odd", "binary", activation="linear"),
        Task("digit", "multiclass", num_classes=3, activation="linear"),
    ]
    model = keras_mtl.build_mtl_model((INPUT_DIM,), tasks, shared_units=8, compile=False)
    x, _ = _data(50, seed=5)
    logits = model.predict(x, verbose=0)
    export_saved_model(model, tmp_path / "m")
    got = _numpy(_serve(tmp_path / "m")(inputs=tf.constant(x)))
    np.testing.assert_allclose(got["odd"], logits["odd"], atol=ATOL)
    positive = 1 / (1 + np.exp(-logits["odd"][:, 0]))
    np.testing.assert_array_equal(got["odd_class_id"], (positive > 0.5).astype("int64"))
    np.testing.assert_allclose(
        got["odd_probability"], np.where(positive > 0.5, positive, 1 - positive), atol=ATOL
    )
    softmax = np.exp(logits["digit"]) / np.exp(logits["digit"]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got["digit_probability"], softmax.max(axis=1), atol=ATOL)


def test_unknown_output_activation_cannot_be_post_processed(tmp_path):
    model = keras_mtl.build_mtl_model(
        (INPUT_DIM,), [Task("odd", "binary", activation="relu")], shared_units=8, compile=False
    )
    with pytest.raises(errors.ExportError, match="Task 'odd'.*'relu'.*postprocess=False"):
        export_saved_model(model, tmp_path / "m")
    assert not os.path.exists(tmp_path / "m")
    export_saved_model(model, tmp_path / "m", postprocess=False)
    assert sorted(_serve(tmp_path / "m").structured_outputs) == ["odd"]


def test_dict_inputs_keep_their_names_and_dtypes(tmp_path):
    backbone = {
        "age": keras.Input((1,), name="age"),
        "counts": keras.Input((3,), dtype="int32", name="counts"),
    }
    tasks = [Task("odd", "binary"), Task("size", "regression")]
    model = keras_mtl.build_mtl_model(backbone, tasks, shared_units=8)
    rng = np.random.default_rng(0)
    x = {
        "age": rng.normal(size=(9, 1)).astype("float32"),
        "counts": rng.integers(0, 5, size=(9, 3)).astype("int32"),
    }
    export_saved_model(model, tmp_path / "m")
    serve = _serve(tmp_path / "m")
    specs = serve.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in specs.items()} == {
        "age": (tf.float32, [None, 1]),
        "counts": (tf.int32, [None, 3]),
    }
    got = _numpy(serve(age=tf.constant(x["age"]), counts=tf.constant(x["counts"])))
    expected = model.predict(x, verbose=0)
    for task in ("odd", "size"):
        np.testing.assert_allclose(got[task], expected[task], atol=ATOL)


@pytest.mark.slow
def test_saved_model_cli_lists_the_named_outputs(exported):
    _, path, _ = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [cli] if os.path.exists(cli) else [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        command + ["show", "--dir", str(path), "--all"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    text = result.stdout
    block = text.split("signature_def['serving_default']:")[1].split("signature_def[")[0]
    inputs_part, outputs_part = block.split("following output(s):")
    outputs = dict(re.findall(r"outputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)", outputs_part))
    assert outputs == {
        "digit": "DT_FLOAT", "digit_class_id": "DT_INT64", "digit_probability": "DT_FLOAT",
        "digit_label": "DT_STRING", "odd": "DT_FLOAT", "odd_class_id": "DT_INT64",
        "odd_probability": "DT_FLOAT", "odd_label": "DT_STRING", "tags": "DT_FLOAT",
        "tags_multi_hot": "DT_INT32", "tags_labels": "DT_STRING", "size": "DT_FLOAT",
    }
    assert re.search(r"inputs\['inputs'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, 6\)",
                     inputs_part)
    assert "signature_def['features']:" in text


# === Task specifications ===


def test_task_specs_travel_with_the_model(exported):
    model, path, returned = exported
    assert returned == os.path.abspath(path)
    assert os.path.isfile(os.path.join(path, "assets", "keras_mtl_tasks.json"))
    tasks = load_task_specs(path)
    assert tasks == model.tasks
    assert [t.class_names for t in tasks][:2] == [["zero", "one", "two"], ["even", "odd"]]
    assert [t.threshold for t in tasks] == [0.5, 0.3, 0.4, 0.5]
    configs = load_task_specs(path, as_config=True)
    assert configs == [t.get_config() for t in model.tasks]

    with open(os.path.join(path, "assets", "keras_mtl_tasks.json")) as f:
        document = json.load(f)
    serving = document["signatures"]["serving_default"]
    assert set(serving) == set(_serve(path).structured_outputs)
    assert serving["odd_class_id"] == {
        "task": "odd", "meaning": "predicted class index", "dtype": "int64", "shape": [None]
    }
    assert document["inputs"] == {"inputs": {"dtype": "float32", "shape": [None, INPUT_DIM]}}


def test_load_task_specs_of_a_foreign_directory_names_the_path(tmp_path):
    with pytest.raises(errors.ExportError, match=re.escape(str(tmp_path))):
        load_task_specs(tmp_path)


def test_nan_missing_label_is_written_as_standard_json(tmp_path):
    tasks = [Task("size", "regression", missing_label=float("nan")), Task("odd", "binary")]
    model = keras_mtl.build_mtl_model((INPUT_DIM,), tasks, shared_units=8, compile=False)
    export_saved_model(model, tmp_path / "m")
    with open(tmp_path / "m" / "assets" / "keras_mtl_tasks.json") as f:
        text = f.read()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON: {token}"))
    assert load_task_specs(tmp_path / "m") == tasks


# === Safe by default ===


def test_existing_non_empty_directory_is_not_overwritten(exported, tmp_path):
    model, _, _ = exported
    target = tmp_path / "m"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(errors.ExportError, match=re.escape(str(target)) + ".*overwrite=True"):
        export_saved_model(model, target)
    assert os.listdir(target) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["m"]

    export_saved_model(model, target, overwrite=True)
    assert not (target / "keep.txt").exists()
    assert load_task_specs(target) == model.tasks
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_empty_directory_is_used(exported, tmp_path):
    model, _, _ = exported
    (tmp_path / "m").mkdir()
    export_saved_model(model, tmp_path / "m")
    assert load_task_specs(tmp_path / "m") == model.tasks


def test_failed_export_leaves_the_previous_export_intact(exported, tmp_path, monkeypatch):
    model, _, _ = exported
    target = tmp_path / "m"
    export_saved_model(model, target)
    x, _ = _data(7, seed=6)
    before = _numpy(_serve(target)(inputs=tf.constant(x)))
    files_before = sorted(os.listdir(target))

    changed = _trained_model(tasks=_tasks())  # other weights, same tasks

    def failing_save(obj, export_dir, *args, **kwargs):
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"half-written")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(changed, target, overwrite=True)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["m"]  # no staging directory left behind
    assert sorted(os.listdir(target)) == files_before
    after = _numpy(_serve(target)(inputs=tf.constant(x)))
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_model_never_built_is_a_clear_error(tmp_path):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return {"a": self.dense(x)}

    for model in (Subclassed(), keras.Sequential([keras.layers.Dense(2)])):
        with pytest.raises(errors.ExportError, match="never been built"):
            export_saved_model(model, tmp_path / "m")
    called = Subclassed()
    called(np.zeros((1, 3), "float32"))
    with pytest.raises(errors.ExportError, match="no symbolic inputs.*functional"):
        export_saved_model(called, tmp_path / "m")
    with pytest.raises(errors.ExportError, match="must be a keras_mtl.MTLModel"):
        export_saved_model("model", tmp_path / "m")
    assert not os.path.exists(tmp_path / "m")


def test_output_name_collision_is_refused(tmp_path):
    tasks = [Task("odd", "binary"), Task("odd_class_id", "regression")]
    model = keras_mtl.build_mtl_model((INPUT_DIM,), tasks, shared_units=8, compile=False)
    with pytest.raises(errors.ExportError, match=r"\['odd_class_id'\].*Rename the task"):
        export_saved_model(model, tmp_path / "m")
    export_saved_model(model, tmp_path / "m", postprocess=False, include_features=False)
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    assert sorted(loaded.signatures) == ["serving_default"]
    assert sorted(loaded.signatures["serving_default"].structured_outputs) == [
        "odd", "odd_class_id"
    ]


# === Hub: text inputs and reuse as a backbone ===


@pytest.fixture(scope="module")
def hub_paths(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hub_modules")
    return {"text": hub_modules.build_text_embedding(str(directory / "text"))}


@needs_hub
def test_text_model_on_a_hub_backbone_round_trips_with_string_inputs(hub_paths, tmp_path):
    tasks = [Task("topic", "multiclass", num_classes=3, class_names=["a", "b", "c"]),
             Task("score", "regression")]
    model = keras_mtl.build_mtl_model(
        hub_paths["text"], tasks, shared_units=8, trainable_backbone=True, run_eagerly=True
    )
    texts = np.array(["the cat sat", "a dog ran far", "", "The Cat", "cats and dogs"] * 4,
                     dtype=object)
    y = {"topic": np.arange(len(texts)) % 3, "score": np.linspace(0, 1, len(texts))[:, None]}
    model.fit(texts, y, epochs=1, batch_size=len(texts), verbose=0)
    export_saved_model(model, tmp_path / "m")
    serve = _serve(tmp_path / "m")
    ((name, spec),) = serve.structured_input_signature[1].items()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    got = _numpy(serve(**{name: tf.constant(texts)}))
    expected = model.predict(texts, verbose=0)
    for task in ("topic", "score"):
        np.testing.assert_allclose(got[task], expected[task], atol=ATOL)
    np.testing.assert_array_equal(
        got["topic_label"].astype(str), np.array(["a", "b", "c"])[expected["topic"].argmax(1)]
    )


@needs_hub
def test_exported_model_serves_as_backbone_through_hub_layer(exported, tmp_path):
    from keras_mtl.hub import HubLayer

    model, path, _ = exported
    x, _ = _data(20, seed=7)
    shared = keras.Model(model.input, _strategy(model).output)
    expected = keras.ops.convert_to_numpy(shared(x)[0])

    layer = HubLayer(str(path), signature="features", output_key="digit_features")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=ATOL)

    tasks = [Task("new", "regression")]
    reused = keras_mtl.build_mtl_model(
        str(path), tasks, shared_layers=0, shared_units=8,
        hub_options={"signature": "features", "output_key": "digit_features"},
        learning_rate=0.05, run_eagerly=True,
    )
    (hub_layer,) = [layer for layer in reused.layers if isinstance(layer, HubLayer)]
    assert hub_layer.non_trainable_weights and not hub_layer.trainable_weights
    frozen = [w.numpy().copy() for w in hub_layer.non_trainable_weights]
    head_before = reused.get_layer("new").kernel.numpy().copy()
    reused.fit(x, {"new": np.ones((20, 1), "float32")}, epochs=2, verbose=0)
    assert not np.allclose(reused.get_layer("new").kernel.numpy(), head_before)
    for before, weight in zip(frozen, hub_layer.non_trainable_weights):
        np.testing.assert_array_equal(weight.numpy(), before)

    # Fine-tuning the reused trunk trains exactly the trunk's variables (not the old heads').
    tuned = HubLayer(str(path), trainable=True, signature="features", output_key="digit_features")
    trunk = _strategy(model).trainable_weights
    assert sorted(tuple(w.shape) for w in tuned.trainable_weights) == sorted(
        tuple(w.shape) for w in trunk
    )
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tuned(x))
    gradients = tape.gradient(loss, [w.value for w in tuned.trainable_weights])
    assert all(g is not None for g in gradients)


# === add_task ===


def _missing_labels(n):
    return {
        "digit": np.full((n,), -1),
        "odd": np.full((n, 1), -1.0, "float32"),
        "tags": np.full((n, 4), -1.0, "float32"),
        "size": np.full((n, 2), np.nan, "float32"),
    }


def test_add_task_trains_only_the_new_head_by_default(exported):
    model, _, _ = exported
    weights_before = [w.copy() for w in model.get_weights()]
    x, _ = _data(64, seed=8)
    predictions_before = model.predict(x, verbose=0)

    bigger = add_task(model, Task("new", "regression"), learning_rate=0.05, run_eagerly=True)
    assert bigger.task_names == model.task_names + ["new"]
    new_head = bigger.get_layer("new").kernel.numpy().copy()
    y = dict(_missing_labels(64), new=x[:, :1] * 3.0)
    bigger.fit(x, y, batch_size=64, epochs=3, verbose=0)

    assert not np.allclose(bigger.get_layer("new").kernel.numpy(), new_head)
    after = bigger.predict(x, verbose=0)
    for task in model.task_names:
        np.testing.assert_allclose(after[task], predictions_before[task], atol=ATOL)
    for before, now in zip(weights_before, model.get_weights()):
        np.testing.assert_array_equal(now, before)  # the original model is untouched
    assert _strategy(model).trainable and model.get_layer("digit").trainable


def test_add_task_with_trainable_trunk_moves_a_copy_of_the_trunk(exported):
    model, _, _ = exported
    trunk_before = _strategy(model).get_weights()[0].copy()
    bigger = add_task(
        model, Task("new", "binary"), features_from="backbone", trainable_trunk=True,
        learning_rate=0.05, run_eagerly=True,
    )
    x, _ = _data(64, seed=9)
    y = dict(_missing_labels(64), new=(x[:, :1] > 0).astype("float32"))
    y["size"] = np.zeros((64, 2), "float32")
    bigger.fit(x, y, batch_size=64, epochs=2, verbose=0)
    assert not np.allclose(_strategy(bigger).get_weights()[0], trunk_before)
    np.testing.assert_array_equal(_strategy(model).get_weights()[0], trunk_before)
    # With features_from="backbone" the new head reads the inputs themselves.
    assert bigger.get_layer("new").kernel.shape == (INPUT_DIM, 1)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_add_task_model_saves_and_reloads(exported, tmp_path):
    model, _, _ = exported
    bigger = add_task(model, Task("new", "regression"))
    x, _ = _data(10, seed=10)
    bigger.save(tmp_path / "bigger.keras")
    reloaded = keras.saving.load_model(tmp_path / "bigger.keras")
    assert reloaded.task_names == bigger.task_names
    for task, value in bigger.predict(x, verbose=0).items():
        np.testing.assert_allclose(reloaded.predict(x, verbose=0)[task], value, atol=ATOL)


def test_add_task_arguments_are_checked(exported):
    model, _, _ = exported
    with pytest.raises(errors.TaskSpecError, match="already has a task named 'odd'"):
        add_task(model, Task("odd", "binary"))
    with pytest.raises(errors.ConfigError, match=r"`features_from` must be.*Received: "
                                                 r"features_from='nope'"):
        add_task(model, Task("new", "binary"), features_from="nope")
    with pytest.raises(errors.TaskTypeError, match="`task` must be a keras_mtl.Task"):
        add_task(model, "new")
    with pytest.raises(errors.ConfigError, match="`model` must be a keras_mtl.MTLModel"):
        add_task(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), Task("a", "binary"))


@pytest.mark.skipif("mmoe" not in keras_mtl.sharing.names(), reason="no MMoE strategy yet")
def test_add_task_needs_features_from_when_tasks_have_their_own_features():
    model = _trained_model(sharing="mmoe")
    with pytest.raises(errors.ConfigError, match="features_from"):
        add_task(model, Task("new", "regression"))
    bigger = add_task(model, Task("new", "regression"), features_from="digit")
    x, _ = _data(5, seed=11)
    before = model.predict(x, verbose=0)
    after = bigger.predict(x, verbose=0)
    for task in model.task_names:
        np.testing.assert_allclose(after[task], before[task], atol=ATOL)


def test_a_file_in_the_way_of_the_path_is_reported(tmp_path):
    model = keras_mtl.build_mtl_model((3,), [keras_mtl.Task("a", "binary")], shared_units=4)
    blocker = tmp_path / "models"
    blocker.write_text("not a directory")
    with pytest.raises(keras_mtl.errors.ExportError, match="is a file, not a directory"):
        keras_mtl.export_saved_model(model, blocker / "digits" / "1")


def test_unnamed_inputs_are_warned_about(tmp_path):
    inputs = keras.Input((3,))
    model = keras_mtl.build_mtl_model(inputs, [keras_mtl.Task("a", "binary")], shared_units=4)
    if not model.inputs[0].name.startswith("keras_tensor"):
        pytest.skip(f"this Keras names unnamed inputs {model.inputs[0].name!r}")
    with pytest.warns(UserWarning, match="Name them"):
        keras_mtl.export_saved_model(model, tmp_path / "export")
