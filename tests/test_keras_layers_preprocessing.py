"""Preprocessing and augmentation layers of fastconv.keras against Keras 3's.

The random layers are compared through Keras's own split: Keras draws a transformation
dictionary (``get_random_transformation``), both libraries apply that same dictionary
(``transform_images``), and the images must agree.  Tolerance of the warps: 2e-5 on images in
[0, 1].  TensorFlow computes the input positions in float32, fastconv in float64 from the same
float32 matrices, so the bilinear weights differ by a few float32 ulps of the positions
(about 1e-5 pixel for images of 24 pixels); the fill rules agree exactly for 'reflect',
'nearest' and 'constant' (see fastconv/keras/layers/preprocessing.py).
"""
import json

import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import backend
from fastconv.keras import layers as L

WARP_ATOL = 2e-5


def _light_dataset():
    from fastconv.keras.dataset import Dataset
    return Dataset


def _images(shape=(3, 20, 24, 3), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _numpy(transformation):
    """A Keras transformation (dict, tuple or tensor) with every tensor turned into NumPy."""
    if isinstance(transformation, dict):
        return {k: _numpy(v) for k, v in transformation.items()}
    if isinstance(transformation, (tuple, list)):
        return type(transformation)(_numpy(v) for v in transformation)
    return np.asarray(transformation) if hasattr(transformation, "numpy") else transformation


@pytest.mark.parametrize("make", [
    lambda m: m.RandomRotation(0.2, seed=3),
    lambda m: m.RandomRotation((-0.3, 0.1), fill_mode="nearest", seed=4),
    lambda m: m.RandomRotation(0.25, fill_mode="constant", fill_value=0.5, seed=5),
    lambda m: m.RandomZoom(0.3, seed=6),
    lambda m: m.RandomZoom((-0.4, -0.1), (0.1, 0.5), fill_mode="constant", seed=7),
    lambda m: m.RandomTranslation(0.2, (-0.3, 0.1), seed=8),
    lambda m: m.RandomTranslation(0.3, 0.3, fill_mode="nearest", seed=9),
    lambda m: m.RandomRotation(0.2, interpolation="nearest", seed=18),
    lambda m: m.RandomZoom(0.3, interpolation="nearest", fill_mode="constant", seed=19),
    lambda m: m.RandomFlip(seed=10), lambda m: m.RandomFlip("horizontal", seed=11),
    lambda m: m.RandomFlip("vertical", seed=12),
    lambda m: m.RandomContrast(0.5, value_range=(0, 1), seed=13),
    lambda m: m.RandomBrightness((-0.2, 0.4), value_range=(0, 1), seed=14),
    lambda m: m.RandomCrop(11, 13, seed=15), lambda m: m.RandomCrop(22, 10, seed=17),
    lambda m: m.RandomRotation(0.2, data_format="channels_first", seed=16),
], ids=lambda make: "")
def test_transform_images_of_a_keras_transformation_match_keras(tf, make):
    keras_layer, layer = make(tf.keras.layers), make(L)
    x = _images()
    if keras_layer.data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for _ in range(3):  # three draws
        transformation = keras_layer.get_random_transformation(x, training=True)
        expected = np.asarray(keras_layer.transform_images(x, transformation, training=True))
        got = layer.transform_images(x, _numpy(transformation), training=True)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=WARP_ATOL, rtol=0)


def test_one_image_takes_the_same_transformation_as_keras(tf):
    keras_layer, layer = tf.keras.layers.RandomRotation(0.2, seed=1), L.RandomRotation(0.2)
    x = _images((20, 24, 3))
    transformation = keras_layer.get_random_transformation(x, training=True)
    np.testing.assert_allclose(layer.transform_images(x, _numpy(transformation)),
                               np.asarray(keras_layer.transform_images(x, transformation)), atol=WARP_ATOL)


def test_own_draws_follow_keras_ranges():
    x = _images((400, 8, 8, 1))
    rotation = L.RandomRotation((-0.1, 0.3), seed=0).get_random_transformation(x)
    assert -36.0 <= rotation["angle"].min() < -30.0 and 100.0 < rotation["angle"].max() <= 108.0
    zoom = L.RandomZoom(0.5, (-0.2, 0.1), seed=0).get_random_transformation(x)
    assert 0.5 <= zoom["height_zoom"].min() < 0.55 and 1.45 < zoom["height_zoom"].max() <= 1.5
    assert 0.8 <= zoom["width_zoom"].min() < 0.82 and 1.08 < zoom["width_zoom"].max() <= 1.1
    shift = L.RandomTranslation(0.25, 0.5, seed=0).get_random_transformation(x)["translations"]
    assert np.abs(shift[:, 1]).max() <= 2.0 and np.abs(shift[:, 0]).max() <= 4.0 and np.abs(shift[:, 0]).max() > 3.8
    flips = L.RandomFlip(seed=0).get_random_transformation(x)["flips"]
    assert flips.shape == (400, 1, 1, 1) and 150 < flips.sum() < 250
    contrast = L.RandomContrast((0.2, 0.5), seed=0).get_random_transformation(x)["contrast_factor"]
    assert 0.8 <= contrast.min() < 0.82 and 1.48 < contrast.max() <= 1.5
    delta = L.RandomBrightness(0.1, seed=0).get_random_transformation(x)["rgb_delta"]
    assert -25.5 <= delta.min() < -24 and 24 < delta.max() <= 25.5


