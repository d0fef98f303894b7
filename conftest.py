"""Runs the docstring examples of keras_mtl as tests, with the names they use in scope."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import keras_mtl

    keras.utils.set_random_seed(0)
    doctest_namespace.update(keras=keras, np=np, keras_mtl=keras_mtl)
