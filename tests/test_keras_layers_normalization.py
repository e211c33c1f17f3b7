"""LayerNormalization, GroupNormalization and UnitNormalization: gradients by finite
differences (float64), Keras parity of outputs, gradients of inputs and weights, weight shapes,
names, configurations, and one error per validation branch."""
import json

import numpy as np
import pytest

from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

CASES = [
    ("LayerNormalization", dict(), (3, 5)),
    ("LayerNormalization", dict(axis=[1, 2], epsilon=1e-5), (2, 3, 4, 2)),
    ("LayerNormalization", dict(axis=1, center=False), (2, 4, 3)),
    ("LayerNormalization", dict(scale=False), (2, 3, 4)),
    ("LayerNormalization", dict(rms_scaling=True), (2, 3, 4)),
    ("GroupNormalization", dict(groups=2), (2, 3, 3, 4)),
    ("GroupNormalization", dict(groups=3, axis=1), (2, 6, 2, 3)),
    ("GroupNormalization", dict(groups=-1, center=False), (2, 3, 4)),
    ("GroupNormalization", dict(groups=1, scale=False), (2, 2, 2, 4)),
    ("UnitNormalization", dict(), (3, 5)),
    ("UnitNormalization", dict(axis=[1, 2]), (2, 3, 4, 2)),
]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


def _make(module, name, kwargs):
    extra = {} if name == "UnitNormalization" else dict(gamma_initializer="random_normal",
                                                         beta_initializer="random_normal")
    if kwargs.get("rms_scaling"):
        extra.pop("beta_initializer")
    return getattr(module, name)(**extra, **kwargs)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_gradients(name, kwargs, shape):
    rng = np.random.default_rng(1)
    layer = _make(L, name, {**kwargs, "dtype": "float64"})
    x = rng.standard_normal(shape) * 2 + 1
    assert layer(x).shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_parity_with_keras(tf, keras, name, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape) * 2 + 1
    f_layer, k_layer = _make(L, name, kwargs), _make(keras.layers, name, kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name
    assert [w.shape for w in f_layer.weights] == [tuple(w.shape) for w in k_layer.weights]
    assert_same_config(f_layer, k_layer)
    symbolic = (None,) + shape[1:]
    assert f_layer.compute_output_shape(symbolic) == tuple(k_layer.compute_output_shape(symbolic))


def test_unit_normalization_of_a_zero_vector_matches_keras(tf, keras):
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]], np.float32)
    y = assert_matches_keras(tf, L.UnitNormalization(), keras.layers.UnitNormalization(), x)
    np.testing.assert_allclose(y, [[0, 0, 0], [1 / 3, 2 / 3, 2 / 3]], rtol=1e-6)


def test_layer_normalization_statistics_are_per_sample():
    x = np.random.default_rng(3).standard_normal((4, 6)) * 3 + 2
    layer = L.LayerNormalization(dtype="float64")
    y = layer(x)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, expected, atol=1e-12)
    np.testing.assert_array_equal(layer(x, training=True), y)  # the same in training


def test_auto_names(keras):
    names = [L.LayerNormalization().name, L.GroupNormalization().name, L.UnitNormalization().name]
    assert names == ["layer_normalization", "group_normalization", "unit_normalization"]
    assert names == [keras.layers.LayerNormalization().name, keras.layers.GroupNormalization().name,
                     keras.layers.UnitNormalization().name]


@pytest.mark.parametrize("layer", [L.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False),
                                   L.GroupNormalization(4, axis=1, gamma_initializer="random_uniform"),
                                   L.UnitNormalization(axis=[1, 2])],
                         ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.deserialize({"class_name": type(layer).__name__, "config": config})
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)


def test_rms_scaling_warns_as_keras():
    with pytest.warns(UserWarning, match="`rms_scaling=True`, which is deprecated"):
        layer = L.LayerNormalization(rms_scaling=True)
    assert layer.get_config()["rms_scaling"] is True


@pytest.mark.parametrize("make, message", [
    (lambda: L.LayerNormalization(axis="last"), "expected an int or a list/tuple of ints for the argument 'axis'"),
    (lambda: L.LayerNormalization(epsilon=0), "epsilon must be a positive number"),
    (lambda: L.LayerNormalization(gamma_regularizer="l3"), "Could not interpret regularizer"),
    (lambda: L.GroupNormalization(beta_constraint="positive"), "Could not interpret constraint"),
    (lambda: L.GroupNormalization(groups=0), "invalid value for argument `groups`.*Received: groups=0"),
    (lambda: L.GroupNormalization(axis=[1]), "axis must be an int"),
    (lambda: L.UnitNormalization(axis=1.5), "expected an int or a list/tuple of ints"),
])
def test_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("make, shape, message", [
    (lambda: L.LayerNormalization(axis=3), (2, 3, 4), 'LayerNormalization "layer_normalization.*axis 3 is out of bounds'),
    (lambda: L.LayerNormalization(axis=0), (2, 3), "includes the batch axis"),
    (lambda: L.GroupNormalization(groups=4), (2, 3, 3), r"number of groups \(4\) cannot be more than the number of "
                                                          r"channels \(3\)"),
    (lambda: L.GroupNormalization(groups=2), (2, 3, 3), r"number of groups \(2\) must divide the number of channels"),
    (lambda: L.GroupNormalization(groups=2, axis=0), (2, 3, 4), "is the batch axis"),
    (lambda: L.UnitNormalization(axis=[1, 4]), (2, 3, 4), "axis 4 is out of bounds"),
])
def test_input_errors(make, shape, message):
    backend.clear_session()
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, np.float32))


def test_built_layer_refuses_other_feature_sizes():
    backend.clear_session()
    layer = L.LayerNormalization()
    layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match='layer "layer_normalization".*axis 1 of input shape to have value 4'):
        layer(np.zeros((2, 5), np.float32))


def test_unknown_normalized_sizes_are_refused():
    import fastconv.keras as fk
    backend.clear_session()
    with pytest.raises(ValueError, match=r'LayerNormalization "layer_normalization": the normalized axes \[1\] must have'):
        L.LayerNormalization(axis=1)(fk.Input((None, 4)))
    with pytest.raises(ValueError, match="axis -1 of input tensor should have a defined dimension"):
        L.GroupNormalization(2)(fk.Input((4, None)))
