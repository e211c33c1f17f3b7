"""Identity and the noise layers (SpatialDropout2D, GaussianNoise, GaussianDropout,
AlphaDropout): the identity at inference as in Keras, the noise of training by its statistics,
backward passes that reuse the forward pass's noise, Keras's names, configurations and errors."""
import json

import numpy as np
import pytest

from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

CASES = [("Identity", dict()), ("SpatialDropout2D", dict(rate=0.3, seed=1)),
         ("SpatialDropout2D", dict(rate=0.3, data_format="channels_first")), ("GaussianNoise", dict(stddev=0.2, seed=2)),
         ("GaussianDropout", dict(rate=0.4)), ("AlphaDropout", dict(rate=0.2, noise_shape=[None, 1, 1, 3], seed=3))]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


@pytest.mark.parametrize("name, kwargs", CASES)
def test_identity_at_inference_as_keras(tf, keras, name, kwargs):
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 3)).astype(np.float32)
    f_layer, k_layer = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    y = assert_matches_keras(tf, f_layer, k_layer, x, training=False)
    np.testing.assert_array_equal(y, x)
    assert f_layer.name == k_layer.name
    assert_same_config(f_layer, k_layer)
    assert f_layer.compute_output_shape((None, 4, None, 3)) == (None, 4, None, 3)


def test_identity_gradient_and_name():
    backend.clear_session()
    layer = L.Identity(dtype="float64")
    assert layer.name == "identity"
    x = np.random.default_rng(2).standard_normal((2, 3))
    layer(x)
    check_gradients(layer, x)


@pytest.mark.parametrize("data_format, channel_axis", [("channels_last", 3), ("channels_first", 1)])
def test_spatial_dropout_drops_whole_feature_maps(data_format, channel_axis):
    shape = [200, 3, 3, 3]
    shape[channel_axis] = 10
    x = np.ones(shape, np.float32)
    layer = L.SpatialDropout2D(0.3, data_format=data_format, seed=4)
    y, cache = layer.forward(x, training=True)
    maps = np.moveaxis(y, channel_axis, 1).reshape(200, 10, 9)
    assert np.all(maps == maps[..., :1])                 # one draw per image and channel
    kept = maps[..., 0] != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(maps[kept], 1 / 0.7)
    g = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(cache, g)[0], g * y)


def test_gaussian_noise_and_dropout_statistics_and_backward():
    x = np.full((400, 250), 2.0, np.float32)
    noise = L.GaussianNoise(0.1, seed=6)
    y, cache = noise.forward(x, training=True)
    assert abs((y - x).mean()) < 2e-3 and abs((y - x).std() - 0.1) < 2e-3
    g = np.ones_like(x)
    np.testing.assert_array_equal(noise.backward(cache, g)[0], g)
    dropout = L.GaussianDropout(0.2, seed=7)
    y, cache = dropout.forward(x, training=True)
    factor = y / x
    # Within 5 standard errors of 100000 draws.
    assert abs(factor.mean() - 1) < 8e-3 and abs(factor.std() - np.sqrt(0.2 / 0.8)) < 6e-3
    np.testing.assert_allclose(dropout.backward(cache, g)[0], factor, rtol=1e-6)


def test_alpha_dropout_keeps_mean_and_variance_of_selu_activations():
    x = np.random.default_rng(8).standard_normal((500, 400)).astype(np.float32)
    layer = L.AlphaDropout(0.2, seed=9)
    y, cache = layer.forward(x, training=True)
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    dropped = cache.kept == 0
    assert 0.19 < dropped.mean() < 0.21
    # Every dropped input takes the same value a * (-scale * alpha) + b.
    assert np.ptp(y[dropped]) < 1e-6
    g = np.ones_like(x)
    np.testing.assert_allclose(layer.backward(cache, g)[0], cache.kept * cache.scale)


def test_same_noise_for_the_same_seed():
    x = np.ones((3, 4, 4, 2), np.float32)
    for make in (lambda: L.SpatialDropout2D(0.5, seed=3), lambda: L.GaussianNoise(0.5, seed=3),
                 lambda: L.GaussianDropout(0.5, seed=3), lambda: L.AlphaDropout(0.5, seed=3)):
        np.testing.assert_array_equal(make()(x, training=True), make()(x, training=True))


def test_auto_names(keras):
    names = [L.SpatialDropout2D(0.1).name, L.GaussianNoise(0.1).name, L.GaussianDropout(0.1).name,
             L.AlphaDropout(0.1).name, L.Identity().name]
    assert names == [keras.layers.SpatialDropout2D(0.1).name, keras.layers.GaussianNoise(0.1).name,
                     keras.layers.GaussianDropout(0.1).name, keras.layers.AlphaDropout(0.1).name,
                     keras.layers.Identity().name]
    assert names[0] == "spatial_dropout2d"


@pytest.mark.parametrize("layer", [L.Identity(name="i"), L.SpatialDropout2D(0.2, "channels_first", seed=1),
                                   L.GaussianNoise(0.3, seed=2), L.GaussianDropout(0.1),
                                   L.AlphaDropout(0.2, noise_shape=(None, 1), seed=4)],
                         ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.deserialize({"class_name": type(layer).__name__, "config": config})
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)


@pytest.mark.parametrize("make, message", [
    (lambda: L.SpatialDropout2D(1.2), r"rate must be a number in \[0, 1\)"),
    (lambda: L.SpatialDropout2D(0.2, data_format="nchw"), "data_format"),
    (lambda: L.GaussianNoise(1.5), r"`stddev`. Expected a float value between 0 and 1. Received: stddev=1.5"),
    (lambda: L.GaussianNoise("a"), "Received: stddev='a'"),
    (lambda: L.GaussianDropout(1.0), r"between 0 and 1 \(excluded\). Received: rate=1.0"),
    (lambda: L.AlphaDropout(-0.1), "Received: rate=-0.1"),
])
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_spatial_dropout_takes_images():
    with pytest.raises(ValueError, match='layer "spatial_dropout2d.*expected ndim=4'):
        backend.clear_session()
        L.SpatialDropout2D(0.1)(np.zeros((2, 3), np.float32))
