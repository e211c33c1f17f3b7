"""fastconv.keras layers: every backward against central finite differences in float64, every
config through from_config and JSON, every forward against Keras (when TensorFlow is installed)."""
import json

import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import activations, backend
from fastconv.keras import layers as L

from _layer_parity import _no_ties, check_gradients

F64 = "float64"


def _built(layer, shape):
    layer(np.zeros((1,) + tuple(shape[1:]), dtype=layer.dtype))
    return layer


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_dense_gradients(activation, shape):
    rng = np.random.default_rng(1)
    layer = _built(L.Dense(3, activation=activation, bias_initializer="random_normal", dtype=F64), shape)
    check_gradients(layer, rng.standard_normal(shape))


@pytest.mark.parametrize("kwargs, shape", [
    (dict(filters=4, kernel_size=3, padding="same", activation="relu"), (2, 6, 7, 3)),
    (dict(filters=5, kernel_size=(3, 2), strides=2, padding="valid"), (2, 7, 8, 3)),
    (dict(filters=3, kernel_size=3, dilation_rate=2, padding="same", activation="tanh"), (1, 7, 7, 2)),
    (dict(filters=2, kernel_size=2, use_bias=False, activation="sigmoid"), (2, 5, 5, 3)),
    (dict(filters=3, kernel_size=3, padding="same", data_format="channels_first", activation="relu"), (2, 3, 6, 5)),
])
def test_conv2d_gradients(kwargs, shape):
    rng = np.random.default_rng(2)
    layer = _built(L.Conv2D(bias_initializer="random_normal", dtype=F64, **kwargs), shape)
    check_gradients(layer, rng.standard_normal(shape))


@pytest.mark.parametrize("cls", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("kwargs, shape", [
    (dict(), (2, 6, 6, 3)),
    (dict(pool_size=3, strides=2, padding="same"), (2, 7, 5, 2)),
    (dict(pool_size=(2, 3), strides=1), (1, 5, 6, 2)),          # overlapping windows
    (dict(data_format="channels_first"), (2, 3, 6, 4)),
])
def test_pooling_gradients(cls, kwargs, shape):
    rng = np.random.default_rng(3)
    layer = _built(cls(dtype=F64, **kwargs), shape)
    check_gradients(layer, _no_ties(shape, rng))


@pytest.mark.parametrize("kwargs, shape", [
    (dict(), (2, 4, 5, 3)), (dict(keepdims=True), (2, 4, 5, 3)), (dict(data_format="channels_first"), (2, 3, 4, 5)),
])
def test_global_average_pooling_gradients(kwargs, shape):
    layer = _built(L.GlobalAveragePooling2D(dtype=F64, **kwargs), shape)
    check_gradients(layer, np.random.default_rng(4).standard_normal(shape))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flatten_gradients_and_order(data_format):
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5))
    layer = _built(L.Flatten(data_format=data_format, dtype=F64), x.shape)
    check_gradients(layer, x)
    expected = x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(layer(x), expected.reshape(2, -1))


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid", "tanh", "softmax"])
def test_activation_gradients(activation):
    x = np.random.default_rng(6).standard_normal((3, 4))
    check_gradients(_built(L.Activation(activation, dtype=F64), x.shape), x)


@pytest.mark.parametrize("kwargs", [dict(), dict(max_value=0.5), dict(negative_slope=0.1, threshold=0.2),
                                    dict(negative_slope=0.3, threshold=0.1, max_value=0.8)])
def test_relu_gradients(kwargs):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, (4, 50))
    # Keep clear of the kinks at the threshold and max_value, where the derivative jumps.
    for kink in (0.0, kwargs.get("threshold", 0.0), kwargs.get("max_value", 9.0)):
        x[np.abs(x - kink) < 1e-3] += 3e-3
    check_gradients(_built(L.ReLU(dtype=F64, **kwargs), x.shape), x)


@pytest.mark.parametrize("shapes", [[(2, 3, 4)] * 2, [(2, 3, 4)] * 3, [(2, 3, 4), (2, 1, 4)]])
def test_add_gradients(shapes):
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal(s) for s in shapes]
    layer = L.Add(dtype=F64)
    layer(xs)
    check_gradients(layer, xs)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kwargs, shape", [
    (dict(), (4, 3, 3, 5)), (dict(axis=1), (4, 3, 2, 2)), (dict(center=False, scale=False), (6, 4)),
])
def test_batch_normalization_gradients(training, kwargs, shape):
    rng = np.random.default_rng(9)
    layer = _built(L.BatchNormalization(dtype=F64, gamma_initializer="random_normal",
                                        beta_initializer="random_normal", **kwargs), shape)
    layer.moving_mean.assign(rng.standard_normal(layer.moving_mean.shape))
    layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    check_gradients(layer, rng.standard_normal(shape) * 2 + 1, training=training)


