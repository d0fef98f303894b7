"""Finding TF Hub modules: handles, the download cache, and fast, typed failures.

`tensorflow_hub` resolves a handle (a tfhub.dev / Kaggle URL, a `gs://` path or a local
SavedModel directory) to a local directory, downloading compressed modules into its cache
(`TFHUB_CACHE_DIR`, by default a temporary directory) at `<cache>/<sha1 of the URL>/`. This
module puts two things around it that `HubLayer` needs:

- a short probe of the host before a download, and a timeout on every read of the download
  (given to each request, not set process-wide), so an offline machine or a stalled server
  fails within seconds instead of hanging;
- `keras_mtl.errors.HubHandleError`, naming the handle and how to work offline, for every way
  a handle can fail (a missing path, a directory without `saved_model.pb`, an unreachable or
  unknown URL, a corrupt module).

A module in the cache loads without the network. To work offline, load it once while online,
or pass the path of a local SavedModel directory (e.g. an extracted module archive).
"""

import hashlib
import os
import threading
import urllib.error
import urllib.request

import keras
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow_hub import compressed_module_resolver

from keras_mtl.errors import HubHandleError

# How long a handle's host may take to answer before it is declared unreachable.
_PROBE_TIMEOUT_SECONDS = 5.0
# How long one read of a download may stall before it is abandoned.
_READ_TIMEOUT_SECONDS = 30.0
_URL_PREFIXES = ("http://", "https://", "gs://")
# Handles written without their scheme, as they are often copied from a browser.
_SCHEMELESS_HOSTS = ("tfhub.dev/", "www.kaggle.com/", "kaggle.com/", "hub.tensorflow.google.cn/")
_SAVED_MODEL_FILES = (
    tf.saved_model.SAVED_MODEL_FILENAME_PB,
    tf.saved_model.SAVED_MODEL_FILENAME_PBTXT,
)


def is_hub_handle(value):
    """Returns True if `value` is a TF Hub / Kaggle URL, a SavedModel directory or a loaded one.

    `build_mtl_model` uses this to decide whether to wrap its `backbone` in a `HubLayer`.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        if _is_remote(_normalize(value)):
            return True
        return _is_saved_model_dir(value)
    if isinstance(value, (keras.layers.Layer, keras.KerasTensor, keras.Variable)):
        return False
    if isinstance(value, (tf.types.experimental.ConcreteFunction,
                          tf.types.experimental.PolymorphicFunction)):
        return True
    # What `tf.saved_model.load` returns always has `signatures`; a tf.Module does not.
    return isinstance(value, tf.__internal__.tracking.AutoTrackable) and hasattr(
        value, "signatures"
    )


# === Resolution ===


def describe(handle):
    return repr(handle) if isinstance(handle, str) else f"<loaded {type(handle).__name__}>"


def _normalize(handle):
    if handle.startswith(_SCHEMELESS_HOSTS):
        return "https://" + handle
    return handle


def _is_remote(handle):
    return handle.startswith(_URL_PREFIXES)


def _is_saved_model_dir(path):
    try:
        return any(tf.io.gfile.exists(os.path.join(path, name)) for name in _SAVED_MODEL_FILES)
    except (tf.errors.OpError, ValueError, TypeError):
        return False


def cache_dir():
    """The directory tensorflow_hub caches downloaded modules in (`TFHUB_CACHE_DIR`)."""
    return hub.resolver.tfhub_cache_dir(use_temp=True)


def _is_cached(url):
    # tensorflow_hub caches a module at <cache dir>/<sha1 of the handle>; a cached module
    # resolves without touching the network.
    module_dir = os.path.join(cache_dir(), hashlib.sha1(url.encode("utf8")).hexdigest())
    try:
        return tf.io.gfile.isdir(module_dir) and bool(tf.io.gfile.listdir(module_dir))
    except tf.errors.OpError:
        return False


def _handle_error(handle, reason):
    return HubHandleError(
        f"Cannot load the TF Hub handle {handle!r}: {reason}. To work offline, download the "
        "module once while online (tensorflow_hub keeps it in the cache directory "
        f"TFHUB_CACHE_DIR, currently {cache_dir()!r}), or pass the path of a local SavedModel "
        "directory (e.g. the extracted .tar.gz of the module) as the handle."
    )


def _with_timeout(fn, timeout):
    """Runs `fn()` in a daemon thread; returns (finished, result, error)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn()
        except BaseException as error:  # noqa: BLE001 -- reported to the caller.
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None, None
    return True, outcome.get("result"), outcome.get("error")


