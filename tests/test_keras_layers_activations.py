"""Activation functions and layers: every name Keras's activations.get accepts for vision, with
its derivative (finite differences in float64, tf.GradientTape), Keras's serialization names,
the layers LeakyReLU, ELU, PReLU and Softmax against Keras, configurations and errors."""
import json
import warnings

import numpy as np
import pytest

from fastconv.keras import activations, backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

NAMES = ["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "softplus",
         "softsign", "exponential", "leaky_relu", "hard_sigmoid", "silu", "swish", "hard_silu", "hard_swish",
         "gelu", "mish", "celu", "hard_tanh", "log_sigmoid", "soft_shrink", "hard_shrink", "tanh_shrink", "squareplus",
         "sparse_plus", "sparse_sigmoid"]
# The kinks where a derivative jumps: the test inputs keep clear of them.
KINKS = (0.0, -3.0, 3.0, 6.0, -1.0, 1.0, -0.5, 0.5)


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


def _away_from_kinks(shape, seed, scale=4.0):
    x = np.random.default_rng(seed).uniform(-scale, scale, shape)
    for kink in KINKS:
        x[np.abs(x - kink) < 1e-2] += 3e-2
    return x


@pytest.mark.parametrize("name", NAMES)
def test_names_and_serialization_match_keras(keras, name):
    fn = activations.get(name)
    k_fn = keras.activations.get(name)
    assert activations.serialize(fn) == keras.activations.serialize(k_fn)
    assert activations.get(activations.serialize(fn)) is fn
    assert activations.get(k_fn) is fn  # Keras's own function, by its name
    x = _away_from_kinks((3, 5), 1).astype(np.float32)
    np.testing.assert_allclose(fn(x), keras.ops.convert_to_numpy(k_fn(x)), rtol=1e-5, atol=1e-6)
    assert fn(x).dtype == np.float32


@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_gradients(name):
    x = _away_from_kinks((3, 5), 2)
    layer = L.Activation(name, dtype="float64")
    layer(x)
    check_gradients(layer, x)


@pytest.mark.parametrize("name", ["silu", "gelu", "hard_silu", "mish", "selu", "softplus", "tanh_shrink",
                                  "squareplus"])
def test_dense_with_activation_gradients(name):
    # Through WithActivation: silu, gelu, hard_silu and mish keep their pre-activation.
    rng = np.random.default_rng(3)
    layer = L.Dense(4, activation=name, bias_initializer="random_normal", dtype="float64")
    x = rng.standard_normal((5, 3))
    layer(x)
    check_gradients(layer, x)


@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_matches_keras(tf, keras, name):
    x = _away_from_kinks((2, 3, 4), 4)
    f_layer, k_layer = L.Activation(name), keras.layers.Activation(name)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name == "activation"
    assert_same_config(f_layer, k_layer)


@pytest.mark.parametrize("call", [
    lambda A, x: A.gelu(x, approximate=True), lambda A, x: A.leaky_relu(x, negative_slope=0.1),
    lambda A, x: A.elu(x, alpha=0.5), lambda A, x: A.softmax(x, axis=1), lambda A, x: A.log_softmax(x, axis=0),
    lambda A, x: A.relu(x, max_value=1.5), lambda A, x: A.relu(x, negative_slope=0.1, threshold=0.5),
    lambda A, x: A.celu(x, alpha=0.5), lambda A, x: A.soft_shrink(x, threshold=0.3),
    lambda A, x: A.hard_shrink(x, threshold=0.3), lambda A, x: A.squareplus(x, b=2),
])
def test_function_arguments_match_keras(keras, call):
    x = _away_from_kinks((3, 4), 5).astype(np.float32)
    np.testing.assert_allclose(call(activations, x), keras.ops.convert_to_numpy(call(keras.activations, x)),
                               rtol=1e-5, atol=1e-6)


def test_ties_and_kinks_take_tensorflows_derivative(tf, keras):
    x = np.array([[-3.0, 0.0, 3.0, 6.0, -1.0, 2.0, 1.0, 0.5, -0.5]], dtype=np.float32)
    for name in ("relu", "relu6", "hard_sigmoid", "hard_silu", "leaky_relu", "elu", "celu", "hard_tanh", "soft_shrink",
                 "hard_shrink", "sparse_plus", "sparse_sigmoid"):
        backend.clear_session()
        keras.backend.clear_session(free_memory=False)
        assert_matches_keras(tf, L.Activation(name), keras.layers.Activation(name), x)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: 'sparsemaxx'"):
        activations.get("sparsemaxx")
    with pytest.raises(ValueError, match="Could not interpret activation function identifier"):
        L.Activation(lambda x: x ** 2)


