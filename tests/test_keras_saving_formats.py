"""Keras's files both ways: fastconv's .keras / .h5 / .weights.h5 files load in Keras 3 and
predict the same, Keras 3's (and tf.keras 2's) files load in fastconv and predict the same, and
every layer's configuration survives the translation."""
import io
import json
import warnings
import zipfile

import h5py
import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import layers as L


def _images(n=6, size=8, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def _residual_model(dropout=0.25):
    inp = fk.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu", padding="same")(inp)
    x = L.BatchNormalization()(x)
    shortcut = L.Conv2D(4, 1)(inp)
    x = L.Add()([x, shortcut])
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dropout(dropout)(x)
    return fk.Model(inp, L.Dense(3, activation="softmax")(x))


def _trained(model, x, optimizer="adam"):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, np.arange(len(x)) % 3, epochs=2, batch_size=len(x), shuffle=False, verbose=0)
    # Non-trivial moving statistics, so that BatchNormalization's order of weights matters.
    bn = next(layer for layer in model.layers if isinstance(layer, L.BatchNormalization))
    rng = np.random.default_rng(1)
    bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape))
    bn.moving_variance.assign(rng.uniform(0.5, 2, size=bn.moving_variance.shape))
    return model


def _keras_predict(keras_model, x):
    """A Keras model's inference output, called eagerly (predict would first trace a function)."""
    return np.asarray(keras_model(x, training=False))


def _quiet_keras_load(tf, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.keras.models.load_model(path, **kwargs)


# ---------------------------------------------------------------------------- fastconv -> Keras
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_fastconv_model_file_loads_in_keras_and_trains_on(tf, tmp_path, suffix):
    x = _images()
    labels = np.arange(len(x)) % 3
    model = _trained(_residual_model(dropout=0.0), x)   # no random dropout: training is compared
    path = tmp_path / f"model{suffix}"
    model.save(path)
    keras_model = _quiet_keras_load(tf, path)
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)
    assert [layer.name for layer in keras_model.layers] == [layer.name for layer in model.layers]
    assert type(keras_model.optimizer).__name__ == "Adam"
    assert int(keras_model.optimizer.iterations) == model.optimizer.iterations == 2
    if suffix == ".h5":
        return   # Keras 3 cannot train on a legacy .h5 model with optimizer weights (its own neither)
    # The optimizer's state went across in Keras's order: one more epoch gives the same weights.
    model.fit(x, labels, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    keras_model.fit(x, labels, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("filename", ["w.weights.h5", "w.h5"])
def test_fastconv_weights_file_loads_in_keras(tf, tmp_path, filename):
    x = _images()
    model = _trained(_residual_model(), x, optimizer=fk.optimizers.SGD(0.01, momentum=0.9))
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / filename)
    keras_model = _quiet_keras_load(tf, tmp_path / "model.keras")
    keras_model.set_weights([np.zeros_like(w) for w in keras_model.get_weights()])
    keras_model.load_weights(tmp_path / filename)
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)


def test_sequential_with_input_shape_loads_in_keras(tf, tmp_path):
    x = _images(channels=1)
    model = fk.Sequential([L.Conv2D(3, 3, input_shape=(8, 8, 1), activation="relu"), L.AveragePooling2D(),
                           L.GlobalAveragePooling2D(), L.Dense(2)])
    model.save(tmp_path / "seq.keras")
    with zipfile.ZipFile(tmp_path / "seq.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
    assert config["class_name"] == "Sequential" and config["config"]["layers"][0]["class_name"] == "InputLayer"
    conv = config["config"]["layers"][1]
    assert conv["module"] == "keras.layers" and conv["build_config"] == {"input_shape": [None, 8, 8, 1]}
    assert conv["config"]["kernel_initializer"] == {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                    "config": {"seed": None}, "registered_name": None}
    assert conv["config"]["dtype"]["class_name"] == "DTypePolicy"
    keras_model = _quiet_keras_load(tf, tmp_path / "seq.keras")
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)