def test_random_layers_are_the_identity_outside_training_and_reproducible_with_a_seed():
    x = _images()
    for make in (lambda: L.RandomRotation(0.3, seed=2), lambda: L.RandomZoom(0.3, seed=2),
                 lambda: L.RandomTranslation(0.2, 0.2, seed=2), lambda: L.RandomFlip(seed=2),
                 lambda: L.RandomContrast(0.5, seed=2), lambda: L.RandomBrightness(0.3, seed=2),
                 lambda: L.RandomCrop(10, 10, seed=2)):
        a, b = make(), make()
        np.testing.assert_array_equal(a(x), x)
        np.testing.assert_array_equal(a(x, training=False), x)
        first = a(x, training=True)
        np.testing.assert_array_equal(first, b(x, training=True))
        assert not np.array_equal(a(x, training=True), first)   # the next batch draws anew
    backend.seed_generator(7)
    unseeded = L.RandomRotation(0.3)(x, training=True)
    backend.seed_generator(7)
    np.testing.assert_array_equal(L.RandomRotation(0.3)(x, training=True), unseeded)


@pytest.mark.parametrize("make, shape", [
    (lambda m: m.Rescaling(1 / 255.0, offset=-1.0), (2, 5, 6, 3)),
    (lambda m: m.Rescaling([0.5, 2.0, -1.0], offset=[0.0, 1.0, 2.0]), (2, 5, 6, 3)),
    (lambda m: m.Normalization(mean=[0.2, 0.5, 0.7], variance=[0.1, 0.04, 2.0]), (2, 5, 6, 3)),
    (lambda m: m.Normalization(axis=None, mean=0.3, variance=0.2, invert=True), (2, 5, 6, 3)),
    (lambda m: m.Normalization(axis=(1, -1), mean=np.ones((5, 3)), variance=np.full((5, 3), 3.0)), (2, 5, 6, 3)),
    (lambda m: m.Resizing(7, 9), (2, 20, 24, 3)), (lambda m: m.Resizing(31, 17), (2, 20, 24, 3)),
    (lambda m: m.Resizing(7, 9, interpolation="nearest"), (2, 20, 24, 3)),
    (lambda m: m.Resizing(33, 40, interpolation="nearest"), (2, 20, 24, 3)),
    (lambda m: m.Resizing(10, 10, crop_to_aspect_ratio=True), (2, 20, 24, 3)),
    (lambda m: m.Resizing(10, 10, pad_to_aspect_ratio=True, fill_value=0.5), (2, 20, 24, 3)),
    (lambda m: m.Resizing(30, 9, pad_to_aspect_ratio=True), (2, 20, 24, 3)),
    (lambda m: m.Resizing(6, 9, data_format="channels_first"), (2, 3, 20, 24)),
    (lambda m: m.CenterCrop(11, 8), (2, 20, 24, 3)), (lambda m: m.CenterCrop(30, 20), (2, 20, 24, 3)),
    (lambda m: m.CenterCrop(11, 8), (20, 24, 3)),
])
def test_deterministic_layers_match_keras(tf, make, shape):
    x = np.random.default_rng(1).random(shape).astype(np.float32)
    keras_layer, layer = make(tf.keras.layers), make(L)
    expected = np.asarray(keras_layer(x))
    got = layer(x)
    assert got.shape == expected.shape == tuple(layer.compute_output_shape(shape))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda m: m.Rescaling([0.5, 2.0, -1.0], offset=0.5),
    lambda m: m.Normalization(mean=[0.2, 0.5, 0.7], variance=[0.1, 0.04, 2.0]),
    lambda m: m.Normalization(mean=[0.2, 0.5, 0.7], variance=[0.1, 0.04, 2.0], invert=True),
    lambda m: m.Resizing(7, 9), lambda m: m.Resizing(31, 17), lambda m: m.Resizing(9, 9, interpolation="nearest"),
    lambda m: m.Resizing(10, 10, crop_to_aspect_ratio=True), lambda m: m.CenterCrop(11, 8),
    lambda m: m.Resizing(10, 10, pad_to_aspect_ratio=True), lambda m: m.Resizing(30, 9, pad_to_aspect_ratio=True),
    lambda m: m.CenterCrop(30, 20),
])
def test_gradients_match_tensorflow(tf, make):
    x = np.random.default_rng(2).random((2, 20, 24, 3))
    keras_layer, layer = make(tf.keras.layers), make(L)
    layer(x)  # builds
    out, cache = layer.forward(x.astype(np.float32))
    weights = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    xt = tf.constant(x, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(keras_layer(xt) * weights)
    expected = tape.gradient(loss, xt).numpy()
    got, weight_grads = layer.backward(cache, weights, need_input_grad=True)
    assert weight_grads == {}
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)