def _probe(url):
    """Returns why `url` cannot be fetched, or None if its server answers.

    A short probe runs before tensorflow_hub downloads, because tensorflow_hub opens URLs
    without a timeout: offline, or behind a firewall that drops packets, it would hang.
    """
    if url.startswith("gs://"):
        finished, exists, error = _with_timeout(
            lambda: tf.io.gfile.exists(url), _PROBE_TIMEOUT_SECONDS
        )
        if not finished:
            return f"Google Cloud Storage did not answer within {_PROBE_TIMEOUT_SECONDS:g} s"
        if error is not None:
            return f"Google Cloud Storage is unreachable ({error})"
        return None if exists else "the object does not exist"

    def head():
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_SECONDS):
            return None

    finished, _, error = _with_timeout(head, _PROBE_TIMEOUT_SECONDS + 1.0)
    if not finished:
        return f"the server did not answer within {_PROBE_TIMEOUT_SECONDS:g} s"
    if isinstance(error, urllib.error.HTTPError):
        if error.code in (404, 410):
            return f"the server says it does not exist (HTTP {error.code})"
        # Other statuses (e.g. 405 for HEAD) still prove the server is reachable.
        return None
    if error is not None:
        return f"the server is unreachable ({getattr(error, 'reason', error)})"
    return None


def resolve(handle):
    """Returns the local directory of `handle`, failing fast when it cannot be had."""
    url = _normalize(handle)
    if not _is_remote(url):
        if not _is_saved_model_dir(handle):
            reason = (
                "the directory has no saved_model.pb"
                if tf.io.gfile.isdir(handle)
                else "it is neither a URL nor an existing directory"
            )
            raise _handle_error(handle, reason)
        return handle
    if not _is_cached(url):
        reason = _probe(url)
        if reason is not None:
            raise _handle_error(handle, reason)
    resolver = _TimedHttpResolver(_READ_TIMEOUT_SECONDS)
    try:
        if resolver.is_supported(url):
            return resolver(url)
        # gs:// archives and `TFHUB_MODEL_LOAD_FORMAT=UNCOMPRESSED` read through tf.io.gfile.
        return hub.resolve(url)
    except Exception as error:  # tensorflow_hub raises many types; all mean the same here.
        raise _handle_error(handle, f"tensorflow_hub could not resolve it ({error})") from error


class _TimedHttpResolver(compressed_module_resolver.HttpCompressedFileResolver):
    """tensorflow_hub's download of compressed modules (cache layout, lock files, extraction),
    with a timeout on each request.

    tensorflow_hub opens URLs without a timeout: a server that answered the probe and then
    stalls would block for ever. The timeout bounds every blocking read of the request's
    socket, so a slow but moving download still completes, and nothing else in the process
    is affected.
    """

    def __init__(self, timeout):
        super().__init__()
        self.timeout = timeout

    def _call_urlopen(self, request):
        return urllib.request.urlopen(request, timeout=self.timeout, context=self._context)


def load(handle, load_options=None):
    if not isinstance(handle, str):
        if not callable(handle) and not hasattr(handle, "signatures"):
            raise HubHandleError(
                "`handle` must be a URL, a SavedModel directory or a loaded SavedModel. "
                f"Received: handle={handle!r}"
            )
        return handle
    path = resolve(handle)
    try:
        return hub.load(path, options=load_options)
    except Exception as error:  # a corrupt or incompatible SavedModel.
        raise _handle_error(handle, f"loading the SavedModel failed ({error})") from error