def test_batch_normalization_modes_and_moving_statistics():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((50, 4)) * 3 + 2
    layer = _built(L.BatchNormalization(dtype=F64), x.shape)
    y_train = layer(x, training=True)
    # Training mode: the batch's own statistics (biased variance), and the moving ones follow
    # them with Keras's momentum 0.99.
    np.testing.assert_allclose(y_train, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), atol=1e-12)
    np.testing.assert_allclose(layer.moving_mean.value, 0.01 * x.mean(0), atol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.value, 0.99 + 0.01 * x.var(0), atol=1e-12)
    # Inference mode: the moving statistics; a frozen layer too, even in training.
    y_infer = layer(x, training=False)
    expected = (x - layer.moving_mean.value) / np.sqrt(layer.moving_variance.value + 1e-3)
    np.testing.assert_allclose(y_infer, expected, atol=1e-12)
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True), expected, atol=1e-12)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4


def test_dropout_is_inverted_and_its_backward_uses_the_same_mask():
    x = np.ones((200, 50))
    layer = L.Dropout(0.3, seed=1, dtype=F64)
    y, cache = layer.forward(x, training=True)
    kept = y != 0
    assert 0.65 < kept.mean() < 0.75
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    g = np.random.default_rng(11).standard_normal(x.shape)
    dx, grads = layer.backward(cache, g)
    np.testing.assert_allclose(dx, g * y)  # x is ones: y is the scaled mask
    assert grads == {}
    np.testing.assert_array_equal(layer(x, training=False), x)
    np.testing.assert_array_equal(L.Dropout(0.0)(x, training=True), x)


@pytest.mark.parametrize("make", [
    lambda: L.Dense(3, activation="sigmoid", dtype=F64),
    lambda: L.Dense(4, activation="softmax", dtype=F64),
    lambda: L.Conv2D(3, 2, activation="sigmoid", dtype=F64),
    lambda: L.Activation("softmax", dtype=F64),
])
def test_backward_from_logits_skips_the_activation(make):
    """With a sigmoid or softmax output, the loss hands the gradient of the logits z to
    backward_from_logits: it must equal the backward of the same layer without activation."""
    layer = make()
    shape = (2, 4, 4, 3) if isinstance(layer, L.Conv2D) else (3, 4)
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape)
    y, cache = _built(layer, shape).forward(x, True)
    assert layer.produces_logits
    z = layer.logits(cache)
    np.testing.assert_allclose(layer.activation(z), y)
    dz = rng.standard_normal(z.shape)
    dx, grads = layer.backward_from_logits(cache, dz)
    linear = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    _built(linear, shape)
    if linear.weights:
        linear.set_weights(layer.get_weights())
    z2, cache2 = linear.forward(x, True)
    np.testing.assert_allclose(z2, z)
    dx2, grads2 = linear.backward(cache2, dz)
    np.testing.assert_allclose(dx, dx2)
    for a, b in zip(layer.trainable_weights, linear.trainable_weights):
        np.testing.assert_allclose(grads[a], grads2[b])


def test_first_layer_skips_the_input_gradient():
    layer = _built(L.Conv2D(2, 3, dtype=F64), (1, 5, 5, 1))
    y, cache = layer.forward(np.ones((1, 5, 5, 1)), True)
    dx, grads = layer.backward(cache, np.ones_like(y), need_input_grad=False)
    assert dx is None and set(grads) == {layer.kernel, layer.bias}