def _many_layers_model():
    """Most of fastconv.keras's layer families in one small functional model."""
    inp = fk.Input((8, 8, 2), name="pixels")
    a = L.ZeroPadding2D(((1, 1), (2, 0)))(inp)
    a = L.Conv2D(3, 2, activation="tanh", kernel_initializer="he_normal")(a)
    a = L.Cropping2D(((0, 1), (1, 0)))(a)
    b = L.Conv2DTranspose(3, 3, padding="same")(inp)
    b = L.ReLU(max_value=2.0)(b)
    c = L.Concatenate()([a, b])
    m = L.Multiply()([a, b])
    s = L.Subtract()([a, b])
    avg = L.Average()([m, s, L.Maximum()([a, b]), L.Minimum()([a, b])])
    x = L.Concatenate(axis=-1)([c, avg])
    x = L.UpSampling2D(2)(L.MaxPooling2D(2)(x))
    x = L.Permute((2, 1, 3))(x)
    g = L.GlobalMaxPooling2D()(x)
    r = L.Reshape((3, 3))(L.Dense(9)(g))
    r = L.Flatten()(L.RepeatVector(2)(L.Flatten()(r)))
    out = L.Activation("sigmoid")(L.Dense(2)(L.Dropout(0.1)(r)))
    return fk.Model(inp, out)


def test_every_layer_family_round_trips_and_loads_in_keras(tf, tmp_path):
    x = _images(channels=2)
    model = _many_layers_model()
    model.save(tmp_path / "many.keras")
    loaded = fk.models.load_model(tmp_path / "many.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for ours, again in zip(model.layers, loaded.layers):
        assert type(ours) is type(again) and ours.get_config() == again.get_config()
    keras_model = _quiet_keras_load(tf, tmp_path / "many.keras")
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)


