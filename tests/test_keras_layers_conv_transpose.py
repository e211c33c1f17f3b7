"""Conv2DTranspose: gradients by finite differences (float64), Keras parity of outputs,
gradients of the input, kernel and bias, output shapes (Keras's formula), names, configurations
and errors."""
import json

import numpy as np
import pytest

from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

CASES = [
    (dict(filters=3, kernel_size=3), (2, 4, 5, 2)),
    (dict(filters=2, kernel_size=(3, 2), strides=2, padding="same", activation="relu"), (2, 3, 4, 3)),
    (dict(filters=2, kernel_size=3, strides=(2, 3), output_padding=1, activation="sigmoid"), (1, 3, 3, 2)),
    (dict(filters=2, kernel_size=(4, 3), strides=2, padding="same", output_padding=(1, 0)), (1, 3, 4, 2)),
    (dict(filters=3, kernel_size=2, strides=3), (1, 3, 2, 2)),                       # stride > kernel
    (dict(filters=2, kernel_size=3, dilation_rate=2, padding="same", use_bias=False), (1, 4, 4, 2)),
    (dict(filters=2, kernel_size=3, strides=2, data_format="channels_first", activation="tanh"), (1, 3, 3, 4)),
]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


@pytest.mark.parametrize("kwargs, shape", CASES)
def test_gradients(kwargs, shape):
    rng = np.random.default_rng(1)
    layer = L.Conv2DTranspose(bias_initializer="random_normal", dtype="float64", **kwargs)
    x = rng.standard_normal(shape)
    y = layer(x)
    assert y.shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


# TensorFlow's CPU kernels run neither dilated nor channels-first transposed convolutions:
# those cases are compared below through equivalent channels-last, undilated layers.
@pytest.mark.parametrize("kwargs, shape", [case for case in CASES if "dilation_rate" not in case[0]
                                           and "data_format" not in case[0]])
def test_parity_with_keras(tf, keras, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    f_layer = L.Conv2DTranspose(bias_initializer="random_normal", **kwargs)
    k_layer = keras.layers.Conv2DTranspose(bias_initializer="random_normal", **kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name == "conv2d_transpose"
    assert f_layer.kernel.shape == tuple(k_layer.kernel.shape)
    symbolic = (None,) + shape[1:]
    assert f_layer.compute_output_shape(symbolic) == tuple(k_layer.compute_output_shape(symbolic))
    unknown = (None, None, None, shape[3]) if "data_format" not in kwargs else (None, shape[1], None, None)
    assert f_layer.compute_output_shape(unknown) == tuple(k_layer.compute_output_shape(unknown))
    assert_same_config(f_layer, k_layer)


def test_dilation_matches_keras_with_the_dilated_kernel(tf, keras):
    # TensorFlow's CPU kernels refuse dilated transposed convolutions: Keras's layer gets the
    # 3x3 kernel dilated by 2 written out as a 5x5 kernel with zeros between the taps.
    x = np.random.default_rng(3).standard_normal((1, 4, 4, 2)).astype(np.float32)
    f_layer = L.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", bias_initializer="random_normal")
    f_layer(x)
    k_layer = keras.layers.Conv2DTranspose(2, 5, padding="same")
    k_layer(x)
    dilated = np.zeros(k_layer.kernel.shape, np.float32)
    dilated[::2, ::2] = f_layer.kernel.value
    k_layer.set_weights([dilated, f_layer.bias.value])
    x_tf = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_tf)
        k_y = k_layer(x_tf)
        g = np.random.default_rng(4).standard_normal(k_y.shape).astype(np.float32)
        loss = tf.reduce_sum(k_y * g)
    k_dx, k_dw, k_db = tape.gradient(loss, [x_tf, k_layer.kernel, k_layer.bias])
    y, cache = f_layer.forward(x)
    np.testing.assert_allclose(y, k_y.numpy(), atol=1e-5, rtol=1e-5)
    dx, grads = f_layer.backward(cache, g)
    np.testing.assert_allclose(dx, k_dx.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(grads[f_layer.kernel], k_dw.numpy()[::2, ::2], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(grads[f_layer.bias], k_db.numpy(), atol=1e-4, rtol=1e-4)


def test_channels_first_is_channels_last_transposed():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)   # NCHW
    first = L.Conv2DTranspose(2, 3, strides=2, data_format="channels_first", bias_initializer="random_normal")
    last = L.Conv2DTranspose(2, 3, strides=2)
    first(x)
    last(x.transpose(0, 2, 3, 1))
    last.set_weights(first.get_weights())
    y, cache = first.forward(x)
    y_last, cache_last = last.forward(x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(y, y_last.transpose(0, 3, 1, 2), atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx, grads = first.backward(cache, g)
    dx_last, grads_last = last.backward(cache_last, g.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(dx, dx_last.transpose(0, 3, 1, 2), atol=1e-4)
    for a, b in zip(first.trainable_weights, last.trainable_weights):
        np.testing.assert_allclose(grads[a], grads_last[b], atol=1e-4)


def test_config_round_trip():
    layer = L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1, activation="relu", name="up")
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.deserialize({"class_name": "Conv2DTranspose", "config": config})
    assert clone.get_config() == L.Conv2DTranspose.from_config(layer.get_config()).get_config()
    assert clone.output_padding == (1, 1) and clone.strides == (2, 2)


@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv2DTranspose(0, 3), "Expected a strictly positive integer. Received filters=0"),
    (lambda: L.Conv2DTranspose(2, (3, 3, 3)), "kernel_size.*tuple of 2 integers"),
    (lambda: L.Conv2DTranspose(2, 3, padding="full"), 'padding.*"valid" or "same"'),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, output_padding=2), "must be strictly less than the corresponding"),
    (lambda: L.Conv2DTranspose(2, 3, output_padding=(1, -1)), "tuple of 2 non-negative integers"),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, dilation_rate=2), "not supported in conjunction with"),
    (lambda: L.Conv2DTranspose(2, 3, kernel_regularizer="l3"), "Could not interpret regularizer"),
    (lambda: L.Conv2DTranspose(2, 3, activation="swishy"), "Could not interpret activation"),
])
def test_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_input_errors():
    backend.clear_session()
    with pytest.raises(ValueError, match='layer "conv2d_transpose".*expected ndim=4'):
        L.Conv2DTranspose(2, 3)(np.zeros((1, 4, 4), np.float32))
    # 'same' with an even kernel and output_padding 0 is one row short of a Conv2D's input.
    with pytest.raises(ValueError, match='Conv2DTranspose "conv2d_transpose_1".*Use a larger output_padding'):
        L.Conv2DTranspose(2, 2, strides=2, padding="same", output_padding=0)(np.zeros((1, 3, 3, 1), np.float32))


def test_unknown_channel_count_is_refused():
    import fastconv.keras as fk
    backend.clear_session()
    with pytest.raises(ValueError, match='Conv2DTranspose "conv2d_transpose": the channel axis of the input must be known'):
        L.Conv2DTranspose(2, 3)(fk.Input((None, None, None)))
