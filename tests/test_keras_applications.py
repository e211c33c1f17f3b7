"""fastconv.keras.applications against keras.applications: the same layers (names in Keras's
order, classes, output shapes, parameter counts), Keras's weight files loaded (a legacy .h5 file
written by Keras, and "imagenet" through a pre-filled cache, never a download) giving Keras's
predictions, and imagenet_utils' preprocess_input / decode_predictions."""
import hashlib
import json
import os

import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import applications as A
from fastconv.keras.applications import imagenet_utils
from fastconv.keras.saving.layer_order import keras_layers

# Models whose build is quick enough for the default run; the others are marked slow.
QUICK = {"ResNet50", "MobileNetV2", "EfficientNetB0"}
# The smallest input each family accepts (a quick prediction).
SMALL_INPUT = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}


def _params(names):
    return [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow) for n in names]


def _keras_builder(name):
    import keras
    return getattr(keras.applications, name)


def _architecture(model, ordered_layers):
    return [(layer.name, type(layer).__name__, tuple(layer.output.shape), layer.count_params())
            for layer in ordered_layers]


def _trainable_count(weights):
    return int(sum(np.prod(w.shape) for w in weights))


@pytest.mark.parametrize("name", _params(sorted(A.MODELS)))
def test_architecture_matches_keras(tf, name):
    """Layer for layer (in Keras's order), with the top at the default size: names, classes,
    output shapes, parameter counts; totals, trainable and non-trainable."""
    import keras
    keras.backend.clear_session()
    theirs = _keras_builder(name)(weights=None)
    fk.backend.clear_session()
    ours = A.MODELS[name](weights=None)
    assert ours.name == theirs.name
    assert _architecture(ours, keras_layers(ours)) == _architecture(theirs, theirs.layers)
    assert ours.count_params() == theirs.count_params()
    assert _trainable_count(ours.trainable_weights) == _trainable_count(theirs.trainable_weights)
    assert _trainable_count(ours.non_trainable_weights) == _trainable_count(theirs.non_trainable_weights)


def _randomise(model, rng):
    """Random weights for a Keras model; BatchNormalization's statistics moved away from 0 and
    1 (and Normalization's) so that inference uses them."""
    for layer in model.layers:
        values = []
        for w in layer.weights:
            shape, key = tuple(w.shape), w.path.rsplit("/", 1)[-1]
            if key in ("moving_variance", "variance"):
                values.append(rng.uniform(0.5, 1.5, shape))
            elif key == "gamma":
                values.append(rng.uniform(0.8, 1.2, shape))
            elif key in ("moving_mean", "beta", "mean", "bias"):
                values.append(rng.normal(0.0, 0.1, shape))
            else:  # kernels as Keras initialised them, Normalization's count as it is
                values.append(np.asarray(w.numpy()))
        if values:
            layer.set_weights([v.astype(np.asarray(w.numpy()).dtype) for v, w in zip(values, layer.weights)])


def _save_legacy_weights(model, path):
    """The layout of Keras's application weight files (tf.keras 2's save_weights to .h5)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _keras_predict(model, x):
    """Keras's inference, called eagerly (predict would first compile a graph, seconds per model)."""
    return np.asarray(model(x, training=False))


def _assert_close(ours, theirs):
    scale = max(1.0, float(np.max(np.abs(theirs))))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


# One model per builder: the deeper variants (ResNet101/152, DenseNet169/201, EfficientNetB1-B7)
# are the same code with other counts, checked layer for layer by the architecture test.
PREDICTION_CASES = [pytest.param(n, marks=() if n in {"ResNet50", "MobileNetV2"} else pytest.mark.slow)
                    for n in ("DenseNet121", "EfficientNetB0", "InceptionResNetV2", "InceptionV3", "MobileNetV2",
                              "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception")]


@pytest.mark.parametrize("name", PREDICTION_CASES)
def test_keras_weights_file_gives_keras_predictions(tf, tmp_path, name):
    """Random weights saved by Keras in the applications' legacy .h5 layout, loaded by the
    builder's ``weights=path``: the same features (include_top=False, a small input) within 1e-4."""
    import keras
    size = SMALL_INPUT.get(name, 32)
    kwargs = {"include_top": False, "input_shape": (size, size, 3), "pooling": "avg"}
    keras.backend.clear_session()
    theirs = _keras_builder(name)(weights=None, **kwargs)
    _randomise(theirs, np.random.default_rng(0))
    path = str(tmp_path / "w.h5")
    _save_legacy_weights(theirs, path)
    ours = A.MODELS[name](weights=path, **kwargs)
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    _assert_close(ours.predict(x, verbose=0), _keras_predict(theirs, x))


