"""Tests of keras_mtl.HubLayer against TF Hub-format SavedModels built locally.

Expected values are computed by calling a second, independently loaded copy of the same
SavedModel (`tf.saved_model.load`), never through HubLayer.
"""

import hashlib
import http.server
import os
import shutil
import socket
import sys
import tarfile
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtl import hub_resolver
from keras_mtl.errors import HubHandleError
from keras_mtl.hub import HubLayer
from keras_mtl.hub_resolver import is_hub_handle

# The SavedModel builders live next to this file; make them importable however pytest runs.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub_modules  # noqa: E402
from layer_checks import run_layer_checks  # noqa: E402


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    return hub_modules.build_all(tmp_path_factory.mktemp("hub_modules"))


def _x(batch=8, dim=hub_modules.DENSE_INPUT_DIM, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, dim)).astype("float32")


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _model(layer, shape, dtype="float32", head=True):
    inputs = keras.Input(shape, dtype=dtype)
    features = layer(inputs)
    outputs = keras.layers.Dense(1, name="head")(features) if head else features
    return keras.Model(inputs, outputs)


TEXTS = np.array(["the cat sat", "a dog ran far", "cats and dogs", "", "The Cat"], dtype=object)


# === Plain dense module: trainable subset, regularization ===


def test_standard_layer_checks(modules, tmp_path):
    run_layer_checks(HubLayer, {"handle": modules["dense"], "trainable": True}, (4, 3), tmp_path)


def test_frozen_layer_matches_module_and_has_no_trainable_weights(modules):
    layer = HubLayer(modules["dense"])
    reference = tf.saved_model.load(modules["dense"])
    x = _x()
    np.testing.assert_allclose(layer(x), reference(x), rtol=1e-6)
    assert layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 3
    model = _model(layer, (3,))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = _values(layer.resolved_object.variables)
    model.fit(x, np.ones((8, 1)), verbose=0)
    for old, new in zip(before, _values(layer.resolved_object.variables)):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(layer(x), reference(x), rtol=1e-6)


def test_fine_tuning_updates_only_the_listed_trainable_variables(modules):
    layer = HubLayer(modules["dense"], trainable=True)
    module = layer.resolved_object
    reference = tf.saved_model.load(modules["dense"])
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == [
        "dense_kernel",
        "dense_bias",
    ]
    # `projection` is trainable by its own flag but not listed by the module.
    assert [w.path.split("/")[-1] for w in layer.non_trainable_weights] == ["dense_projection"]

    x = _x()
    model = _model(layer, (3,), head=False)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, np.zeros((8, 4)), epochs=3, verbose=0)

    assert not np.allclose(module.kernel.numpy(), reference.kernel.numpy())
    assert not np.allclose(module.bias.numpy(), reference.bias.numpy())
    np.testing.assert_array_equal(module.projection.numpy(), reference.projection.numpy())
    # The restored function reads the trained variables: the layer and the module agree,
    # and both equal the maths on the new values.
    expected = (x @ module.kernel.numpy() + module.bias.numpy()) @ module.projection.numpy()
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(module(x), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(layer(x), reference(x))


def test_trainable_can_be_switched_after_construction(modules):
    layer = HubLayer(modules["dense"], trainable=False)
    assert layer.trainable_weights == []
    layer.trainable = True
    assert len(layer.trainable_weights) == 2
    layer.trainable = False
    assert layer.trainable_weights == []


def test_regularization_losses_join_the_model_losses_when_trainable(modules):
    reference = tf.saved_model.load(modules["dense"])
    expected = float(reference.regularization_losses[0]())
    x, y = _x(), np.zeros((8, 4), "float32")

    trainable = HubLayer(modules["dense"], trainable=True)
    model = _model(trainable, (3,), head=False)
    model(x)
    assert [float(loss) for loss in model.losses] == pytest.approx([expected])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    mse = float(np.mean((reference(x).numpy() - y) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + expected, rel=1e-5)

    frozen = _model(HubLayer(modules["dense"]), (3,), head=False)
    frozen(x)
    assert frozen.losses == []


OPTIMIZERS = [
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Ftrl",
    "Lion",
    "Lamb",
    "Adafactor",
    "Muon",
    "ScheduleFreeAdamW",
]


@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_every_keras_optimizer_trains_the_module_variables(modules, optimizer_name):
    # Dense gradients for the `dense/kernel:0`-named variables, IndexedSlices for the text
    # module's embedding table: each optimizer creates its slots and updates both.
    for kind, inputs in (("dense", _x()), ("text", tf.constant(TEXTS))):
        layer = HubLayer(modules[kind], trainable=True)
        optimizer = getattr(keras.optimizers, optimizer_name)(learning_rate=0.1)
        before = _values(layer.trainable_weights)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(inputs)))
        gradients = tape.gradient(loss, layer.trainable_weights)
        optimizer.apply_gradients(zip(gradients, layer.trainable_weights))
        moved = [not np.allclose(b, w.numpy()) for b, w in zip(before, layer.trainable_weights)]
        assert all(moved), (kind, moved)
        assert all(":" not in v.path for v in optimizer.variables)