# ---------------------------------------------------------------------------- Keras -> fastconv
def _keras_residual(tf, dropout):
    k = tf.keras
    inp = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, activation="relu", padding="same")(inp)
    x = k.layers.BatchNormalization()(x)
    shortcut = k.layers.Conv2D(4, 1)(inp)
    x = k.layers.Add()([x, shortcut])
    x = k.layers.MaxPooling2D()(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dropout(dropout)(x)
    model = k.Model(inp, k.layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer=k.optimizers.RMSprop(0.01, momentum=0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = _images()
    model.fit(x, np.arange(len(x)) % 3, epochs=2, batch_size=len(x), shuffle=False, verbose=0)
    bn = model.layers[2]
    bn.moving_mean.assign(np.random.default_rng(1).normal(size=4).astype("float32"))
    return model


def test_keras_model_files_load_in_fastconv(tf, tmp_path):
    from keras.src.legacy.saving import legacy_h5_format

    x = _images()
    labels = np.arange(len(x)) % 3
    keras_model = _keras_residual(tf, dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_model.save(tmp_path / "k.keras")
        keras_model.save(tmp_path / "k.h5")
    keras_model.save_weights(tmp_path / "k.weights.h5")
    with h5py.File(tmp_path / "k_legacy.h5", "w") as f:   # what tf.keras 2's save_weights("k.h5") wrote
        legacy_h5_format.save_weights_to_hdf5_group(f, keras_model)
    expected = _keras_predict(keras_model, x)
    for name in ("k.keras", "k.h5"):
        model = fk.models.load_model(tmp_path / name)
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)
        assert [layer.name for layer in model.layers] == [layer.name for layer in keras_model.layers]
        assert isinstance(model.optimizer, fk.optimizers.RMSprop) and model.optimizer.momentum == 0.5
        assert model.optimizer.iterations == 2 and model.optimizer.learning_rate == pytest.approx(0.01)
    # The optimizer's state came across: one more epoch on each side agrees.
    keras_model.fit(x, labels, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    model.fit(x, labels, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    for name in ("k.weights.h5", "k_legacy.h5"):
        fresh = _residual_model()
        fresh.load_weights(tmp_path / name)
        np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-4)


def test_keras_nested_models_and_sequential_load_in_fastconv(tf, tmp_path):
    k = tf.keras
    inner_in = k.Input((4,))
    inner = k.Model(inner_in, k.layers.Dense(3, activation="relu")(inner_in), name="inner")
    seq = k.Sequential([k.Input((3,)), k.layers.Dense(2)], name="head")
    inp = k.Input((4,))
    keras_model = k.Model(inp, seq(inner(inp)))
    keras_model.save(tmp_path / "nested.keras")
    x = np.random.default_rng(2).random((5, 4), dtype=np.float32)
    model = fk.models.load_model(tmp_path / "nested.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), _keras_predict(keras_model, x), atol=1e-4)
    # And back: fastconv's file of the nested model loads in Keras.
    model.save(tmp_path / "again.keras")
    np.testing.assert_allclose(_keras_predict(_quiet_keras_load(tf, tmp_path / "again.keras"), x),
                               _keras_predict(keras_model, x), atol=1e-4)


# ----------------------------------------------------------------- tf.keras 2 and Applications
def _tf_keras_2_h5(path, model, sequential):
    """A model file laid out as tf.keras 2.x wrote it: ``batch_input_shape``, list-of-lists
    ``inbound_nodes``, no ``module`` keys, BatchNormalization's axis as a list, ``:0`` weight
    names and tf.keras 2's optimizer config keys."""
    conv, bn, dense = [layer for layer in model.layers if layer.weights]
    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    zeros, ones = {"class_name": "Zeros", "config": {}}, {"class_name": "Ones", "config": {}}
    conv_config = {"name": "conv2d", "trainable": True, "dtype": "float32", "filters": 4, "kernel_size": [3, 3],
                   "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                   "groups": 1, "activation": "relu", "use_bias": True, "kernel_initializer": init,
                   "bias_initializer": zeros, "kernel_regularizer": None, "bias_regularizer": None,
                   "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    bn_config = {"name": "batch_normalization", "trainable": True, "dtype": "float32", "axis": [3], "momentum": 0.99,
                 "epsilon": 0.001, "center": True, "scale": True, "beta_initializer": zeros,
                 "gamma_initializer": ones, "moving_mean_initializer": zeros, "moving_variance_initializer": ones,
                 "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                 "gamma_constraint": None}
    flat_config = {"name": "flatten", "trainable": True, "dtype": "float32", "data_format": "channels_last"}
    dense_config = {"name": "dense", "trainable": True, "dtype": "float32", "units": 2, "activation": "softmax",
                    "use_bias": True, "kernel_initializer": init, "bias_initializer": zeros,
                    "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                    "kernel_constraint": None, "bias_constraint": None}
    if sequential:
        conv_config["batch_input_shape"] = [None, 6, 6, 1]
        config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
            {"class_name": c, "config": cfg} for c, cfg in (("Conv2D", conv_config), ("BatchNormalization", bn_config),
                                                            ("Flatten", flat_config), ("Dense", dense_config))]}}
        layer_names = ["conv2d", "batch_normalization", "flatten", "dense"]
    else:
        def entry(class_name, cfg, source):
            return {"class_name": class_name, "config": cfg, "name": cfg["name"],
                    "inbound_nodes": [[[source, 0, 0, {}]]]}
        config = {"class_name": "Functional", "config": {"name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 6, 6, 1], "dtype": "float32", "sparse": False, "ragged": False,
                        "name": "input_1"}},
            entry("Conv2D", conv_config, "input_1"), entry("BatchNormalization", bn_config, "conv2d"),
            entry("Flatten", flat_config, "batch_normalization"), entry("Dense", dense_config, "flatten")],
            "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
        layer_names = ["input_1", "conv2d", "batch_normalization", "flatten", "dense"]
    training = {"loss": "sparse_categorical_crossentropy", "metrics": [["accuracy"]], "weighted_metrics": None,
                "loss_weights": None,
                "optimizer_config": {"class_name": "Adam", "config": {
                    "name": "Adam", "learning_rate": 0.002, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                    "epsilon": 1e-07, "amsgrad": False}}}
    weights = {"conv2d": (conv, ["kernel", "bias"]), "batch_normalization":
               (bn, ["gamma", "beta", "moving_mean", "moving_variance"]), "dense": (dense, ["kernel", "bias"])}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.9.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [n.encode() for n in layer_names]
        for name in layer_names:
            layer_group = group.create_group(name)
            layer, names = weights.get(name, (None, []))
            layer_group.attrs["weight_names"] = [f"{name}/{n}:0".encode() for n in names]
            for n, value in zip(names, layer.get_weights() if layer is not None else []):
                layer_group.create_dataset(f"{name}/{n}:0", data=value)


@pytest.mark.parametrize("sequential", [False, True])
def test_tf_keras_2_model_file_loads(tmp_path, sequential):
    source = fk.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)), L.BatchNormalization(),
                            L.Flatten(), L.Dense(2, activation="softmax")])
    bn = source.layers[1]
    bn.set_weights([np.linspace(0.5, 1.5, 4), np.linspace(-1, 1, 4), np.linspace(-0.2, 0.2, 4), np.full(4, 2.0)])
    _tf_keras_2_h5(tmp_path / "tf2.h5", source, sequential)
    model = fk.models.load_model(tmp_path / "tf2.h5")
    x = _images(channels=1)[:, :6, :6]
    np.testing.assert_allclose(model.predict(x, verbose=0), source.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(model, fk.Sequential) is sequential
    assert model.optimizer.learning_rate == pytest.approx(0.002) and model.get_layer("batch_normalization").axis == 3


def test_tf_keras_2_fixture_is_what_keras_reads(tf, tmp_path):
    """Keras 3 reads the hand-written tf.keras 2 file too, and predicts what fastconv predicts."""
    source = fk.Sequential([L.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 1)), L.BatchNormalization(),
                            L.Flatten(), L.Dense(2, activation="softmax")])
    _tf_keras_2_h5(tmp_path / "tf2.h5", source, sequential=False)
    x = _images(channels=1)[:, :6, :6]
    np.testing.assert_allclose(_keras_predict(_quiet_keras_load(tf, tmp_path / "tf2.h5", compile=False), x),
                               fk.models.load_model(tmp_path / "tf2.h5").predict(x, verbose=0), atol=1e-4)