# ----------------------------------------------------------------------------------------- layers
LAYER_CASES = [
    ("LeakyReLU", dict(), (2, 3, 4)),
    ("LeakyReLU", dict(negative_slope=0.05), (2, 6)),
    ("ELU", dict(), (2, 3, 4)),
    ("ELU", dict(alpha=0.7), (2, 6)),
    ("PReLU", dict(alpha_initializer="random_uniform"), (2, 3, 4)),
    ("PReLU", dict(alpha_initializer="random_uniform", shared_axes=[1, 2]), (2, 3, 4, 2)),
    ("PReLU", dict(alpha_initializer="random_uniform", shared_axes=2), (2, 3, 4)),
    ("Softmax", dict(), (2, 3, 4)),
    ("Softmax", dict(axis=1), (2, 3, 4)),
    ("Softmax", dict(axis=(1, 2)), (2, 3, 4)),
]


@pytest.mark.parametrize("name, kwargs, shape", LAYER_CASES)
def test_layer_gradients(name, kwargs, shape):
    x = _away_from_kinks(shape, 6, scale=2.0)
    layer = getattr(L, name)(dtype="float64", **kwargs)
    assert layer(x).shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


@pytest.mark.parametrize("name, kwargs, shape", LAYER_CASES)
def test_layer_matches_keras(tf, keras, name, kwargs, shape):
    x = _away_from_kinks(shape, 7, scale=2.0)
    f_layer, k_layer = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name
    assert_same_config(f_layer, k_layer)
    if name == "PReLU":
        assert f_layer.alpha.shape == tuple(k_layer.alpha.shape)


def test_layer_auto_names(keras):
    names = [L.LeakyReLU().name, L.ELU().name, L.PReLU().name, L.Softmax().name, L.LeakyReLU().name]
    assert names == ["leaky_re_lu", "elu", "p_re_lu", "softmax", "leaky_re_lu_1"]
    assert [keras.layers.LeakyReLU().name, keras.layers.ELU().name, keras.layers.PReLU().name] == names[:3]


def test_leaky_relu_defaults_and_keras2_alpha():
    assert L.LeakyReLU().negative_slope == 0.3
    with pytest.warns(UserWarning, match="Argument `alpha` is deprecated. Use `negative_slope` instead."):
        layer = L.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1 and "alpha" not in layer.get_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L.LeakyReLU(negative_slope=0.2)


def test_softmax_layer_gives_logits_along_the_last_axis():
    x = np.random.default_rng(8).standard_normal((3, 4))
    layer = L.Softmax(dtype="float64")
    y, cache = layer.forward(x)
    assert layer.produces_logits
    np.testing.assert_array_equal(layer.logits(cache), x)
    dz = np.ones_like(x)
    assert layer.backward_from_logits(cache, dz)[0] is dz
    other = L.Softmax(axis=0)
    other(x)
    assert not other.produces_logits


@pytest.mark.parametrize("layer", [L.LeakyReLU(0.1), L.ELU(0.5), L.PReLU(shared_axes=[1, 2]), L.Softmax(axis=[1, 2]),
                                   L.Activation("swish")],
                         ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.deserialize({"class_name": type(layer).__name__, "config": config})
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)


@pytest.mark.parametrize("make, message", [
    (lambda: L.LeakyReLU(-0.1), "cannot be None or negative value. Expected a float. Received: negative_slope=-0.1"),
    (lambda: L.LeakyReLU(None), "negative_slope=None"),
    (lambda: L.ELU("one"), "alpha must be a number. Received: alpha='one'"),
    (lambda: L.PReLU(shared_axes=[0]), r"shared_axes must be axes of the input after the batch axis"),
    (lambda: L.PReLU(alpha_regularizer="l3"), "Could not interpret regularizer"),
    (lambda: L.PReLU(alpha_constraint="positive"), "Could not interpret constraint"),
    (lambda: L.PReLU(alpha_initializer="glorious"), "Could not interpret initializer"),
    (lambda: L.Softmax(axis=1.0), "axis must be an int or a tuple of ints"),
])
def test_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("make, shape, message", [
    (lambda: L.PReLU(shared_axes=[3]), (2, 3, 4), "names an axis beyond those of the input"),
    (lambda: L.Softmax(axis=2), (2, 3), "axis=2 is out of range"),
])
def test_input_errors(make, shape, message):
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, np.float32))


def test_prelu_refuses_other_sizes_after_build():
    backend.clear_session()
    layer = L.PReLU(shared_axes=[1])
    layer(np.zeros((2, 3, 4), np.float32))
    layer(np.zeros((5, 7, 4), np.float32))  # the shared axis may change
    with pytest.raises(ValueError, match='layer "p_re_lu".*axis 2 of input shape to have value 4'):
        layer(np.zeros((2, 3, 5), np.float32))


def test_prelu_needs_the_sizes_it_does_not_share():
    import fastconv.keras as fk
    backend.clear_session()
    with pytest.raises(ValueError, match='PReLU "p_re_lu": the axes that are not shared must have known sizes'):
        L.PReLU()(fk.Input((None, 3)))
    assert L.PReLU(shared_axes=1)(fk.Input((None, 3))).shape == (None, None, 3)