# === Extra arguments ===


def test_arguments_are_passed_to_every_call(modules):
    arguments = {"multiplier": 2.5, "offset": -1.0}
    layer = HubLayer(modules["arguments"], arguments=arguments)
    reference = tf.saved_model.load(modules["arguments"])
    x = _x()
    np.testing.assert_allclose(layer(x), reference(x, 2.5, -1.0), rtol=1e-6)
    model = _model(layer, (3,), head=False)
    np.testing.assert_allclose(model.predict(x, verbose=0), reference(x, 2.5, -1.0), rtol=1e-6)
    assert layer.get_config()["arguments"] == arguments


# === Batch normalization: the `training` argument ===


def _bn_batch():
    return np.random.default_rng(1).normal(3.0, 2.0, size=(16, 4)).astype("float32")


def test_batch_norm_gets_training_true_only_when_trainable_and_training(modules):
    x = _bn_batch()
    stats = lambda obj: _values([obj.moving_mean, obj.moving_variance])  # noqa: E731

    trainable = HubLayer(modules["batch_norm"], trainable=True)
    reference = tf.saved_model.load(modules["batch_norm"])
    initial = stats(reference)

    # Inference: moving statistics are used and stay put.
    np.testing.assert_allclose(trainable(x, training=False), reference(x, training=False),
                               rtol=1e-5)
    np.testing.assert_allclose(trainable(x), reference(x, training=False), rtol=1e-5)
    for old, new in zip(initial, stats(trainable.resolved_object)):
        np.testing.assert_array_equal(old, new)

    # Training: batch statistics, and the moving statistics move exactly as the module's do.
    np.testing.assert_allclose(trainable(x, training=True), reference(x, training=True),
                               rtol=1e-5, atol=1e-6)
    for expected, actual in zip(stats(reference), stats(trainable.resolved_object)):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)
    assert not np.allclose(trainable.resolved_object.moving_mean.numpy(), initial[0])

    # A frozen layer never passes training=True, so frozen statistics stay frozen.
    frozen = HubLayer(modules["batch_norm"], trainable=False)
    fresh = tf.saved_model.load(modules["batch_norm"])
    np.testing.assert_allclose(frozen(x, training=True), fresh(x, training=False), rtol=1e-5)
    for old, new in zip(initial, stats(frozen.resolved_object)):
        np.testing.assert_array_equal(old, new)


