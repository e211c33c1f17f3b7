"""Parity of one fastconv.keras layer with its Keras twin (importable because pyproject.toml puts
tests/ on the path): same weights -> same outputs, same gradients of the inputs and of the
weights (tf.GradientTape against the layer's forward/backward), same configuration keys; and the
finite-difference check of a layer's backward()."""
import contextlib
import json

import numpy as np


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def assert_matches_keras(tf, f_layer, k_layer, inputs, training=False, atol=1e-5, grad_atol=1e-4, seed=0):
    """Build both layers on ``inputs`` (an array or a list of arrays), copy Keras's weights into
    fastconv's layer, and compare outputs and the gradients of sum(g * output)."""
    xs = [np.asarray(x, dtype=np.float32) for x in _as_list(inputs)]
    many = isinstance(inputs, (list, tuple))
    k_inputs = [tf.constant(x) for x in xs]
    k_layer(k_inputs if many else k_inputs[0])  # builds Keras's weights
    f_layer(xs if many else xs[0])
    if k_layer.weights:
        f_layer.set_weights([w.numpy() for w in k_layer.weights])
    with tf.GradientTape(persistent=True) as tape:
        for t in k_inputs:
            tape.watch(t)
        k_y = k_layer(k_inputs if many else k_inputs[0], training=training)
        g = np.random.default_rng(seed).standard_normal(tuple(k_y.shape)).astype(np.float32)
        loss = tf.reduce_sum(k_y * g)
    f_y, cache = f_layer.forward(xs if many else xs[0], training)
    np.testing.assert_allclose(f_y, k_y.numpy(), atol=atol, rtol=atol)
    assert f_y.dtype == np.float32
    k_dx = tape.gradient(loss, k_inputs)
    k_dw = tape.gradient(loss, k_layer.trainable_weights)
    f_dx, f_dw = f_layer.backward(cache, g, True)
    for f, k in zip(_as_list(f_dx), k_dx):
        np.testing.assert_allclose(f, k.numpy(), atol=grad_atol, rtol=grad_atol)
    assert len(f_dw) == len(k_dw)
    for f_var, k in zip(f_layer.trainable_weights, k_dw):
        np.testing.assert_allclose(f_dw[f_var], k.numpy(), atol=grad_atol, rtol=grad_atol, err_msg=f_var.name)
    return f_y


def _plain(value):
    return json.loads(json.dumps(value))


def _same_value(f_value, k_value):
    """Equal after JSON; a serialized object (an initializer) by its class name and the values of
    fastconv's configuration keys (Keras adds its module and registered name, and its
    GlorotUniform the newer input_axes and output_axes)."""
    f_value, k_value = _plain(f_value), _plain(k_value)
    if isinstance(f_value, dict) and isinstance(k_value, dict) and "class_name" in f_value:
        return f_value["class_name"] == k_value.get("class_name") and \
            all(k_value.get("config", {}).get(key) == v for key, v in f_value.get("config", {}).items())
    return f_value == k_value


def assert_same_config(f_layer, k_layer, ignore=()):
    """The same get_config keys as Keras, and the same values for every argument (the dtype
    policy and the name aside; ``ignore`` names the keys whose values differ on purpose)."""
    f_config, k_config = f_layer.get_config(), k_layer.get_config()
    assert set(f_config) == set(k_config), (sorted(f_config), sorted(k_config))
    for key in set(k_config) - {"name", "dtype", *ignore}:
        assert _same_value(f_config[key], k_config[key]), (key, f_config[key], k_config[key])


# ----------------------------------------------- backward() against central finite differences
def _no_ties(shape, rng):
    """Distinct values in [-1, 1] (a shuffled arange), so that no pooling window has a tie."""
    values = np.linspace(-1, 1, int(np.prod(shape)))
    return rng.permutation(values).reshape(shape)


def _central_difference(loss, arr, index, eps=1e-6):
    old = arr[index]
    arr[index] = old + eps
    up = loss()
    arr[index] = old - eps
    down = loss()
    arr[index] = old
    return (up - down) / (2 * eps)


def _sample(shape, rng, n=25):
    """Up to n indices of an array of ``shape`` (all of them for small arrays)."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= n else rng.choice(size, n, replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def check_gradients(layer, inputs, training=True, seed=0):
    """Compare backward() with finite differences of sum(g * forward(inputs)) for the inputs and
    for every trainable weight of ``layer`` (float64)."""
    rng = np.random.default_rng(seed)
    y, cache = layer.forward(inputs, training)
    g = rng.standard_normal(np.shape(y))
    dx, wgrads = layer.backward(cache, g, True)

    def loss():
        return float(np.sum(g * layer.forward(inputs, training)[0]))

    arrays = inputs if isinstance(inputs, list) else [inputs]
    grads = dx if isinstance(inputs, list) else [dx]
    assert set(wgrads) == set(layer.trainable_weights)
    with contextlib.ExitStack() as writable:  # the weights' arrays are read-only otherwise
        weights = [writable.enter_context(v._writable()) for v in layer.trainable_weights]
        pairs = list(zip(arrays, grads)) + list(zip(weights, [wgrads[v] for v in layer.trainable_weights]))
        for arr, analytic in pairs:
            assert analytic.shape == arr.shape
            scale = max(1.0, float(np.abs(analytic).max()))
            for index in _sample(arr.shape, rng):
                numeric = _central_difference(loss, arr, index)
                assert abs(numeric - analytic[index]) <= 1e-7 * scale, (layer.name, index, numeric, analytic[index])