@pytest.mark.slow
def test_top_at_its_fixed_size_gives_keras_predictions(tf, tmp_path):
    """With the classifier: MobileNetV2 at 96x96 (one of its published sizes), softmax over 1000."""
    import keras
    keras.backend.clear_session()
    theirs = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    _randomise(theirs, np.random.default_rng(2))
    path = str(tmp_path / "w.h5")
    _save_legacy_weights(theirs, path)
    ours = A.MobileNetV2(weights=path, input_shape=(96, 96, 3))
    assert ours.name == theirs.name == "mobilenetv2_1.00_96"
    x = np.random.default_rng(3).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    x = A.mobilenet_v2.preprocess_input(x)
    _assert_close(ours.predict(x, verbose=0), _keras_predict(theirs, x))


def _prefill_cache(monkeypatch, tmp_path, module, fname, source):
    """Keras's cache ($KERAS_HOME/models) holding ``source`` as ``fname``, and the module's hash
    of that file set to its md5 (the published hash belongs to the published file)."""
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    target = home / "models" / fname
    target.write_bytes(open(source, "rb").read())
    monkeypatch.setenv("KERAS_HOME", str(home))
    return hashlib.md5(target.read_bytes()).hexdigest()


def test_imagenet_weights_come_from_keras_cache(tf, tmp_path, monkeypatch):
    """weights="imagenet" reads Keras's file from Keras's cache (offline, no download)."""
    import keras
    keras.backend.clear_session()
    kwargs = {"include_top": False, "input_shape": (32, 32, 3)}
    theirs = keras.applications.ResNet50(weights=None, **kwargs)
    _randomise(theirs, np.random.default_rng(4))
    source = str(tmp_path / "src.h5")
    _save_legacy_weights(theirs, source)
    md5 = _prefill_cache(monkeypatch, tmp_path, A.resnet, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         source)
    monkeypatch.setitem(A.resnet.WEIGHTS_HASHES, "resnet50", (A.resnet.WEIGHTS_HASHES["resnet50"][0], md5))
    ours = A.ResNet50(weights="imagenet", **kwargs)
    x = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    x = A.resnet50.preprocess_input(x)
    _assert_close(ours.predict(x, verbose=0), _keras_predict(theirs, x))


def test_missing_imagenet_file_names_file_url_and_place(tmp_path, monkeypatch):
    """No network: the error names the file, Keras's URL and where to put the file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # Any connection attempt fails at once: the test never reaches the network.
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network disabled in the test")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)
    with pytest.raises(Exception) as info:
        A.MobileNetV2(weights="imagenet", include_top=False, input_shape=(96, 96, 3))
    message = str(info.value)
    fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    assert fname in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + fname in message
    assert os.path.join(str(tmp_path), "models") in message


def test_wrong_hash_in_cache_is_not_used(tmp_path, monkeypatch):
    """A cached file whose md5 is not Keras's is not loaded (get_file tries to download it again)."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"not the weights")
    monkeypatch.setenv("KERAS_HOME", str(home))
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network disabled in the test")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)
    with pytest.raises(Exception, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        A.ResNet50(weights="imagenet", include_top=False, input_shape=(32, 32, 3))


# ------------------------------------------------------------------------------ arguments
def test_arguments_checked_as_keras():
    with pytest.raises(ValueError, match="The `weights` argument should be either"):
        A.ResNet50(weights="/no/such/file.h5")
    with pytest.raises(ValueError, match="`classes` should be 1000"):
        A.ResNet50(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="should specify a static `input_shape`|`input_shape` should be"):
        A.VGG16(weights=None, include_top=True, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match="Input size must be at least 32x32"):
        A.ResNet50(weights=None, include_top=False, input_shape=(31, 31, 3))
    with pytest.raises(ValueError, match="Input size must be at least 71x71"):
        A.Xception(weights=None, include_top=False, input_shape=(70, 70, 3))
    with pytest.raises(ValueError, match="pooling"):
        A.ResNet50(weights=None, include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="alpha must be one of"):
        A.MobileNetV2(weights="imagenet", alpha=0.6)
    with pytest.raises(ValueError, match="`classifier_activation`"):
        A.ResNet50(weights="imagenet", classifier_activation="sigmoid")
    with pytest.raises(TypeError, match="input_tensor"):
        A.ResNet50(weights=None, input_tensor=np.zeros((1, 224, 224, 3)))


def test_pooling_and_input_tensor():
    model = A.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3), pooling="max")
    assert model.layers[-1].name == "max_pool" and model.outputs[0].shape == (None, 2048)
    assert A.ResNet50(weights=None, include_top=False).outputs[0].shape == (None, None, None, 2048)
    inputs = fk.Input((48, 48, 3))
    x = fk.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    model = A.ResNet50V2(weights=None, include_top=False, input_tensor=x, pooling="avg")
    assert model.inputs[0] is inputs
    assert model.predict(np.zeros((1, 48, 48, 3), np.float32), verbose=0).shape == (1, 2048)
    model = A.VGG16(weights=None, include_top=True, input_shape=(32, 32, 3), classes=3, classifier_activation=None)
    assert model.outputs[0].shape == (None, 3)