def test_batch_norm_moving_statistics_update_in_fit_not_in_predict(modules):
    x = _bn_batch()
    layer = HubLayer(modules["batch_norm"], trainable=True)
    module = layer.resolved_object
    model = _model(layer, (4,))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    initial = module.moving_mean.numpy().copy()
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(module.moving_mean.numpy(), initial)
    model.fit(x, np.ones((16, 1)), batch_size=16, verbose=0)
    assert not np.allclose(module.moving_mean.numpy(), initial)
    assert [w.path.split("/")[-1] for w in layer.non_trainable_weights] == [
        "bn_moving_mean",
        "bn_moving_variance",
    ]

    frozen = HubLayer(modules["batch_norm"])
    frozen_model = _model(frozen, (4,))
    frozen_model.compile(keras.optimizers.SGD(0.01), "mse")
    frozen_model.fit(x, np.ones((16, 1)), batch_size=16, verbose=0)
    np.testing.assert_array_equal(frozen.resolved_object.moving_mean.numpy(), np.zeros(4))


# === Text embedding: string inputs ===


def test_text_module_takes_strings_and_fine_tunes(modules):
    layer = HubLayer(modules["text"], trainable=True)
    reference = tf.saved_model.load(modules["text"])
    assert layer.inferred_input() == ((), "string")
    np.testing.assert_allclose(layer(TEXTS), reference(tf.constant(TEXTS)), rtol=1e-6)
    np.testing.assert_allclose(layer(list(TEXTS)), reference(tf.constant(TEXTS)), rtol=1e-6)

    model = _model(layer, (), dtype="string")
    assert tuple(model.layers[1].output.shape) == (None, hub_modules.TEXT_EMBEDDING_DIM)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(TEXTS, np.arange(5, dtype="float32")[:, None], epochs=2, verbose=0)
    assert not np.allclose(layer.resolved_object.embeddings.numpy(),
                           reference.embeddings.numpy())
    np.testing.assert_allclose(layer(TEXTS), layer.resolved_object(tf.constant(TEXTS)),
                               rtol=1e-6)


# === Signatures and dict outputs ===


def test_named_signature_with_output_key_or_whole_dict(modules):
    reference = tf.saved_model.load(modules["signature"])
    expected = reference.signatures[hub_modules.SIGNATURE_NAME](x=tf.constant(_x()))

    logits = HubLayer(modules["signature"], signature="features", output_key="logits")
    assert logits.inferred_input() == ((3,), "float32")
    np.testing.assert_allclose(logits(_x()), expected["logits"], rtol=1e-6)
    assert tuple(logits(keras.Input((3,))).shape) == (None, 1)
    np.testing.assert_allclose(logits({"x": _x()}), expected["logits"], rtol=1e-6)

    both = HubLayer(modules["signature"], signature="features", signature_outputs_as_dict=True)
    symbolic = both(keras.Input((3,)))
    assert {k: tuple(v.shape) for k, v in symbolic.items()} == {
        "embedding": (None, 4),
        "logits": (None, 1),
    }
    eager = both(_x())
    for key in ("embedding", "logits"):
        np.testing.assert_allclose(eager[key], expected[key], rtol=1e-6)


def test_fine_tuning_through_a_signature(modules):
    layer = HubLayer(modules["signature"], trainable=True, signature="features",
                     output_key="embedding")
    model = _model(layer, (3,), head=False)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = layer.resolved_object.kernel.numpy().copy()
    model.fit(_x(), np.zeros((8, 4)), verbose=0)
    assert not np.allclose(layer.resolved_object.kernel.numpy(), before)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"signature": "features"}, "exactly one of `output_key`"),
        ({"signature": "features", "output_key": "logits", "signature_outputs_as_dict": True},
         "exactly one of `output_key`"),
        ({"signature_outputs_as_dict": True}, "only valid with a `signature`"),
        ({"signature": "nope", "output_key": "logits"}, "Available signatures: ['features']"),
        ({}, "has no `__call__`"),
    ],
)
def test_signature_misuse_names_the_problem(modules, options, message):
    with pytest.raises(ValueError) as info:
        HubLayer(modules["signature"], **options)
    assert message in str(info.value)