def test_resizing_gradient_is_the_transpose_of_its_forward_in_float64():
    layer = L.Resizing(7, 11, dtype="float64")
    rng = np.random.default_rng(4)
    x, g = rng.random((1, 9, 5, 2)), rng.random((1, 7, 11, 2))
    out, cache = layer.forward(x)
    dx, _ = layer.backward(cache, g)
    # <R x, g> = <x, R^T g> for the linear map R.
    np.testing.assert_allclose(np.sum(out * g), np.sum(x * dx), rtol=1e-12)


def test_flip_and_crop_pass_gradients_in_training():
    x = _images((2, 12, 12, 1))
    flip = L.RandomFlip(seed=0)
    y, cache = flip.forward(x, training=True)
    dx, _ = flip.backward(cache, y)
    np.testing.assert_array_equal(dx, x)  # flipping twice
    crop = L.RandomCrop(5, 6, seed=0)
    y, cache = crop.forward(x, training=True)
    dx, _ = crop.backward(cache, np.ones_like(y))
    assert dx.shape == x.shape and dx.sum() == y.size and set(np.unique(dx)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="no gradient through this augmentation"):
        rotation = L.RandomRotation(0.1)
        rotation.backward(rotation.forward(x, training=True)[1], x)


def test_normalization_adapt_matches_keras_on_arrays_and_batches(tf):
    x = np.random.default_rng(5).random((10, 6, 5, 3)).astype(np.float32) * 4 + 1
    keras_layer = tf.keras.layers.Normalization()
    keras_layer.adapt(x)
    on_array, on_batches, on_dataset = L.Normalization(), L.Normalization(), L.Normalization(axis=(-1,))
    on_array.adapt(x)
    on_batches.adapt([x[:3], x[3:8], x[8:]])
    on_dataset.adapt(_light_dataset().from_tensor_slices((x, np.arange(10))).batch(4))
    assert [(w.name, w.shape, w.trainable) for w in on_array.weights] == \
        [(w.name, tuple(w.shape), w.trainable) for w in keras_layer.weights]
    for layer in (on_array, on_batches, on_dataset):
        for ours, theirs in zip(layer.get_weights(), keras_layer.get_weights()):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer(x), np.asarray(keras_layer(x)), atol=1e-5)


def test_models_with_preprocessing_layers_train_save_load_and_count_as_keras(tf, tmp_path):
    def build(m):
        return m.Sequential([m.Input((12, 12, 3)), m.layers.Rescaling(1 / 255.0), m.layers.Normalization(),
                             m.layers.RandomFlip(seed=1), m.layers.RandomRotation(0.1, seed=1),
                             m.layers.RandomZoom(0.1, seed=1), m.layers.Resizing(8, 8), m.layers.CenterCrop(6, 6),
                             m.layers.Conv2D(2, 3), m.layers.Flatten(), m.layers.Dense(1)])
    backend.clear_session()
    tf.keras.backend.clear_session()
    ours, theirs = build(fk), build(tf.keras)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    lines = []
    ours.summary(print_fn=lines.append)
    assert "(RandomRotation)" in "\n".join(lines) and "Non-trainable params: 7" in "\n".join(lines)
    x = np.random.default_rng(6).random((8, 12, 12, 3)).astype(np.float32) * 255
    ours.layers[1].adapt(x / 255.0)
    ours.compile("adam", "mse")
    ours.fit(x, np.zeros((8, 1)), epochs=1, verbose=0)
    path = str(tmp_path / "augmented.keras")
    ours.save(path)
    loaded = fk.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ours.predict(x, verbose=0))
    theirs.set_weights(ours.get_weights())
    theirs.layers[1].finalize_state()  # Keras's Normalization reads its weights again (as its loading does)
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), atol=1e-5)


