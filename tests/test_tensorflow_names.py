"""``import fastconv as tf``: TensorFlow's names of the array functions Keras programs call around
their models (fastconv/_tensorflow_names.py, fastconv.nn, fastconv.image), against TensorFlow."""
import numpy as np
import pytest

import fastconv

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
LOGITS = (rng.standard_normal((3, 5)) * 30).astype(np.float32)
IMAGES = rng.integers(0, 256, (2, 7, 9, 3)).astype(np.uint8)

CASES = [
    ("expand_dims", (X, 0), {}), ("expand_dims", (X, -1), {}), ("squeeze", (X[:, :1],), {}),
    ("squeeze", (X[:, :1], 1), {}), ("cast", (X, "int32"), {}), ("constant", (1.5,), {}),
    ("constant", ([1, 2],), {}), ("constant", (0.0,), {"shape": (2, 2)}), ("convert_to_tensor", ([1.0, 2.0],), {}),
    ("reshape", (X, (4, -1)), {}), ("shape", (X,), {}), ("concat", ([X, X], 1), {}), ("stack", ([X, X],), {}),
    ("where", (X > 0, X, 0.0), {}), ("where", (X > 0,), {}), ("zeros", ((2, 3),), {}), ("ones", ((2,),), {}),
    ("zeros_like", (X,), {}), ("ones_like", (X,), {}), ("range", (5,), {}), ("range", (1, 7, 2), {}),
    ("one_hot", ([0, 2, 5], 4), {}), ("one_hot", ([[1], [0]], 3), {"on_value": 5.0, "off_value": -1.0}),
    ("argmax", (LOGITS,), {}), ("argmax", (LOGITS, 1), {}), ("argmin", (LOGITS,), {"axis": -1}),
    ("reduce_mean", (X,), {}), ("reduce_mean", (X, 1), {"keepdims": True}), ("reduce_sum", (X, [0, 2]), {}),
    ("reduce_max", (X,), {"axis": 0}), ("reduce_min", (X,), {}), ("reduce_prod", (X[:, :, :2],), {"axis": 2}),
    ("reduce_mean", (np.array([1, 2, 4]),), {}), ("clip_by_value", (X, -0.5, 0.5), {}),
    ("transpose", (X,), {}), ("transpose", (X, [1, 0, 2]), {}), ("maximum", (X, 0.0), {}),
    ("minimum", (X, 0.0), {}), ("exp", (X,), {}), ("square", (X,), {}), ("abs", (X,), {}), ("round", (X * 3,), {}),
    ("math.sigmoid", (LOGITS,), {}), ("math.argmax", (LOGITS, 1), {}), ("math.reduce_mean", (X,), {}),
    ("nn.softmax", (LOGITS,), {}), ("nn.softmax", (LOGITS,), {"axis": 0}), ("nn.log_softmax", (LOGITS,), {}),
    ("nn.sigmoid", (LOGITS,), {}), ("nn.relu", (X,), {}),
    ("image.flip_left_right", (IMAGES,), {}), ("image.flip_up_down", (IMAGES[0],), {}),
    ("image.rot90", (IMAGES,), {}), ("image.rot90", (IMAGES[0],), {"k": 3}),
    ("image.central_crop", (IMAGES,), {"central_fraction": 0.5}),
    ("image.rgb_to_grayscale", (IMAGES,), {}), ("image.rgb_to_grayscale", (IMAGES.astype(np.float32) / 255,), {}),
    ("image.resize", (IMAGES, (5, 13)), {}), ("image.resize", (IMAGES[0], (14, 4)), {"method": "nearest"}),
    ("image.resize", (IMAGES.astype(np.float64), (3, 3)), {}),
    ("image.resize", (IMAGES, (10, 10)), {"preserve_aspect_ratio": True}),
]


def _get(module, dotted):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_as_tensorflow(tf, name, args, kwargs):
    ours = _get(fastconv, name)(*args, **kwargs)
    theirs = _get(tf, name)(*args, **kwargs).numpy()
    assert isinstance(ours, np.ndarray)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-5 if name == "image.resize" else 1e-7)


def test_dtypes_and_devices_as_tensorflow(tf):
    for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool"):
        assert np.dtype(getattr(fastconv, name)) == np.dtype(getattr(tf, name).as_numpy_dtype)
    assert fastconv.config.list_physical_devices("GPU") == []
    assert [d.device_type for d in fastconv.config.list_physical_devices()] == ["CPU"]
    assert repr(fastconv.config.list_physical_devices("CPU")[0]) == \
        "PhysicalDevice(name='/physical_device:CPU:0', device_type='CPU')"
    with pytest.raises(AttributeError, match="module 'fastconv' has no attribute 'GradientTape'"):
        fastconv.GradientTape  # noqa: B018 (the attribute access is what raises)


def test_the_image_classification_tutorials_prediction_lines():
    """The last lines of TensorFlow's image classification tutorial, with `import fastconv as tf`."""
    tf = fastconv
    img_array = np.zeros((180, 180, 3), np.float32)
    img_array = tf.expand_dims(img_array, 0)   # Create a batch
    predictions = np.array([[2.0, -1.0, 0.5]], np.float32)
    score = tf.nn.softmax(predictions[0])
    assert img_array.shape == (1, 180, 180, 3) and int(np.argmax(score)) == 0
    assert 100 * np.max(score) == pytest.approx(100 * np.exp(2) / np.exp([2, -1, 0.5]).sum(), rel=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="resize: antialias=True is not supported"):
        fastconv.image.resize(IMAGES, (4, 4), antialias=True)
    with pytest.raises(ValueError, match="resize: method must be one of \\['bilinear', 'nearest'\\]"):
        fastconv.image.resize(IMAGES, (4, 4), method="bicubic")
    with pytest.raises(ValueError, match="resize: 'images' must have either 3 or 4 dimensions"):
        fastconv.image.resize(IMAGES[0, :, :, 0], (4, 4))
    with pytest.raises(TypeError, match="softmax: logits must be floating point"):
        fastconv.nn.softmax(np.array([1, 2]))
    with pytest.raises(ValueError, match="central_crop: central_fraction must be within \\(0, 1\\]"):
        fastconv.image.central_crop(IMAGES, 0)


def test_batches_and_layer_outputs_answer_numpy_as_tensorflows_tensors():
    """The TensorFlow tutorials' plotting lines: ``images[i].numpy().astype("uint8")`` on a
    dataset's batch and on an augmentation layer's output."""
    import fastconv.keras as keras

    tf = fastconv
    x = rng.integers(0, 256, (10, 8, 8, 3)).astype(np.float32)
    y = np.arange(10)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    for images, labels in train_ds.take(1):
        first = images[0].numpy().astype("uint8")
        assert type(first) is np.ndarray and first.shape == (8, 8, 3)
        np.testing.assert_array_equal(first, x[0].astype("uint8"))
        assert int(labels[1]) == 1 and labels.numpy().dtype == y.dtype
    assert all(type(a) is np.ndarray for a in next(train_ds.as_numpy_iterator()))
    data_augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal")])
    augmented = data_augmentation(x[:2], training=True)
    assert augmented[0].numpy().shape == (8, 8, 3)
    # predict returns plain arrays (as Keras 3 on any backend)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert type(model.predict(x, verbose=0)) is np.ndarray
    assert model(x).numpy().shape == (10, 2)