def _applications_weights(path, source):
    """A weights file laid out as Keras's Applications ones (resnet50_weights_tf_dim_ordering_
    tf_kernels.h5): root attributes layer_names / backend / keras_version, weightless layers
    listed too, names of the original model (not ours), ``:0`` weight names."""
    names = ["input_1", "conv1_pad", "conv1", "bn_conv1", "max_pool", "avg_pool", "fc1000"]
    with_weights = dict(zip(["conv1", "bn_conv1", "fc1000"], [layer for layer in source.layers if layer.weights]))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in names:
            group = f.create_group(name)
            layer = with_weights.get(name)
            weight_names = [f"{name}_W_{i}:0" for i in range(len(layer.weights))] if layer is not None else []
            group.attrs["weight_names"] = [n.encode() for n in weight_names]
            for n, w in zip(weight_names, layer.weights if layer is not None else []):
                group.create_dataset(n, data=w.value)


def _small_cnn(names=None):
    names = names or {}
    return fk.Sequential([fk.Input((10, 10, 3)), L.ZeroPadding2D(1), L.Conv2D(4, 3, name=names.get("conv")),
                          L.BatchNormalization(name=names.get("bn")), L.MaxPooling2D(),
                          L.GlobalAveragePooling2D(), L.Dense(5, activation="softmax", name=names.get("fc"))])