def _keras_layers():
    return [L.Rescaling([0.5, 1.0], offset=1.0), L.Normalization(axis=(1, 2), mean=[1.0], variance=[2.0]),
            L.Resizing(5, 6, interpolation="nearest", crop_to_aspect_ratio=True), L.CenterCrop(4, 3),
            L.RandomCrop(4, 4, seed=1), L.RandomFlip("vertical", seed=2), L.RandomRotation((-0.2, 0.1)),
            L.RandomZoom(0.1, (-0.2, 0.3), fill_mode="constant"), L.RandomTranslation(0.1, 0.2, seed=5),
            L.RandomContrast(0.2, value_range=(0, 1)), L.RandomBrightness(0.2)]


def test_names_and_config_keys_are_keras_ones(tf):
    backend.clear_session()
    for layer in _keras_layers():
        keras_layer = getattr(tf.keras.layers, type(layer).__name__).from_config(
            {k: v for k, v in json.loads(json.dumps(layer.get_config())).items() if k != "name"})
        assert layer.name == backend.to_snake_case(type(layer).__name__)
        assert set(layer.get_config()) == set(keras_layer.get_config())
        for key, value in keras_layer.get_config().items():
            if key not in ("name", "dtype"):
                assert json.loads(json.dumps(layer.get_config()[key])) == json.loads(json.dumps(value)), key


def test_layers_work_inside_dataset_map():
    x = _images((10, 16, 16, 3))
    flip, rotation = L.RandomFlip(seed=0), L.RandomRotation(0.1, seed=0)
    batches = [(rotation(flip(xb, training=True), training=True), yb)
               for xb, yb in ((x[i:i + 4], np.arange(i, min(i + 4, 10))) for i in range(0, 10, 4))]
    assert [b[0].shape for b in batches] == [(4, 16, 16, 3), (4, 16, 16, 3), (2, 16, 16, 3)]
    dataset = _light_dataset().from_tensor_slices((x, np.arange(10))).batch(4).map(
        lambda xb, yb: (flip(xb, training=True), yb))
    assert [b[0].shape[0] for b in dataset] == [4, 4, 2]


@pytest.mark.parametrize("make, error, match", [
    (lambda: L.RandomRotation(0.1, fill_mode="wrap"), NotImplementedError, "fill_mode='wrap' is not implemented"),
    (lambda: L.RandomRotation(0.1, fill_mode="mirror"), NotImplementedError, "Unknown `fill_mode` mirror"),
    (lambda: L.RandomZoom(0.1, interpolation="bicubic"), NotImplementedError, "Unknown `interpolation` bicubic"),
    (lambda: L.RandomRotation(1.5), ValueError, r"`factor` argument.*\[-1, 1\]. Received: factor=1.5"),
    (lambda: L.RandomZoom(-1.0), ValueError, r"height_factor.*\(-1.0, 1.0\]"),
    (lambda: L.RandomTranslation(0.1, (0.1, 0.2, 0.3)), ValueError, "width_factor"),
    (lambda: L.RandomContrast(-0.1), ValueError, r"\[0, 1\]"),
    (lambda: L.RandomBrightness(0.1, value_range=5), ValueError, "value_range"),
    (lambda: L.RandomFlip("diagonal"), ValueError, "unknown mode argument diagonal"),
    (lambda: L.Resizing(5, 5, interpolation="bicubic"), ValueError, "'bilinear' or 'nearest' only"),
    (lambda: L.Resizing(5, 5, pad_to_aspect_ratio=True, crop_to_aspect_ratio=True), ValueError, "Only one of"),
    (lambda: L.Resizing(5, 5, fill_mode="reflect"), ValueError, "Only `'constant'` is supported"),
    (lambda: L.Resizing(5, 5, antialias=True), ValueError, "antialias=True is not implemented"),
    (lambda: L.Resizing(0, 5), ValueError, "height must be a positive int"),
    (lambda: L.Normalization(mean=[1.0]), ValueError, "both `mean` and `variance` must be set"),
    (lambda: L.Normalization(mean=[[1.0]], variance=[[1.0]]), ValueError, "rank of `mean`"),
    (lambda: L.Rescaling("half"), TypeError, "scale must be a number"),
    (lambda: L.RandomFlip(seed=1.5), ValueError, "seed must be an int"),
])
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="rank 3 .* or 4"):
        L.RandomRotation(0.1)(np.zeros((2, 3)), training=True)
    layer = L.Normalization()
    layer.adapt(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="incompatible shape"):
        layer.adapt(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="empty iterable"):
        L.Normalization().adapt([])
    with pytest.raises(ValueError, match="was given them"):
        L.Normalization(mean=1.0, variance=1.0).adapt(np.zeros((4, 3)))