# --------------------------------------------------------------------------------------- configs
def _all_layers():
    return [
        L.InputLayer(shape=(5, 4)),
        L.Dense(7, activation="tanh", use_bias=False, kernel_initializer="he_normal", name="d"),
        L.Conv2D(8, (3, 2), strides=(2, 1), padding="same", data_format="channels_first", dilation_rate=1,
                 activation="relu", kernel_initializer="glorot_normal", bias_initializer="ones", trainable=False),
        L.MaxPooling2D(pool_size=3, strides=2, padding="same"),
        L.AveragePooling2D(pool_size=(2, 3), data_format="channels_first"),
        L.GlobalAveragePooling2D(keepdims=True),
        L.Flatten(data_format="channels_first"),
        L.Dropout(0.25, noise_shape=[None, 1], seed=3),
        L.Activation("softmax"),
        L.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.5),
        L.Add(),
        L.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="random_uniform"),
        L.Conv2D(3, 3, input_shape=(28, 28, 1), dtype="float64"),
        L.Concatenate(axis=1), L.Subtract(), L.Multiply(), L.Average(), L.Maximum(), L.Minimum(),
        L.ZeroPadding2D(((1, 2), (0, 3))), L.Cropping2D(1, data_format="channels_first"),
        L.UpSampling2D((2, 3), interpolation="bilinear"), L.Reshape((-1, 2)), L.Permute((2, 1)), L.RepeatVector(3),
        L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True),
        L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1, activation="gelu"),
        L.LeakyReLU(0.1), L.ELU(0.5), L.PReLU(alpha_initializer="ones", shared_axes=[1, 2]), L.Softmax(axis=[1, 2]),
        L.Identity(), L.SpatialDropout2D(0.2, data_format="channels_first", seed=1), L.GaussianNoise(0.1, seed=2),
        L.GaussianDropout(0.3), L.AlphaDropout(0.2, noise_shape=[None, 1]),
        L.LayerNormalization(axis=[1, 2], epsilon=1e-5, center=False), L.GroupNormalization(4, axis=1),
        L.UnitNormalization(axis=[1, 2]),
        L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(4, (3, 2), strides=2, activation="relu"),
        L.Lambda(fk.activations.tanh, output_shape=(3,), arguments={}),
        fk.applications.inception_resnet_v2.CustomScaleLayer(0.17),
        L.Rescaling([0.5, 1.0], offset=1.0), L.Normalization(axis=(1, 2), mean=[1.0], variance=[2.0], invert=True),
        L.Resizing(5, 6, interpolation="nearest", crop_to_aspect_ratio=True), L.CenterCrop(4, 3),
        L.RandomCrop(4, 4, seed=1), L.RandomFlip("vertical", seed=2),
        L.RandomRotation((-0.2, 0.1), fill_mode="nearest"),
        L.RandomZoom(0.1, (-0.2, 0.3), fill_mode="constant", fill_value=1.0), L.RandomTranslation(0.1, 0.2, seed=5),
        L.RandomContrast(0.2, value_range=(0, 1)), L.RandomBrightness(0.2, value_range=(-1, 1)),
    ]


@pytest.mark.parametrize("layer", _all_layers(), ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = layer.get_config()
    through_json = json.loads(json.dumps(config))
    clone = type(layer).from_config(through_json)
    assert type(clone) is type(layer)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    assert L.deserialize(L.serialize(layer)).get_config() == clone.get_config()


def test_config_round_trip_covers_every_layer_class():
    layer_classes = {name for name, cls in L.builtin_classes().items()
                     if not issubclass(cls, fk.Model) and not name.startswith("Base")}
    assert {type(layer).__name__ for layer in _all_layers()} == layer_classes


# ----------------------------------------------------------------------------- names and errors
def test_layer_names_follow_keras():
    backend.clear_session()
    names = [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.MaxPooling2D().name, L.ReLU().name,
             L.BatchNormalization().name, L.GlobalAveragePooling2D().name, L.Dense(1, name="out").name,
             L.Dense(1).name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "re_lu", "batch_normalization",
                     "global_average_pooling2d", "out", "dense"]
    backend.clear_session()
    assert L.Conv2D(1, 1).name == "conv2d"


def test_default_initializers_are_keras_ones():
    backend.clear_session()
    layer = _built(L.Conv2D(64, 3), (1, 8, 8, 32))
    limit = np.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))      # glorot_uniform, fans of a conv kernel
    k = layer.kernel.value
    assert k.dtype == np.float32 and np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / np.sqrt(3)) < 0.02 * limit
    np.testing.assert_array_equal(layer.bias.value, 0)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: L.Conv2D(4, 3), (2, 10, 10), "expected ndim=4.*grayscale images need a channel axis"),
    (lambda: L.MaxPooling2D(), (2, 36), "expected ndim=4"),
    (lambda: L.Conv2D(4, 5), (1, 3, 3, 1), 'Layer "conv2d.*window.*does not fit'),
    (lambda: L.Dense(3), (4,), "expected min_ndim=2"),
])
def test_layer_input_errors_name_the_layer(make, shape, message):
    backend.clear_session()
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, dtype=np.float32))


