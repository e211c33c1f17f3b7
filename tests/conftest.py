"""Shared fixtures: TensorFlow as an optional peer, and thread-count isolation."""
import os

import pytest

import fastconv as fc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="session")
def tf():
    """TensorFlow when installed (CI installs tensorflow-cpu); the test is skipped otherwise."""
    return pytest.importorskip("tensorflow", reason="TensorFlow is not installed: comparison with tf.nn skipped")


@pytest.fixture(autouse=True)
def _restore_threads():
    yield
    fc.set_num_threads(None)



@pytest.fixture
def keras(tf):
    """Keras on TensorFlow, with fresh layer names on both sides (Keras and fastconv.keras)."""
    import keras as keras_module

    import fastconv.keras as fk
    keras_module.backend.clear_session()
    fk.backend.clear_session()
    return keras_module
