"""DepthwiseConv2D and SeparableConv2D: gradients by finite differences (float64), Keras parity of
outputs, gradients of the input and of every weight, weight names and shapes, output shapes,
auto-names, summaries and configurations, and one error per validation branch."""
import json

import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

DEPTHWISE = [
    (dict(kernel_size=3), (2, 6, 7, 3)),
    (dict(kernel_size=(3, 2), depth_multiplier=2, padding="same", activation="relu"), (2, 5, 6, 4)),
    (dict(kernel_size=3, strides=2, padding="same", depth_multiplier=3, activation="tanh"), (1, 7, 8, 5)),
    (dict(kernel_size=3, dilation_rate=(2, 1), activation="sigmoid"), (1, 8, 6, 3)),
    (dict(kernel_size=3, padding="same", activation="relu6", bias_initializer="random_normal"), (2, 5, 5, 8)),
    (dict(kernel_size=2, strides=2, data_format="channels_first", use_bias=False), (2, 3, 7, 8)),
]
SEPARABLE = [
    (dict(filters=4, kernel_size=3), (2, 6, 7, 3)),
    (dict(filters=5, kernel_size=(3, 2), depth_multiplier=2, padding="same", activation="relu"), (2, 5, 6, 4)),
    (dict(filters=3, kernel_size=3, strides=2, padding="same", activation="softmax"), (1, 7, 8, 5)),
    (dict(filters=2, kernel_size=3, dilation_rate=2, depth_multiplier=3, use_bias=False), (1, 8, 7, 2)),
    (dict(filters=6, kernel_size=2, strides=2, data_format="channels_first", activation="tanh"), (2, 3, 6, 8)),
]
CASES = [("DepthwiseConv2D", kw, shape) for kw, shape in DEPTHWISE] + \
        [("SeparableConv2D", kw, shape) for kw, shape in SEPARABLE]