def test_dict_outputs_are_selected_by_output_key(modules):
    reference = tf.saved_model.load(modules["dict_output"])
    x = _x()
    pooled = HubLayer(modules["dict_output"], output_key="pooled")
    np.testing.assert_allclose(pooled(x), reference(x)["pooled"], rtol=1e-6)
    assert tuple(pooled(keras.Input((3,))).shape) == (None, 1)

    whole = HubLayer(modules["dict_output"])
    assert sorted(whole(x)) == ["pooled", "sequence"]

    with pytest.raises(ValueError, match=r"Available: \['pooled', 'sequence'\]"):
        HubLayer(modules["dict_output"], output_key="missing")
    with pytest.raises(ValueError, match="output_key='missing'"):
        HubLayer(modules["signature"], signature="features", output_key="missing")


def test_dict_inputs_are_converted_to_the_module_dtypes(modules):
    layer = HubLayer(modules["dict_input"], trainable=True)
    reference = tf.saved_model.load(modules["dict_input"])
    assert layer.inferred_input() is None  # a dict: the caller builds the inputs
    rng = np.random.default_rng(0)
    inputs = {"ids": rng.integers(0, 16, (6, 5)), "mask": (rng.random((6, 5)) > 0.3) * 1}
    expected = reference({k: tf.constant(v, tf.int32) for k, v in inputs.items()})
    np.testing.assert_allclose(layer(inputs), expected, rtol=1e-6)  # int64 numpy in

    symbolic = {name: keras.Input((5,), dtype="int32", name=name) for name in ("ids", "mask")}
    model = keras.Model(symbolic, keras.layers.Dense(1)(layer(symbolic)))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(inputs, np.ones((6, 1)), verbose=0)
    assert not np.allclose(layer.resolved_object.embeddings.numpy(), reference.embeddings.numpy())


# === Shapes and input inference ===


def test_output_shape_is_inferred_or_given(modules):
    layer = HubLayer(modules["dense"])
    assert tuple(layer(keras.Input((3,))).shape) == (None, 4)
    assert layer.compute_output_shape((5, 3)) == (5, 4)

    given = HubLayer(modules["dense"], output_shape=(4,))
    assert tuple(given(keras.Input((3,))).shape) == (None, 4)
    assert given.get_config()["output_shape"] == [4]

    with pytest.raises(ValueError, match="output_shape"):
        HubLayer(modules["dense"], output_shape=(5,))(keras.Input((3,)))


def test_inferred_input_of_each_module(modules):
    assert HubLayer(modules["dense"]).inferred_input() == ((3,), "float32")
    assert HubLayer(modules["batch_norm"]).inferred_input() == ((4,), "float32")
    assert HubLayer(modules["text"]).inferred_input() == ((), "string")


# === Serialization and export ===


def test_keras_file_round_trip_restores_fine_tuned_values(modules, tmp_path):
    layer = HubLayer(modules["dense"], trainable=True, name="backbone")
    model = _model(layer, (3,))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    x = _x()
    model.fit(x, np.ones((8, 1)), epochs=3, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)

    loaded = keras.saving.load_model(path)  # safe mode, no custom_objects
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5)
    reloaded_layer = loaded.get_layer("backbone")
    assert isinstance(reloaded_layer, HubLayer)
    # The module was reloaded from its handle, then the fine-tuned values were assigned to it.
    assert reloaded_layer.resolved_object is not layer.resolved_object
    np.testing.assert_allclose(reloaded_layer.resolved_object.kernel.numpy(),
                               layer.resolved_object.kernel.numpy())
    assert not np.allclose(reloaded_layer.resolved_object.kernel.numpy(),
                           tf.saved_model.load(modules["dense"]).kernel.numpy())


def test_get_config_holds_the_init_arguments(modules):
    layer = HubLayer(modules["signature"], trainable=True, signature="features",
                     output_key="logits", load_options={"allow_partial_checkpoint": True})
    config = layer.get_config()
    for key, value in {
        "handle": modules["signature"],
        "trainable": True,
        "signature": "features",
        "output_key": "logits",
        "signature_outputs_as_dict": False,
        "arguments": None,
        "output_shape": None,
        "load_options": {"allow_partial_checkpoint": True},
    }.items():
        assert config[key] == value, key
    assert HubLayer.from_config(config).get_config() == config

    options = HubLayer(
        modules["dense"],
        load_options=tf.saved_model.LoadOptions(experimental_io_device="/job:localhost"),
    )
    assert options.get_config()["load_options"] == {"experimental_io_device": "/job:localhost"}