def test_applications_style_weights_load_by_order_and_by_name(tmp_path):
    source = _small_cnn()
    source.layers[2].set_weights([np.full(4, 1.5), np.full(4, -0.5), np.full(4, 0.1), np.full(4, 3.0)])
    _applications_weights(tmp_path / "weights_tf_dim_ordering_tf_kernels.h5", source)
    x = _images(size=10)
    model = _small_cnn()
    model.load_weights(tmp_path / "weights_tf_dim_ordering_tf_kernels.h5")
    np.testing.assert_array_equal(model.predict(x, verbose=0), source.predict(x, verbose=0))
    # By name: only the layers named as in the file are loaded.
    named = _small_cnn({"conv": "conv1", "fc": "fc1000"})
    before_bn = named.layers[2].get_weights()
    named.load_weights(tmp_path / "weights_tf_dim_ordering_tf_kernels.h5", by_name=True)
    np.testing.assert_array_equal(named.layers[1].get_weights()[0], source.layers[1].get_weights()[0])
    for a, b in zip(named.layers[2].get_weights(), before_bn):
        np.testing.assert_array_equal(a, b)
    # skip_mismatch: a layer of another size is skipped with a warning, the others load.
    other = fk.Sequential([fk.Input((10, 10, 3)), L.ZeroPadding2D(1), L.Conv2D(4, 3, name="conv1"),
                           L.BatchNormalization(name="bn_conv1"), L.MaxPooling2D(), L.GlobalAveragePooling2D(),
                           L.Dense(7, name="fc1000")])
    with pytest.warns(UserWarning, match="fc1000"):
        other.load_weights(tmp_path / "weights_tf_dim_ordering_tf_kernels.h5", by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(other.layers[2].get_weights()[3], np.full(4, 3.0))
    with pytest.raises(ValueError, match=r"fc1000/fc1000_W_0:0: has shape \(4, 5\); the model expects \(4, 7\)"):
        other.load_weights(tmp_path / "weights_tf_dim_ordering_tf_kernels.h5", by_name=True)


def test_keras_3_weights_file_refuses_by_name_and_skips_on_request(tmp_path):
    model = _small_cnn()
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="by_name=True is only supported for legacy '.h5' weights files"):
        model.load_weights(tmp_path / "w.weights.h5", by_name=True)
    wider = fk.Sequential([fk.Input((10, 10, 3)), L.ZeroPadding2D(1), L.Conv2D(4, 3), L.BatchNormalization(),
                           L.MaxPooling2D(), L.GlobalAveragePooling2D(), L.Dense(6)])
    with pytest.warns(UserWarning, match="Skipping loading weights of layer"):
        wider.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(wider.layers[1].get_weights()[0], model.layers[1].get_weights()[0])


def test_file_names_say_the_format(tmp_path):
    model = _small_cnn()
    with pytest.raises(ValueError, match="Invalid filepath extension for saving"):
        model.save(tmp_path / "model.zip")
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        model.save_weights(tmp_path / "w.npz")
    model.save(tmp_path / "m.h5")
    assert h5py.is_hdf5(tmp_path / "m.h5")
    model.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
    assert names == [layer.name for layer in model.layers]