INITIALIZERS = ("depthwise_initializer", "pointwise_initializer", "bias_initializer")


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session()
    backend.clear_session()
    return keras_module


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_gradients(name, kwargs, shape):
    kwargs = {"bias_initializer": "random_normal", **kwargs}
    layer = getattr(L, name)(dtype="float64", **kwargs)
    x = np.random.default_rng(1).standard_normal(shape)
    y = layer(x)
    assert y.shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_parity_with_keras(tf, keras, name, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    kwargs = {"bias_initializer": "random_normal", **kwargs}
    f_layer, k_layer = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name == {"DepthwiseConv2D": "depthwise_conv2d",
                                            "SeparableConv2D": "separable_conv2d"}[name]
    assert [(w.path, w.shape) for w in f_layer.weights] == [(w.path, tuple(w.shape)) for w in k_layer.weights]
    for symbolic in ((None,) + shape[1:], (None, None, None, shape[3]) if "data_format" not in kwargs
                     else (None, shape[1], None, None)):
        assert f_layer.compute_output_shape(symbolic) == tuple(k_layer.compute_output_shape(symbolic))
    assert_same_config(f_layer, k_layer, ignore=INITIALIZERS)   # (regularizers and constraints: None here)
    for key in INITIALIZERS:
        if key in k_layer.get_config():
            assert f_layer.get_config()[key]["class_name"] == k_layer.get_config()[key]["class_name"]


def test_first_layer_skips_the_input_gradient():
    for layer in (L.DepthwiseConv2D(3, dtype="float64"), L.SeparableConv2D(2, 3, dtype="float64")):
        layer(np.ones((1, 5, 5, 2)))
        y, cache = layer.forward(np.ones((1, 5, 5, 2)), True)
        dx, grads = layer.backward(cache, np.ones_like(y), need_input_grad=False)
        assert dx is None and set(grads) == set(layer.trainable_weights)
        layer.trainable = False
        dx, grads = layer.backward(cache, np.ones_like(y), need_input_grad=False)
        assert dx is None and grads == {}


def _mobilenet_block(K):
    """An inverted-residual-like block with both layers, as MobileNets stack them."""
    i = K.Input((12, 12, 3))
    x = K.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(i)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU(6.0)(x)
    x = K.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = K.layers.BatchNormalization()(x)
    x = K.layers.ReLU(6.0)(x)
    x = K.layers.SeparableConv2D(16, 3, padding="same", depth_multiplier=2, activation="relu")(x)
    x = K.layers.GlobalAveragePooling2D()(x)
    return K.Model(i, K.layers.Dense(3, activation="softmax")(x))


def test_model_summary_predict_and_one_epoch_match_keras(keras):
    rng = np.random.default_rng(3)
    x, y = rng.random((16, 12, 12, 3), dtype=np.float32), np.arange(16) % 3
    models, texts = {}, {}
    for K in (keras, fk):
        K.backend.clear_session()
        models[K] = _mobilenet_block(K)
        models[K].summary(print_fn=texts.setdefault(K.__name__, []).append)
    assert texts["fastconv.keras"] == texts["keras"]
    assert models[fk].count_params() == models[keras].count_params()
    models[fk].set_weights(models[keras].get_weights())
    np.testing.assert_allclose(models[fk].predict(x, verbose=0), models[keras].predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    losses = {}
    for K, model in models.items():
        model.compile(loss="sparse_categorical_crossentropy", optimizer=K.optimizers.SGD(0.1))
        losses[K] = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(losses[fk], losses[keras], rtol=1e-4, atol=1e-4)
    for f_w, k_w in zip(models[fk].get_weights(), models[keras].get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer", [
    L.DepthwiseConv2D((3, 2), strides=2, padding="same", depth_multiplier=2, data_format="channels_first",
                      activation="relu", depthwise_initializer="he_normal", bias_initializer="ones", name="dw"),
    L.SeparableConv2D(7, 3, dilation_rate=2, depth_multiplier=3, activation="tanh", use_bias=False,
                      pointwise_initializer="glorot_normal", trainable=False),
], ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)
    assert L.deserialize(L.serialize(layer)).get_config() == clone.get_config()


@pytest.mark.parametrize("make, message", [
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0),
     "Expected a strictly positive value. Received depth_multiplier=0"),
    (lambda: L.SeparableConv2D(0, 3), "Expected a strictly positive value. Received filters=0"),
    (lambda: L.DepthwiseConv2D((3, 3, 3)), "kernel_size.*tuple of 2 integers"),
    (lambda: L.SeparableConv2D(2, 3, strides=0), "strides.*positive integers"),
    (lambda: L.DepthwiseConv2D(3, padding="full"), 'padding.*"valid" or "same"'),
    (lambda: L.DepthwiseConv2D(3, data_format="channels_middle"), "data_format"),
    (lambda: L.DepthwiseConv2D(3, strides=2, dilation_rate=2), "not supported in conjunction with"),
    (lambda: L.DepthwiseConv2D(3, depthwise_regularizer="l3"), "Could not interpret regularizer"),
    (lambda: L.SeparableConv2D(2, 3, pointwise_constraint="non_negative"), "Could not interpret constraint"),
    (lambda: L.SeparableConv2D(2, 3, activation="swishy"), "Could not interpret activation"),
    (lambda: L.DepthwiseConv2D(5)(np.ones((1, 4, 4, 2))), r"the 5x5 window .* does not fit the input"),
    (lambda: L.SeparableConv2D(2, 3)(np.ones((4, 4, 2))), "expected ndim=4, found ndim=3"),
])
def test_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_wrong_channel_count_after_build():
    layer = L.DepthwiseConv2D(3)
    layer(np.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        layer(np.ones((1, 5, 5, 3)))


def test_keras_files_load_both_ways(keras, tmp_path):
    x = np.random.default_rng(4).random((2, 12, 12, 3), dtype=np.float32)
    ours = _mobilenet_block(fk)
    ours.save(tmp_path / "ours.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "ours.keras").predict(x, verbose=0),
                               ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    theirs = _mobilenet_block(keras)
    theirs.save(tmp_path / "theirs.keras")
    loaded = fk.models.load_model(tmp_path / "theirs.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in theirs.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def _regularized(K):
    R, C = K.regularizers, K.constraints
    return K.Sequential([
        K.Input((8, 8, 3)),
        K.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6", depthwise_regularizer=R.L2(0.01),
                                 bias_regularizer=R.L1(0.01), activity_regularizer=R.L2(0.001),
                                 depthwise_constraint=C.MaxNorm(0.5, axis=[0, 1])),
        K.layers.SeparableConv2D(4, 3, activation="tanh", pointwise_regularizer=R.L1L2(0.001, 0.01),
                                 depthwise_regularizer=R.L2(0.01), activity_regularizer=R.L1(0.01),
                                 pointwise_constraint=C.UnitNorm(axis=[0, 1, 2]), bias_constraint=C.NonNeg()),
        K.layers.Flatten(),
        K.layers.Dense(3, activation="softmax")])


def test_regularizers_and_constraints_train_as_keras(keras):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((24, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 24)
    k_model, f_model = _regularized(keras), _regularized(fk)
    f_model.set_weights(k_model.get_weights())
    histories = []
    for model in (k_model, f_model):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        histories.append(model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history)
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=1e-4)
    for k_w, f_w in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(f_w, k_w, rtol=1e-4, atol=1e-4 * np.abs(k_w).max())
    for f_layer, k_layer in zip(f_model.layers[:2], k_model.layers[:2]):
        f_config, k_config = f_layer.get_config(), k_layer.get_config()
        for key in [k for k in k_config if "regularizer" in k or "constraint" in k]:
            expected = k_config[key] and {"class_name": k_config[key]["class_name"], "config": k_config[key]["config"]}
            assert f_config[key] == expected, key
        assert type(f_layer).from_config(f_config).get_config() == f_config