def test_already_loaded_object_works_but_cannot_be_serialized(modules):
    loaded = tf.saved_model.load(modules["dense"])
    layer = HubLayer(loaded, trainable=True)
    np.testing.assert_allclose(layer(_x()), loaded(_x()), rtol=1e-6)
    assert len(layer.trainable_weights) == 2
    with pytest.raises(NotImplementedError, match="already loaded object"):
        layer.get_config()


def test_exported_model_predicts_the_same(modules, tmp_path):
    layer = HubLayer(modules["text"], trainable=True)
    model = _model(layer, (), dtype="string")
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(TEXTS, np.ones((5, 1)), verbose=0)
    expected = model.predict(TEXTS, verbose=0)

    tf.saved_model.save(model, str(tmp_path / "saved"))
    serving = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    (input_name,) = serving.structured_input_signature[1]
    (output,) = serving(**{input_name: tf.constant(TEXTS)}).values()
    np.testing.assert_allclose(output, expected, rtol=1e-5)

    model.export(str(tmp_path / "exported"), verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(exported.serve(tf.constant(TEXTS)), expected, rtol=1e-5)


# === Handles ===


def _assert_fast_handle_error(handle, seconds=10.0):
    start = time.monotonic()
    with pytest.raises(HubHandleError) as info:
        HubLayer(handle)
    assert time.monotonic() - start < seconds
    message = str(info.value)
    assert repr(handle) in message
    assert "TFHUB_CACHE_DIR" in message
    assert isinstance(info.value, ValueError)
    return message


def test_missing_local_path_fails_fast_naming_the_handle(tmp_path):
    message = _assert_fast_handle_error(str(tmp_path / "no_such_module"))
    assert "neither a URL nor an existing directory" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no saved_model.pb" in _assert_fast_handle_error(str(empty))


class _Handler(http.server.BaseHTTPRequestHandler):
    """A loopback server standing in for a hub host: 404 for `/missing`, a module archive
    for `/archive`, and a stall for any other GET."""

    def do_HEAD(self):
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.end_headers()

    def do_GET(self):
        # What a download in this process sees as the default socket timeout.
        self.server.requests.append((self.path, socket.getdefaulttimeout()))
        if self.path.startswith("/archive"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.server.archive)))
            self.end_headers()
            self.wfile.write(self.server.archive)
            return
        time.sleep(self.server.stall_seconds)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.stall_seconds = 20.0
    server.requests = []
    server.archive = b""
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_unreachable_urls_fail_fast(tmp_path, monkeypatch, loopback_server):
    # Only loopback addresses: the hosts that do not answer are stand-ins made here.
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hub_resolver, "_PROBE_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(hub_resolver, "_READ_TIMEOUT_SECONDS", 1.0)
    message = _assert_fast_handle_error(f"{loopback_server.url}/missing/module/1")
    assert "does not exist (HTTP 404)" in message

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        # Accepts the connection and never answers: the probe gives up.
        message = _assert_fast_handle_error(
            f"http://127.0.0.1:{silent.getsockname()[1]}/module/1", seconds=5.0
        )
        assert "timed out" in message or "did not answer" in message
    finally:
        silent.close()

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert "unreachable" in _assert_fast_handle_error(f"http://127.0.0.1:{port}/module/1")

    # Answers the probe, then stalls the download: the read timeout ends it.
    _assert_fast_handle_error(f"{loopback_server.url}/stalls/module/1", seconds=8.0)
    # The timeout is the request's own: the process-wide default stays unset meanwhile.
    assert [path for path, _ in loopback_server.requests] == [
        "/stalls/module/1?tf-hub-format=compressed"
    ]
    assert [timeout for _, timeout in loopback_server.requests] == [None]
    assert socket.getdefaulttimeout() is None