def test_fastconv_earlier_zip_format_still_loads(tmp_path):
    """Files written by fastconv before it wrote Keras's format: JSON plus .npz arrays."""
    from fastconv.keras.layers import serialize

    x = _images(size=10)
    model = _small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(len(x)) % 5, epochs=1, verbose=0)

    def npz(arrays):
        buffer = io.BytesIO()
        np.savez(buffer, **{f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)})
        return buffer.getvalue()

    config = {"model": serialize(model), "weights": [],
              "compile": {"optimizer": fk.optimizers.serialize(model.optimizer),
                          "loss": fk.losses.serialize(model.loss), "metrics": []}}
    with zipfile.ZipFile(tmp_path / "old.keras", "w") as zf:
        zf.writestr("metadata.json", json.dumps({"format": "fastconv.keras", "version": 1}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.npz", npz(model.get_weights()))
        zf.writestr("optimizer.npz", npz([np.array(model.optimizer.iterations, dtype=np.int64)]
                                         + model.optimizer.state_arrays(model.trainable_weights)))
    (tmp_path / "old.weights.h5").write_bytes(npz(model.get_weights()))
    loaded = fk.models.load_model(tmp_path / "old.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == model.optimizer.iterations
    fresh = _small_cnn()
    fresh.load_weights(tmp_path / "old.weights.h5")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


# ------------------------------------------------------------------------------ subclassed models
class _Block(L.Layer):
    """A custom layer holding layers as an attribute and in a list, and a weight of its own."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = L.Dense(units)
        self.extra = [L.Dense(units), L.Dense(units, activation="relu")]

    def build(self, input_shape):
        self.scale = self.add_weight((self.units,), fk.initializers.get("ones"), "scale")

    def call(self, x):
        return self.extra[1](self.extra[0](self.inner(x))) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class _Net(fk.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.zeta = L.Dense(4)     # after "layers" in Keras's walk: stored as layers/dense
        self.alpha = _Block(3)     # before it: stored as alpha/..., its list as alpha/extra/dense...

    def call(self, x):
        return self.alpha(self.zeta(x))


def test_subclassed_models_both_ways(tf, tmp_path):
    k = tf.keras

    class KerasBlock(k.layers.Layer):
        def __init__(self, units=3, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = k.layers.Dense(units)
            self.extra = [k.layers.Dense(units), k.layers.Dense(units, activation="relu")]

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

        def call(self, x):
            return self.extra[1](self.extra[0](self.inner(x))) * self.scale

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class KerasNet(k.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.zeta = k.layers.Dense(4)
            self.alpha = KerasBlock(3)

        def call(self, x):
            return self.alpha(self.zeta(x))

    x = np.random.default_rng(4).random((3, 5), dtype=np.float32)
    keras_model = KerasNet()
    keras_model(x)
    keras_model.alpha.scale.assign(np.array([0.5, 2.0, -1.0], np.float32))
    keras_model.save(tmp_path / "k.keras")
    ours = {"KerasNet": _Net, "KerasBlock": _Block}
    model = fk.models.load_model(tmp_path / "k.keras", custom_objects=ours)
    np.testing.assert_allclose(model.predict(x, verbose=0), _keras_predict(keras_model, x), atol=1e-5)
    model.save(tmp_path / "ours.keras")
    theirs = {"_Net": KerasNet, "_Block": KerasBlock}
    again = _quiet_keras_load(tf, tmp_path / "ours.keras", custom_objects=theirs)
    np.testing.assert_allclose(_keras_predict(again, x), _keras_predict(keras_model, x), atol=1e-5)


def test_save_arguments_as_keras(tmp_path):
    model = _small_cnn()
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "bare.h5", include_optimizer=False)
    with h5py.File(tmp_path / "bare.h5") as f:
        assert "training_config" not in f.attrs and "optimizer_weights" not in f
    assert not fk.models.load_model(tmp_path / "bare.h5").compiled
    with pytest.raises(ValueError, match=r"not supported with the native Keras format: \['include_optimizer'\]"):
        model.save(tmp_path / "m.keras", include_optimizer=False)
    with pytest.raises(ValueError, match="zipped=False"):
        model.save(tmp_path / "m.keras", zipped=False)
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)


def test_compile_arguments_of_several_outputs_go_across(tf, tmp_path):
    inp = fk.Input((4,))
    hidden = L.Dense(5, activation="relu")(inp)
    model = fk.Model(inp, [L.Dense(3, activation="softmax", name="label")(hidden), L.Dense(1, name="size")(hidden)])
    model.compile(optimizer=fk.optimizers.SGD(0.05), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    rng = np.random.default_rng(5)
    x, y = rng.random((8, 4), dtype=np.float32), [np.arange(8) % 3, rng.random((8, 1), dtype=np.float32)]
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "two.keras")
    for loaded in (fk.models.load_model(tmp_path / "two.keras"), _quiet_keras_load(tf, tmp_path / "two.keras")):
        ours, theirs = model.evaluate(x, y, verbose=0, return_dict=True), loaded.evaluate(x, y, verbose=0,
                                                                                          return_dict=True)
        assert sorted(ours) == sorted(theirs)
        for key in ours:
            assert theirs[key] == pytest.approx(ours[key], abs=1e-4)


def _branching(k, layers):
    """A residual block whose shortcut is built first: Keras lists its layers by depth, not in
    the order they run (conv2d_1 in Keras's file is the main path's first convolution)."""
    inp = k.Input((6, 6, 3))
    x = layers.Conv2D(4, 1, name="stem")(inp)
    shortcut = layers.BatchNormalization(name="short_bn")(layers.Conv2D(4, 1, name="short_conv")(x))
    main = layers.BatchNormalization(name="main_bn1")(layers.Conv2D(4, 3, padding="same", name="main_conv1")(x))
    main = layers.BatchNormalization(name="main_bn2")(layers.Conv2D(4, 1, name="main_conv2")(main))
    out = layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.Add()([shortcut, main])))
    return k.Model(inp, out)


def test_layers_are_matched_in_keras_order(tf, tmp_path):
    from keras.src.legacy.saving import legacy_h5_format

    x = _images(size=6)
    labels = np.random.default_rng(6).random((len(x), 2), dtype=np.float32)
    keras_model = _branching(tf.keras, tf.keras.layers)
    rng = np.random.default_rng(7)
    for layer in keras_model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):   # same shapes, different values
            layer.set_weights([rng.uniform(0.5, 2, 4).astype("float32") for _ in range(4)])
    # SGD: Adam's step is ill-conditioned for the biases before a BatchNormalization (their
    # gradients are rounding noise), momentum is the state whose order is tested.
    keras_model.compile(optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    keras_model.fit(x, labels, epochs=1, batch_size=len(x), verbose=0)
    keras_model.save(tmp_path / "k.keras")
    keras_model.save_weights(tmp_path / "k.weights.h5")
    with h5py.File(tmp_path / "k_legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras_model)
    expected = _keras_predict(keras_model, x)
    model = fk.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)
    for name in ("k.weights.h5", "k_legacy.h5"):
        fresh = _branching(fk, L)
        fresh.load_weights(tmp_path / name)
        np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-4)
    # The optimizer's slots follow Keras's order of the trainable weights too.
    model.fit(x, labels, epochs=1, batch_size=len(x), verbose=0)
    keras_model.fit(x, labels, epochs=1, batch_size=len(x), verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), _keras_predict(keras_model, x), atol=1e-4)
    # And fastconv's files of the same model load in Keras.
    model.save(tmp_path / "ours.keras")
    model.save_weights(tmp_path / "ours.h5")
    np.testing.assert_allclose(_keras_predict(_quiet_keras_load(tf, tmp_path / "ours.keras"), x),
                               model.predict(x, verbose=0), atol=1e-4)
    keras_model.load_weights(tmp_path / "ours.h5")
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)


def _resnet50_notop(k, layers, input_shape=(32, 32, 3)):
    """keras.applications.ResNet50(include_top=False) layer for layer: the same names, built
    in the same order, with the library ``k`` (Keras or fastconv.keras)."""

    def bn(name):
        return layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name)

    def block(x, filters, stride=1, conv_shortcut=True, name=None):
        if conv_shortcut:
            shortcut = bn(f"{name}_0_bn")(layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x))
        else:
            shortcut = x
        x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
        x = layers.Activation("relu", name=f"{name}_1_relu")(bn(f"{name}_1_bn")(x))
        x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
        x = layers.Activation("relu", name=f"{name}_2_relu")(bn(f"{name}_2_bn")(x))
        x = bn(f"{name}_3_bn")(layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x))
        return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, x]))

    inp = k.Input(input_shape)
    x = layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(inp)
    x = bn("conv1_bn")(layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x))
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(layers.ZeroPadding2D(((1, 1), (1, 1)),
                                                                                   name="pool1_pad")(x))
    for name, filters, blocks, stride in (("conv2", 64, 3, 1), ("conv3", 128, 4, 2), ("conv4", 256, 6, 2),
                                          ("conv5", 512, 3, 2)):
        x = block(x, filters, stride=stride, name=f"{name}_block1")
        for i in range(2, blocks + 1):
            x = block(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return k.Model(inp, x, name="resnet50")


@pytest.mark.slow
def test_keras_resnet50_notop_weights_file_loads(tf, tmp_path):
    """resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5's layout, written from Keras's own
    ResNet50, loads by order into the same network built with fastconv.keras."""
    from keras.src.legacy.saving import legacy_h5_format

    keras_model = tf.keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    rng = np.random.default_rng(8)
    for layer in keras_model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                               rng.uniform(0.5, 2.0, n)])
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras_model)
    model = _resnet50_notop(fk, L)
    assert model.count_params() == keras_model.count_params() == 23587712
    model.load_weights(path)
    x = _images(n=2, size=32)
    expected = _keras_predict(keras_model, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-4)


def test_json_is_keras_json_both_ways(tf):
    x = _images()
    model = _residual_model()
    text = model.to_json()
    assert json.loads(text)["class_name"] == "Functional"
    keras_model = tf.keras.models.model_from_json(text)
    ours = {w.path: w.numpy() for w in model.weights}
    keras_model.set_weights([ours[w.path] for w in keras_model.weights])
    np.testing.assert_allclose(_keras_predict(keras_model, x), model.predict(x, verbose=0), atol=1e-4)
    again = fk.models.model_from_json(keras_model.to_json())
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]
    assert fk.models.model_from_json(fk.Sequential([L.Dense(2)]).to_json()).layers[0].units == 2


def test_learning_rate_schedule_goes_across(tf, tmp_path):
    schedule = fk.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    model = _small_cnn()
    model.compile(optimizer=fk.optimizers.SGD(schedule, momentum=0.5), loss="mse")
    x = _images(size=10)
    model.fit(x, np.zeros((len(x), 5), np.float32), epochs=3, batch_size=3, verbose=0)
    model.save(tmp_path / "m.keras")
    for loaded in (fk.models.load_model(tmp_path / "m.keras"), _quiet_keras_load(tf, tmp_path / "m.keras")):
        assert int(loaded.optimizer.iterations) == 6
        assert float(loaded.optimizer.learning_rate) == pytest.approx(model.optimizer.learning_rate)


def test_registered_classes_load_without_custom_objects(tf, tmp_path):
    from fastconv.keras.saving import custom_object_scope, get_custom_objects, register_keras_serializable

    @register_keras_serializable(package="saving_test")
    class Doubling(L.Layer):
        def call(self, x):
            return x * 2.0

    inp = fk.Input((3,))
    model = fk.Model(inp, Doubling()(L.Dense(2)(inp)))
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        entry = json.loads(zf.read("config.json"))["config"]["layers"][-1]
    assert entry["registered_name"] == "saving_test>Doubling"
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(fk.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0))

    from keras.saving import register_keras_serializable as keras_register   # Keras 3, as tf.keras is

    @keras_register(package="saving_test", name="Doubling")
    class KerasDoubling(tf.keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    np.testing.assert_allclose(_keras_predict(_quiet_keras_load(tf, tmp_path / "m.keras"), x),
                               model.predict(x, verbose=0), atol=1e-5)
    del get_custom_objects()["saving_test>Doubling"]
    with pytest.raises(ValueError, match="class 'Doubling', which fastconv.keras does not know"):
        fk.models.load_model(tmp_path / "m.keras")
    with custom_object_scope({"Doubling": Doubling}):
        fk.models.load_model(tmp_path / "m.keras")


def test_keras_ops_nodes_are_refused_by_name(tf, tmp_path):
    inp = tf.keras.Input((3,))
    x = tf.keras.layers.Dense(2)(inp)
    tf.keras.Model(inp, tf.keras.ops.add(x, x)).save(tmp_path / "ops.keras")
    with pytest.raises(ValueError, match=r"ops.keras: config.json: layer 'add(_\d+)?' is the keras.ops operation 'Add'"):
        fk.models.load_model(tmp_path / "ops.keras")
