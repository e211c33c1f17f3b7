"""Reshaping layers: gradients by finite differences (float64), Keras parity of outputs,
gradients, shapes, names and configurations, and one error per validation branch."""
import json

import numpy as np
import pytest

from fastconv.keras import backend
from fastconv.keras import layers as L

from _layer_parity import assert_matches_keras, assert_same_config
from _layer_parity import check_gradients

CASES = [
    ("ZeroPadding2D", dict(), (2, 3, 4, 2)),
    ("ZeroPadding2D", dict(padding=2), (1, 3, 4, 2)),
    ("ZeroPadding2D", dict(padding=(1, 2)), (1, 3, 4, 2)),
    ("ZeroPadding2D", dict(padding=((0, 1), (2, 3)), data_format="channels_first"), (1, 2, 3, 4)),
    ("Cropping2D", dict(cropping=1), (2, 4, 5, 2)),
    ("Cropping2D", dict(cropping=((1, 0), (2, 1))), (1, 4, 5, 2)),
    ("Cropping2D", dict(cropping=(1, 2), data_format="channels_first"), (1, 2, 4, 6)),
    ("UpSampling2D", dict(), (2, 3, 4, 2)),
    ("UpSampling2D", dict(size=(3, 2), data_format="channels_first"), (1, 2, 3, 4)),
    ("UpSampling2D", dict(interpolation="bilinear"), (2, 3, 4, 2)),
    ("UpSampling2D", dict(size=(3, 2), interpolation="bilinear"), (1, 1, 5, 3)),
    ("UpSampling2D", dict(size=(2, 3), interpolation="bilinear", data_format="channels_first"), (1, 2, 4, 3)),
    ("Reshape", dict(target_shape=(6, -1)), (2, 3, 4, 2)),
    ("Reshape", dict(target_shape=(4, 6)), (2, 3, 8)),
    ("Permute", dict(dims=(3, 1, 2)), (2, 3, 4, 2)),
    ("Permute", dict(dims=(2, 1)), (2, 3, 4)),
    ("RepeatVector", dict(n=3), (2, 5)),
]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session(free_memory=False)
    backend.clear_session()
    return keras_module


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_gradients(name, kwargs, shape):
    x = np.random.default_rng(1).standard_normal(shape)
    layer = getattr(L, name)(dtype="float64", **kwargs)
    y = layer(x)
    assert y.shape == layer.compute_output_shape(shape)
    check_gradients(layer, x)


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_parity_with_keras(tf, keras, name, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    f_layer, k_layer = getattr(L, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    assert_matches_keras(tf, f_layer, k_layer, x)
    assert f_layer.name == k_layer.name
    assert_same_config(f_layer, k_layer)
    symbolic = (None,) + shape[1:]
    assert f_layer.compute_output_shape(symbolic) == tuple(k_layer.compute_output_shape(symbolic))


@pytest.mark.parametrize("name, kwargs, shape", [
    ("ZeroPadding2D", dict(padding=(1, 2)), (None, None, 4, 3)),
    ("Cropping2D", dict(cropping=1), (None, 5, None, 3)),
    ("UpSampling2D", dict(data_format="channels_first"), (None, 3, None, 4)),
    ("Reshape", dict(target_shape=(-1, 2)), (None, None, 4)),
    ("Permute", dict(dims=(2, 1)), (None, None, 4)),
])
def test_unknown_sizes_are_kept(tf, keras, name, kwargs, shape):
    f_shape = getattr(L, name)(**kwargs).compute_output_shape(shape)
    assert f_shape == tuple(getattr(keras.layers, name)(**kwargs).compute_output_shape(shape))
    assert None in f_shape[1:]


def test_bilinear_upsampling_matches_the_half_pixel_formula():
    # One row 0, 1, 2 upsampled by 2: samples at -0.25, 0.25, 0.75, 1.25, 1.75, 2.25, clamped.
    layer = L.UpSampling2D(size=(1, 2), interpolation="bilinear", dtype="float64")
    y = layer(np.arange(3.0).reshape(1, 1, 3, 1))
    np.testing.assert_allclose(y.ravel(), [0, 0.25, 0.75, 1.25, 1.75, 2])


def test_auto_names(keras):
    names = [L.ZeroPadding2D().name, L.Cropping2D().name, L.UpSampling2D().name, L.Reshape((1,)).name,
             L.Permute((1,)).name, L.RepeatVector(2).name, L.ZeroPadding2D().name]
    assert names == ["zero_padding2d", "cropping2d", "up_sampling2d", "reshape", "permute", "repeat_vector",
                     "zero_padding2d_1"]
    assert [keras.layers.ZeroPadding2D().name, keras.layers.Cropping2D().name,
            keras.layers.UpSampling2D().name] == names[:3]


@pytest.mark.parametrize("layer", [L.ZeroPadding2D(((1, 2), (0, 3)), data_format="channels_first"),
                                   L.Cropping2D(2), L.UpSampling2D(3, interpolation="bilinear"),
                                   L.Reshape((2, -1)), L.Permute((2, 1)), L.RepeatVector(4)],
                         ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(layer.get_config()))
    clone = L.deserialize({"class_name": type(layer).__name__, "config": config})
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(layer.get_config(), sort_keys=True)


@pytest.mark.parametrize("make, message", [
    (lambda: L.ZeroPadding2D(-1), r"`padding` should be either a non-negative int.*Received: padding=-1"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), r"Received: padding=\(1, 2, 3\)"),
    (lambda: L.ZeroPadding2D(((1, 2), (1,))), "`padding` should be either"),
    (lambda: L.ZeroPadding2D("same"), "`padding` should be either"),
    (lambda: L.Cropping2D(((1, -2), (1, 1))), "`cropping` should be either"),
    (lambda: L.ZeroPadding2D(data_format="nhwc"), "data_format"),
    (lambda: L.UpSampling2D(size=0), "`size` argument must be a tuple of 2 positive integers"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), 'implements interpolation "nearest" and "bilinear" only'),
    (lambda: L.Reshape(5), "target_shape must be a tuple of ints"),
    (lambda: L.Reshape((2, -2)), "must be a non-negative integer, or `-1`"),
    (lambda: L.Reshape((-1, -1)), r"at most one unknown dimension \(-1\)"),
    (lambda: L.Permute((0, 1)), "must be consecutive and start from 1"),
    (lambda: L.RepeatVector(0), "should be a positive integer. Received: n=0"),
    (lambda: L.RepeatVector(2.0), "expected an integer value for `n`"),
])
def test_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize("make, shape, message", [
    (lambda: L.Cropping2D(((2, 1), (0, 0))), (1, 3, 4, 1), 'Cropping2D "cropping2d.*should be smaller than'),
    (lambda: L.ZeroPadding2D(), (2, 3, 4), "expected ndim=4"),
    (lambda: L.Reshape((5, 2)), (2, 3, 4), "the total size of the tensor must be unchanged"),
    (lambda: L.Reshape((5, -1)), (2, 3, 4), "cannot fill target_shape"),
    (lambda: L.Permute((2, 1)), (2, 3, 4, 5), "expected ndim=3"),
    (lambda: L.RepeatVector(2), (2, 3, 4), "expected ndim=2"),
])
def test_input_errors(make, shape, message):
    backend.clear_session()
    with pytest.raises(ValueError, match=message):
        make()(np.zeros(shape, np.float32))
