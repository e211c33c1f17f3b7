"""GlobalMaxPooling2D: gradients by finite differences (float64), ties shared as TensorFlow's
reduce_max gradient, Keras parity of outputs, gradients, shapes, names and configurations."""
import json

import numpy as np
import pytest

from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import _no_ties, check_gradients

CASES = [(dict(), (2, 4, 5, 3)), (dict(keepdims=True), (2, 4, 5, 3)), (dict(data_format="channels_first"), (2, 3, 4, 5))]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


@pytest.mark.parametrize("kwargs, shape", CASES)
def test_global_max_pooling_gradients(kwargs, shape):
    layer = L.GlobalMaxPooling2D(dtype="float64", **kwargs)
    x = _no_ties(shape, np.random.default_rng(1))
    assert layer(x).shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


@pytest.mark.parametrize("kwargs, shape", CASES)
def test_global_max_pooling_matches_keras(tf, keras, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    f_layer, k_layer = L.GlobalMaxPooling2D(**kwargs), keras.layers.GlobalMaxPooling2D(**kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name == "global_max_pooling2d"
    assert_same_config(f_layer, k_layer)
    symbolic = (None, None, None, shape[3]) if "data_format" not in kwargs else (None, shape[1], None, None)
    assert f_layer.compute_output_shape(symbolic) == tuple(k_layer.compute_output_shape(symbolic))


def test_ties_share_the_gradient_as_tensorflow(tf, keras):
    x = np.array([[[1, 3], [3, 0]], [[2, 2], [2, 2]]], dtype=np.float32).reshape(2, 2, 2, 1)
    f_layer = L.GlobalMaxPooling2D()
    assert_matches_keras(tf, f_layer, keras.layers.GlobalMaxPooling2D(), x)
    y, cache = f_layer.forward(x)
    dx, _ = f_layer.backward(cache, np.ones_like(y))
    np.testing.assert_array_equal(dx[..., 0], [[[0, 0.5], [0.5, 0]], [[0.25, 0.25], [0.25, 0.25]]])


def test_alias_config_and_errors():
    assert L.GlobalMaxPool2D is L.GlobalMaxPooling2D
    layer = L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True)
    config = json.loads(json.dumps(layer.get_config()))
    assert L.deserialize({"class_name": "GlobalMaxPooling2D", "config": config}).get_config() == layer.get_config()
    with pytest.raises(ValueError, match="data_format"):
        L.GlobalMaxPooling2D(data_format="NHWC")
    with pytest.raises(ValueError, match='layer "global_max_pooling2d.*expected ndim=4'):
        L.GlobalMaxPooling2D()(np.zeros((2, 3, 4), np.float32))