def test_custom_scale_layer():
    layer = A.inception_resnet_v2.CustomScaleLayer(0.17)
    x, up = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    np.testing.assert_allclose(layer([x, up]), x + 0.17 * up)
    y, cache = layer.forward([x, up])
    grads, weights = layer.backward(cache, np.ones_like(y))
    np.testing.assert_allclose(grads[0], 1.0)
    np.testing.assert_allclose(grads[1], 0.17)
    assert weights == {}
    assert layer.get_config()["scale"] == 0.17
    assert fk.layers.deserialize({"class_name": "CustomScaleLayer", "config": layer.get_config()}).scale == 0.17


# ------------------------------------------------------------------------- imagenet_utils
@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("batched", [True, False])
def test_preprocess_input_matches_keras(tf, mode, data_format, batched):
    from keras.applications import imagenet_utils as keras_utils
    rng = np.random.default_rng(6)
    shape = (2, 5, 4, 3) if data_format == "channels_last" else (2, 3, 5, 4)
    x = rng.uniform(0, 255, shape if batched else shape[1:]).astype(np.float32)
    before = x.copy()
    ours = imagenet_utils.preprocess_input(x, data_format=data_format, mode=mode)
    np.testing.assert_array_equal(x, before)  # unlike Keras, the argument is not modified
    theirs = keras_utils.preprocess_input(x.copy(), data_format=data_format, mode=mode)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-5)
    assert ours.dtype == np.float32
    ints = np.round(x).astype(np.uint8)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(ints, data_format=data_format, mode=mode),
                               keras_utils.preprocess_input(ints.copy(), data_format=data_format, mode=mode),
                               rtol=1e-6, atol=1e-5)


def test_family_preprocessing_modes():
    x = np.full((1, 2, 2, 3), 255.0, np.float32)
    np.testing.assert_allclose(A.resnet_v2.preprocess_input(x), 1.0)
    np.testing.assert_allclose(A.resnet50.preprocess_input(x)[0, 0, 0], 255.0 - np.array([103.939, 116.779, 123.68]),
                               rtol=1e-6)
    np.testing.assert_allclose(A.densenet.preprocess_input(x)[0, 0, 0],
                               (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-6)
    assert A.efficientnet.preprocess_input(x) is x
    for module in (A.vgg16, A.vgg19, A.xception, A.inception_v3, A.inception_resnet_v2, A.mobilenet_v2):
        assert callable(module.preprocess_input) and module.decode_predictions is imagenet_utils.decode_predictions


def test_preprocess_input_refuses_bad_input():
    with pytest.raises(ValueError, match="mode"):
        imagenet_utils.preprocess_input(np.zeros((1, 2, 2, 3)), mode="bgr")
    with pytest.raises(ValueError, match="3 channels"):
        imagenet_utils.preprocess_input(np.zeros((1, 2, 2, 4)))
    with pytest.raises(ValueError, match="data_format"):
        imagenet_utils.preprocess_input(np.zeros((1, 2, 2, 3)), data_format="nhwc")


def test_decode_predictions_on_a_known_vector(tf, monkeypatch):
    from keras.src.applications import imagenet_utils as keras_utils
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [281, 285, 1]] = [0.6, 0.3, 0.1]   # tabby, Egyptian cat, goldfish
    preds[1, 999] = 1.0
    ours = imagenet_utils.decode_predictions(preds, top=3)
    assert [(w, n) for w, n, _ in ours[0]] == [("n02123045", "tabby"), ("n02124075", "Egyptian_cat"),
                                               ("n01443537", "goldfish")]
    assert ours[1][0][:2] == ("n15075141", "toilet_tissue")
    # Keras would download its copy of the index; give it ours (the md5 test below shows they are one file).
    monkeypatch.setattr(keras_utils, "CLASS_INDEX", json.load(open(imagenet_utils.CLASS_INDEX_PATH)))
    theirs = keras_utils.decode_predictions(preds, top=3)
    assert [[(w, n, float(s)) for w, n, s in row] for row in ours] == \
        [[(w, n, float(s)) for w, n, s in row] for row in theirs]
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        imagenet_utils.decode_predictions(np.zeros((2, 10)))


def test_class_index_is_keras_file():
    data = open(imagenet_utils.CLASS_INDEX_PATH, "rb").read()
    assert hashlib.md5(data).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
    assert len(json.loads(data)) == 1000