def test_built_layer_refuses_other_channel_counts():
    backend.clear_session()
    layer = _built(L.Conv2D(4, 3), (1, 8, 8, 3))
    with pytest.raises(ValueError, match='layer "conv2d".*axis -1 of input shape to have value 3'):
        layer(np.zeros((1, 8, 8, 1), dtype=np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: L.Dense(3, activation="swishy"), "Could not interpret activation function identifier: 'swishy'"),
    (lambda: L.Conv2D(3, 3, padding="full"), 'padding.*"valid" or "same"'),
    (lambda: L.Conv2D(3, (3, 3, 3)), "kernel_size.*tuple of 2 integers"),
    (lambda: L.Conv2D(3, 3, strides=2, dilation_rate=2), "strides > 1 not supported in conjunction with dilation"),
    (lambda: L.Dense(3, kernel_regularizer=lambda w: 0.0), "a regularizer must be a fastconv.keras.regularizers"),
    (lambda: L.Dense(0), "units must be a positive integer"),
    (lambda: L.Dropout(1.5), r"rate must be a number in \[0, 1\)"),
    (lambda: L.Dense(3, kernel_initializer="glorious"), "Could not interpret initializer"),
    (lambda: L.Dense(3, foo=1), "Unrecognized keyword arguments passed to Dense"),
    (lambda: L.Conv2D(3, 3, groups=2), "groups must be 1"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_activations_accept_functions_and_refuse_unknown_ones():
    assert activations.get(None) is activations.linear
    assert activations.get("ReLU") is activations.relu
    assert activations.get(activations.softmax) is activations.softmax
    with pytest.raises(ValueError, match="Could not interpret activation"):
        activations.get(lambda x: x ** 2)
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise"):
        s = activations.sigmoid(x)
    assert s.dtype == np.float32 and s[0] == 0 and s[-1] == 1 and 1e-9 < s[1] < 3e-9


# --------------------------------------------------------------------------------- Keras parity
def _keras_layer_cases(keras):
    KL = keras.layers
    return [
        (KL.Conv2D(5, 3, padding="same", activation="relu"), L.Conv2D(5, 3, padding="same", activation="relu"), (2, 7, 6, 3)),
        (KL.Conv2D(4, (2, 3), strides=2, activation="sigmoid"), L.Conv2D(4, (2, 3), strides=2, activation="sigmoid"), (2, 9, 8, 2)),
        (KL.Conv2D(3, 3, dilation_rate=2, padding="same", activation="tanh"),
         L.Conv2D(3, 3, dilation_rate=2, padding="same", activation="tanh"), (1, 8, 8, 2)),
        (KL.MaxPooling2D(3, 2, padding="same"), L.MaxPooling2D(3, 2, padding="same"), (2, 7, 7, 3)),
        (KL.AveragePooling2D(2, padding="same"), L.AveragePooling2D(2, padding="same"), (2, 5, 7, 3)),
        (KL.GlobalAveragePooling2D(), L.GlobalAveragePooling2D(), (2, 5, 4, 3)),
        (KL.Flatten(data_format="channels_first"), L.Flatten(data_format="channels_first"), (2, 3, 4, 5)),
        (KL.Dense(6, activation="softmax"), L.Dense(6, activation="softmax"), (3, 7)),
        (KL.Dense(2), L.Dense(2), (3, 4, 5)),
        (KL.ReLU(max_value=0.5, negative_slope=0.2, threshold=0.1), L.ReLU(max_value=0.5, negative_slope=0.2, threshold=0.1), (4, 9)),
        (KL.Activation("softmax"), L.Activation("softmax"), (3, 5)),
        (KL.BatchNormalization(), L.BatchNormalization(), (6, 3, 3, 4)),
    ]


def test_layers_match_keras_forward(tf):
    import keras
    rng = np.random.default_rng(13)
    for k_layer, f_layer, shape in _keras_layer_cases(keras):
        x = rng.standard_normal(shape).astype(np.float32)
        k_out = np.asarray(k_layer(x))
        _built(f_layer, shape)
        if k_layer.weights:
            f_layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 + (1.0 if "variance" in w.path else 0)
                                 for w in k_layer.weights])
            k_layer.set_weights(f_layer.get_weights())
        for training in (False, True):
            expected = np.asarray(k_layer(x, training=training))
            np.testing.assert_allclose(f_layer(x, training=training), expected, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{type(f_layer).__name__} training={training}")
        assert k_out.shape == np.shape(f_layer(x))
        if k_layer.weights:
            for kw, fw in zip(k_layer.get_weights(), f_layer.get_weights()):
                np.testing.assert_allclose(fw, kw, rtol=1e-6, atol=1e-6)  # BN's moving statistics