def test_url_downloads_into_the_cache_once(modules, tmp_path, monkeypatch, loopback_server):
    # A module archive as tfhub.dev serves it: the SavedModel's files at the archive's root.
    archive = tmp_path / "module.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in os.listdir(modules["dense"]):
            tar.add(os.path.join(modules["dense"], name), arcname=name)
    loopback_server.archive = archive.read_bytes()
    cache = tmp_path / "cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    handle = f"{loopback_server.url}/archive/dense/1"
    reference = tf.saved_model.load(modules["dense"])

    layer = HubLayer(handle)
    np.testing.assert_allclose(layer(_x()), reference(_x()), rtol=1e-6)
    assert [path for path, _ in loopback_server.requests] == [
        "/archive/dense/1?tf-hub-format=compressed"
    ]
    assert (cache / hashlib.sha1(handle.encode()).hexdigest() / "saved_model.pb").exists()

    # From the cache, with the host gone.
    loopback_server.shutdown()
    loopback_server.server_close()
    again = HubLayer(handle)
    np.testing.assert_allclose(again(_x()), reference(_x()), rtol=1e-6)
    assert len(loopback_server.requests) == 1


def test_builder_reports_a_missing_module_path_as_a_hub_handle(tmp_path):
    import keras_mtl

    tasks = [keras_mtl.Task("a", "binary")]
    for path in (str(tmp_path / "no_such_module"), "models/my_module"):
        with pytest.raises(HubHandleError, match="TFHUB_CACHE_DIR") as info:
            keras_mtl.build_mtl_model(path, tasks)
        assert repr(path) in str(info.value)


def test_cached_url_loads_offline(modules, tmp_path, monkeypatch):
    handle = "https://tfhub.dev/keras-mtl/dense/1"
    cache = tmp_path / "cache"
    # tensorflow_hub's cache layout: <TFHUB_CACHE_DIR>/<sha1 of the handle>/.
    shutil.copytree(modules["dense"], cache / hashlib.sha1(handle.encode()).hexdigest())
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    layer = HubLayer(handle)
    reference = tf.saved_model.load(modules["dense"])
    np.testing.assert_allclose(layer(_x()), reference(_x()), rtol=1e-6)
    assert layer.get_config()["handle"] == handle


def test_is_hub_handle(modules, tmp_path):
    assert is_hub_handle("https://tfhub.dev/google/nnlm-en-dim50/2")
    assert is_hub_handle("https://www.kaggle.com/models/google/nnlm/TensorFlow2/en-dim50/1")
    assert is_hub_handle("tfhub.dev/google/nnlm-en-dim50/2")
    assert is_hub_handle("gs://bucket/module.tar.gz")
    assert is_hub_handle(modules["dense"])
    assert is_hub_handle(tf.saved_model.load(modules["dense"]))
    assert not is_hub_handle(str(tmp_path))
    assert not is_hub_handle("resnet50")
    assert not is_hub_handle((32, 32, 3))
    assert not is_hub_handle(keras.layers.Dense(2))
    assert not is_hub_handle(keras.Input((3,)))


def test_build_mtl_model_fine_tunes_a_hub_backbone(modules):
    import keras_mtl

    tasks = [
        keras_mtl.Task("topic", "multiclass", num_classes=3),
        keras_mtl.Task("score", "regression"),
    ]
    model = keras_mtl.build_mtl_model(modules["text"], tasks, shared_layers=1, shared_units=8,
                                      trainable_backbone=True)
    (hub_layer,) = [layer for layer in model.layers if isinstance(layer, HubLayer)]
    before = hub_layer.resolved_object.embeddings.numpy().copy()
    model.fit(TEXTS, {"topic": np.array([0, 1, 2, 0, 1]), "score": np.ones((5, 1))}, verbose=0)
    assert not np.allclose(hub_layer.resolved_object.embeddings.numpy(), before)
