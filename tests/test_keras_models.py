"""fastconv.keras models: the lecture's programs, the functional API, fit/evaluate/predict,
callbacks, saving, summaries and the errors for bad input."""
import csv
import io
import re
import zipfile

import numpy as np
import pytest

from _helpers import lenet5, malaria_cnn, residual_model

from fastconv import keras as fk
from fastconv.keras import callbacks as C
from fastconv.keras import layers as L


@pytest.fixture(autouse=True)
def _fresh_names():
    fk.backend.clear_session()


def _images(n, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, channels), dtype=np.float32), (rng.random(n) > 0.5).astype(np.int64)


# ------------------------------------------------------------------------ the lecture's programs
def test_malaria_program_runs_as_in_the_lecture(capsys):
    x, y = _images(40, size=100)
    model = malaria_cnn()
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()
    text = capsys.readouterr().out
    assert "Total params: 56,257 (219.75 KB)" in text
    for row in ["conv2d (Conv2D)                 │ (None, 100, 100, 32)   │           896",
                "max_pooling2d_1 (MaxPooling2D)  │ (None, 24, 24, 64)     │             0",
                "dense (Dense)                   │ (None, 1)              │        36,865"]:
        assert row in text
    history = model.fit(x, y, batch_size=20, epochs=2, validation_split=0.1, verbose=0,
                        callbacks=[C.EarlyStopping(monitor="val_loss", patience=5)])
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 2 for v in history.history.values()) and history.epoch == [0, 1]
    assert model.history is history
    y_pred = (model.predict(x[:6], verbose=0) > 0.5).astype(int).reshape(y[:6].shape)
    assert y_pred.shape == (6,) and set(np.unique(y_pred)) <= {0, 1}
    W, b = model.get_layer("conv2d").get_weights()
    assert W.shape == (3, 3, 3, 32) and b.shape == (32,)
    cell = x[:1]
    feature_maps = fk.Model(inputs=model.inputs, outputs=model.layers[0].output).predict(cell, verbose=0)
    assert feature_maps.shape == (1, 100, 100, 32)
    np.testing.assert_allclose(feature_maps, model.layers[0](cell), rtol=1e-6)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_lenet5_learns(loss):
    # Ten classes told apart by the position of a bright square: learnable in a few epochs.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 300)
    x = rng.random((300, 32, 32, 1), dtype=np.float32) * 0.3
    for i, c in enumerate(labels):
        x[i, 3 * c:3 * c + 6, 3 * c:3 * c + 6, 0] += 1.0
    y = fk.utils.to_categorical(labels, 10) if loss.startswith("categorical") else labels
    fk.utils.set_random_seed(0)
    model = lenet5()
    model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_categorical_and_sparse_train_identically():
    x, _ = _images(64, size=32, channels=1)
    labels = np.random.default_rng(2).integers(0, 10, 64)
    results = []
    for loss, y in (("categorical_crossentropy", fk.utils.to_categorical(labels)),
                    ("sparse_categorical_crossentropy", labels)):
        fk.backend.clear_session()
        fk.utils.set_random_seed(3)
        model = lenet5()
        model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
        logs = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
        results.append((logs, model.get_weights()))
    for key in ("loss", "accuracy"):
        assert results[0][0][key] == pytest.approx(results[1][0][key], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- the functional API
def test_residual_model_gradients_match_finite_differences():
    """The whole chain in float64: graph backprop (the shortcut's two gradients summed), BN in
    training mode, the loss from the softmax's logits.  SGD with learning rate 1 subtracts the
    gradient from the weights, which gives it through the public API."""
    x, _ = _images(6, seed=4)
    x = x.astype(np.float64)
    labels = np.random.default_rng(5).integers(0, 3, 6)
    model = residual_model(dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=fk.optimizers.SGD(learning_rate=1.0))
    weights = model.get_weights()

    def loss():
        # BN in training mode, as in train_on_batch; its moving statistics do not enter the loss.
        return _training_loss(model, x, labels)

    model.train_on_batch(x, labels)
    grads = [w0 - w1 for w0, w1 in zip(weights, model.get_weights())]
    model.set_weights(weights)
    for variable, grad in zip(model.weights, grads):
        if not variable.trainable:
            continue
        for index in list(np.ndindex(variable.shape))[:: max(1, variable.value.size // 12)]:
            old = variable.value[index]
            with variable._writable() as w:
                w[index] = old + 1e-6
            up = loss()
            with variable._writable() as w:
                w[index] = old - 1e-6
            down = loss()
            with variable._writable() as w:
                w[index] = old
            assert (up - down) / 2e-6 == pytest.approx(grad[index], abs=1e-8), (variable.path, index)


def _training_loss(model, x, y):
    outputs, _, logits = model._graph_for(x.shape).run([x], training=True, want_logits=True)
    return model.loss.value_and_grad(y, outputs[0], logits[0])[0]


def test_functional_model_layers_summary_and_nesting(capsys):
    model = residual_model()
    assert [layer.name for layer in model.layers] == [
        "input_layer", "conv2d", "conv2d_1", "batch_normalization", "add", "re_lu", "global_average_pooling2d", "dense"]
    model.summary()
    text = capsys.readouterr().out
    assert "Connected to" in text and "conv2d[0][0],     │" in text
    assert "Total params: 287 (1.12 KB)" in text and "Non-trainable params: 8 (32.00 B)" in text
    # A model is a layer: a Sequential used inside a functional model trains through it.
    block = fk.Sequential([L.Conv2D(2, 3, padding="same", activation="relu"), L.Conv2D(2, 1)], name="block")
    i = fk.Input((6, 6, 1))
    out = L.Dense(1, activation="sigmoid")(L.Flatten()(block(i)))
    outer = fk.Model(i, out)
    assert len(outer.trainable_weights) == 6
    x, y = _images(16, size=6, channels=1)
    outer.compile(loss="binary_crossentropy", optimizer="sgd")
    before = block.get_weights()
    outer.fit(x, y, epochs=1, verbose=0)
    assert all(not np.array_equal(a, b) for a, b in zip(before, block.get_weights()))


def test_graph_errors():
    a, b = fk.Input((4,)), fk.Input((4,))
    out = L.Add()([L.Dense(2)(a), L.Dense(2)(b)])
    with pytest.raises(ValueError, match="graph disconnected.*input_layer_1"):
        fk.Model(a, out)
    with pytest.raises(ValueError, match="subclassed models"):
        fk.Model()
    with pytest.raises(ValueError, match="incompatible shapes"):
        L.Add()([fk.Input((3,)), fk.Input((4,))])


def test_model_with_two_inputs_predicts_in_batches():
    a, b = fk.Input((3,)), fk.Input((3,))
    dense = L.Dense(2, name="shared")
    model = fk.Model([a, b], L.Add()([dense(a), dense(b)]))  # one layer called twice
    # Keras's order: by depth, the two inputs first (checked against Keras in tests/test_keras_graph_order.py).
    assert [layer.name for layer in model.layers] == ["input_layer", "input_layer_1", "shared", "add"]
    xa, xb = np.random.default_rng(8).random((2, 7, 3), dtype=np.float32)
    kernel, bias = dense.get_weights()
    np.testing.assert_allclose(model.predict([xa, xb], batch_size=3, verbose=0), (xa + xb) @ kernel + 2 * bias, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="has 2 inputs; pass a list of 2 arrays"):
        model.predict(xa, verbose=0)
    # Several inputs train (tests/test_keras_training.py compares them with Keras).
    model.compile(loss="mse", optimizer="sgd")
    assert len(model.fit([xa, xb], xa[:, :2], verbose=0).history["loss"]) == 1


def test_sequential_built_from_data_gives_its_feature_maps():
    x, y = _images(8, size=10)
    model = fk.Sequential([L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(1, activation="sigmoid")])
    with pytest.raises(AttributeError, match="has never been called"):
        _ = model.layers[0].output
    model.compile(loss="binary_crossentropy", optimizer="adam")
    model.fit(x, y, verbose=0)
    assert model.input_shape == (None, 10, 10, 3) and model.output_shape == (None, 1)
    maps = fk.Model(model.inputs, model.layers[0].output).predict(x[:2], verbose=0)
    assert maps.shape == (2, 8, 8, 4)


def test_get_layer_weights_and_freezing():
    model = malaria_cnn(size=16)
    assert model.get_layer(index=0) is model.get_layer("conv2d") is model.layers[0]
    with pytest.raises(ValueError, match="No such layer: conv3"):
        model.get_layer("conv3")
    with pytest.raises(ValueError, match="index 7 but model only has 7 layers"):
        model.get_layer(index=7)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (576, 1), (1,)]
    with pytest.raises(ValueError, match="weight conv2d/kernel has shape"):
        model.set_weights([np.zeros((3, 3, 1, 32))] + model.get_weights()[1:])
    model.layers[0].trainable = False
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 2
    x, y = _images(10, size=16)
    model.compile(loss="binary_crossentropy", optimizer="adam")
    frozen = model.layers[0].get_weights()
    model.fit(x, y, verbose=0)
    for a, b in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ fit and friends
def _small_model(seed=0):
    fk.utils.set_random_seed(seed)
    model = fk.Sequential([L.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 3)), L.MaxPooling2D(),
                           L.Flatten(), L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model


def test_validation_split_takes_the_last_fraction_before_shuffling():
    x, y = _images(20)
    a = _small_model()
    history = a.fit(x, y, batch_size=18, epochs=1, validation_split=0.1, shuffle=True, verbose=0)
    b = _small_model()
    b.train_on_batch(x[:18], y[:18])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)
    assert history.history["val_loss"][0] == pytest.approx(b.evaluate(x[18:], y[18:], verbose=0)[0], rel=1e-6)


def test_validation_data_initial_epoch_and_batching():
    x, y = _images(30)
    model = _small_model()
    history = model.fit(x, y, batch_size=7, epochs=4, initial_epoch=2, validation_data=(x[:5], y[:5]), verbose=0)
    assert history.epoch == [2, 3] and history.params == {"verbose": 0, "epochs": 4, "steps": 5}
    full = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(x, batch_size=4, verbose=0), full, rtol=1e-6)
    loss, acc = model.evaluate(x, y, batch_size=9, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs == pytest.approx({"accuracy": acc, "loss": loss})


def test_set_random_seed_makes_fit_reproducible():
    x, y = _images(40)
    runs = []
    for _ in range(2):
        fk.backend.clear_session()
        fk.utils.set_random_seed(7)
        model = fk.Sequential([L.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 3)), L.Flatten(), L.Dropout(0.5),
                               L.Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer="adam")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


class _Batches(fk.utils.Sequence):
    """A Sequence of fixed batches that counts its epochs (what ImageDataGenerator.flow is)."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size, self.epochs_seen = x, y, batch_size, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[sl], self.y[sl]

    def on_epoch_end(self):
        self.epochs_seen += 1


def test_fit_on_a_sequence_equals_fit_on_arrays():
    x, y = _images(25)
    a = _small_model()
    a.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    b = _small_model()
    seq = _Batches(x, y, 10)
    # shuffle=False: with shuffle=True fit takes a Sequence's batches in a random order, as Keras.
    history = b.fit(seq, epochs=2, validation_data=_Batches(x[:5], y[:5], 5), shuffle=False, verbose=0)
    assert seq.epochs_seen == 2 and history.params["steps"] == 3 and "val_loss" in history.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)
    np.testing.assert_allclose(b.predict(_Batches(x, y, 10), verbose=0), b.predict(x, verbose=0))
    with pytest.raises(ValueError, match="validation_split works with arrays only"):
        b.fit(seq, validation_split=0.2, verbose=0)


def test_callback_protocol_order_and_logs():
    events = []

    class Recorder(C.Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            events.append(f"epoch_begin {epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            events.append(f"batch_begin {batch}")

        def on_train_batch_end(self, batch, logs=None):
            events.append(f"batch_end {batch} {sorted(logs)}")

        def on_test_begin(self, logs=None):
            events.append("test_begin")

        def on_test_end(self, logs=None):
            events.append("test_end")

        def on_epoch_end(self, epoch, logs=None):
            events.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            events.append("train_end")

    x, y = _images(10)
    _small_model().fit(x, y, batch_size=4, epochs=1, validation_split=0.2, callbacks=[Recorder()], verbose=0)
    assert events == ["train_begin", "epoch_begin 0",
                      "batch_begin 0", "batch_end 0 ['accuracy', 'loss']",
                      "batch_begin 1", "batch_end 1 ['accuracy', 'loss']",
                      "test_begin", "test_end",
                      "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]


def test_batch_logs_are_running_means():
    x, y = _images(12)
    seen = []
    model = _small_model()
    model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0,
              callbacks=[C.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs["loss"]))])
    fresh = _small_model()
    per_batch = [fresh.train_on_batch(x[i:i + 5], y[i:i + 5])[0] for i in (0, 5, 10)]
    sizes = np.array([5, 5, 2])
    expected = np.cumsum(np.array(per_batch) * sizes) / np.cumsum(sizes)
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_progress_output(capsys):
    x, y = _images(10)
    model = _small_model()
    model.fit(x, y, batch_size=4, epochs=2, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert re.fullmatch(r"2/2 - \d+s - \d+(us|ms|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - "
                        r"val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}", lines[1]), lines[1]
    model.fit(x, y, batch_size=4, epochs=1, verbose=1)
    out = capsys.readouterr().out.splitlines()
    # Keras 3 prints "Epoch i/n" only when there are several epochs.
    assert re.match(r"3/3 ━{20} \d+s \d+(us|ms|s)/step - accuracy", out[0]), out
    model.fit(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


# -------------------------------------------------------------------------------------- callbacks
class _FakeModel:
    """What EarlyStopping touches: weights, stop_training, metrics."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.metrics = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def _run_early_stopping(callback, values, model=None):
    """Feed one monitored value per epoch; the model's weight is the epoch number.  Returns the
    epoch at which training stopped (or None) and the final weight."""
    model = model or _FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        callback.on_epoch_end(epoch, {"val_loss": value, "val_accuracy": value})
        if model.stop_training:
            break
    callback.on_train_end()
    return (epoch if model.stop_training else None), float(model.weights[0][0])


EARLY_STOPPING_CASES = [
    (dict(patience=2), [1.0, 0.9, 0.95, 0.91, 0.8]),
    (dict(patience=0), [1.0, 1.1, 0.5]),
    (dict(patience=1, min_delta=0.05), [1.0, 0.97, 0.96, 0.5]),
    (dict(patience=2, restore_best_weights=True), [1.0, 0.7, 0.8, 0.9, 0.6]),
    (dict(monitor="val_accuracy", mode="max", patience=1), [0.5, 0.6, 0.55, 0.58, 0.9]),
    (dict(patience=1, baseline=0.5), [0.9, 0.8, 0.7, 0.6]),
    (dict(patience=1, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0, 5.0]),
]


@pytest.mark.parametrize("kwargs, values", EARLY_STOPPING_CASES)
def test_early_stopping_matches_keras(tf, kwargs, values):
    import keras
    fk_result = _run_early_stopping(C.EarlyStopping(**kwargs), values)
    keras_result = _run_early_stopping(keras.callbacks.EarlyStopping(**kwargs), values)
    assert fk_result == keras_result


def test_early_stopping_behaviour_and_reset():
    stopper = C.EarlyStopping(patience=2, restore_best_weights=True)
    assert _run_early_stopping(stopper, [1.0, 0.7, 0.8, 0.9, 0.6]) == (3, 1.0)
    # The state is reset at every fit: a second run is not influenced by the first one's best.
    assert _run_early_stopping(stopper, [5.0, 4.0, 3.0]) == (None, 2.0)
    with pytest.raises(ValueError, match="cannot tell whether that metric should be maximized"):
        _run_early_stopping(C.EarlyStopping(monitor="val_accuracy"), [1.0, 2.0])  # no such metric in the model
    x, y = _images(20)
    model = _small_model()
    history = model.fit(x, y, epochs=30, validation_split=0.2, verbose=0,
                        callbacks=[C.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)])
    assert len(history.epoch) == 2  # the first epoch sets the best, the second cannot beat it by 10


def test_model_checkpoint_and_csv_logger(tmp_path):
    x, y = _images(20)
    model = _small_model()
    path = str(tmp_path / "best-{epoch:02d}.keras")
    log = tmp_path / "log.csv"
    model.fit(x, y, epochs=3, validation_split=0.2, verbose=0,
              callbacks=[C.ModelCheckpoint(path, monitor="val_loss", save_best_only=False), C.CSVLogger(str(log))])
    assert sorted(p.name for p in tmp_path.glob("best-*.keras")) == ["best-01.keras", "best-02.keras", "best-03.keras"]
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], model.history.history["val_loss"], rtol=1e-6)
    restored = fk.models.load_model(tmp_path / "best-03.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------------------------------- saving
def test_save_and_load_round_trip(tmp_path):
    x, y = _images(24)
    model = residual_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    labels = np.arange(24) % 3
    model.fit(x, labels, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = fk.models.load_model(tmp_path / "model.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Compiled, with the optimizer's state: training continues identically.
    model.fit(x, labels, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, labels, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # Weights alone.
    model.save_weights(tmp_path / "w.weights.h5")
    other = residual_model()
    other.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match=r"w\.weights\.h5: layers/conv2d/vars/0: has shape \(3, 3, 3, 4\); the model "
                                         r"expects \(3, 3, 3, 32\)"):
        malaria_cnn(size=16).load_weights(tmp_path / "w.weights.h5")


def test_saved_files_are_data_only(tmp_path):
    seq = malaria_cnn(size=16)
    seq.save(tmp_path / "seq.keras")
    with zipfile.ZipFile(tmp_path / "seq.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    assert fk.models.load_model(tmp_path / "seq.keras").count_params() == seq.count_params()
    # An array of Python objects (which only pickle can hold) is refused, not unpickled.
    buffer = io.BytesIO()
    np.savez(buffer, a00000=np.array([{"x": 1}], dtype=object))
    (tmp_path / "evil.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="evil.npz: entry 'a00000.npy' is not a plain array"):
        seq.load_weights(tmp_path / "evil.npz")
    (tmp_path / "not_a_model.keras").write_bytes(b"hello")
    with pytest.raises(ValueError, match="is neither a Keras model file"):
        fk.models.load_model(tmp_path / "not_a_model.keras")


# ------------------------------------------------------------------------------------- utilities
def test_to_categorical():
    np.testing.assert_array_equal(fk.utils.to_categorical([1, 0, 2]), np.eye(3)[[1, 0, 2]])
    assert fk.utils.to_categorical(np.array([[1], [3]]), 5).shape == (2, 5)
    assert fk.utils.to_categorical([1, 0]).dtype == np.float64
    with pytest.raises(ValueError, match="labels must lie in"):
        fk.utils.to_categorical([1, 5], 3)


def test_plot_model(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "model.png"
    assert fk.utils.plot_model(residual_model(), str(path), show_shapes=True, show_layer_names=True) is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fk.utils.plot_model(malaria_cnn(size=16), str(tmp_path / "m.png"), rankdir="LR")
    assert (tmp_path / "m.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------ bad input
def test_errors_for_bad_data():
    model = malaria_cnn(size=16)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = _images(10, size=16)
    with pytest.raises(ValueError, match="x and y must have the same number of samples.*10 samples.*7"):
        model.fit(x, y[:7], verbose=0)
    with pytest.raises(ValueError, match='(?s)layer "conv2d" is incompatible.*axis -1 of input shape to have value 3.*'
                                         r'built for inputs of shape \(None, 16, 16, 3\)'):
        model.fit(x[..., :1], y, verbose=0)
    with pytest.raises(ValueError, match='layer "dense" is incompatible.*value 576'):
        model.predict(np.zeros((2, 20, 20, 3)), verbose=0)
    with pytest.raises(ValueError, match="grayscale images need a channel axis"):
        model.predict(np.zeros((2, 16, 16)), verbose=0)
    with pytest.raises(RuntimeError, match="must compile your model"):
        malaria_cnn(size=16).fit(x, y, verbose=0)


def test_dense_on_a_4d_tensor_without_flatten():
    model = fk.Sequential([L.Conv2D(2, 3, input_shape=(6, 6, 3)), L.Dense(1, activation="sigmoid")])
    assert model.output_shape == (None, 4, 4, 1)  # as in Keras: Dense acts on the last axis
    model.compile(loss="binary_crossentropy", optimizer="adam")
    x, y = _images(10, size=6)
    with pytest.raises(ValueError, match='output of layer "dense" \\(Dense, shape \\(10, 4, 4, 1\\)\\).*Add Flatten'):
        model.fit(x, y, verbose=0)


def test_layers_that_do_not_fit_fail_when_added():
    model = fk.Sequential([L.Dense(4, input_shape=(10,))])
    with pytest.raises(ValueError, match='layer "conv2d" is incompatible.*expected ndim=4'):
        model.add(L.Conv2D(2, 3))
    with pytest.raises(ValueError, match="unique names"):
        model.add(L.Dense(2, name=model.layers[0].name))


@pytest.mark.parametrize("kwargs, message", [
    (dict(loss="binary_crossentropyy", optimizer="adam"), "Could not interpret loss identifier"),
    (dict(loss="mse", optimizer="adamm"), "Could not interpret optimizer identifier"),
    (dict(loss="mse", optimizer="adam", metrics=["acuracy"]), "Could not interpret metric identifier"),
])
def test_unknown_names_at_compile(kwargs, message):
    with pytest.raises(ValueError, match=message):
        malaria_cnn(size=16).compile(**kwargs)


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_nan_loss_stops_training_with_a_clear_message():
    x, y = _images(40)
    model = fk.Sequential([L.Flatten(input_shape=(8, 8, 3)), L.Dense(4, activation="relu"), L.Dense(1)])
    # A learning rate that makes the weights grow until the output overflows.
    model.compile(loss="mse", optimizer=fk.optimizers.SGD(learning_rate=50.0))
    with pytest.warns(RuntimeWarning, match=r"the loss is (nan|inf) at epoch \d+, batch \d+; training stops.*"
                                            r"(layer \"dense(_1)?\"|loss itself overflowed)"):
        history = model.fit(x, y, batch_size=8, epochs=50, verbose=0)
    assert len(history.epoch) < 50 and not np.isfinite(history.history["loss"][-1])
    bad = x.copy()
    bad[3, 2, 2, 0] = np.nan
    model = _small_model()
    with pytest.warns(RuntimeWarning, match="the gradient of conv2d/kernel is not finite at epoch 1, batch 0.*"
                                            "the input batch x itself holds NaN"):
        model.fit(bad, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    stopper = C.TerminateOnNaN(raise_error=True)
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        stopper.set_model(model)
        stopper.on_train_batch_end(0, {"loss": float("nan")})


def test_fit_on_image_data_generator_flow():
    """fit consumes ImageDataGenerator().flow (the Keras Sequence protocol) for on-the-fly augmentation."""
    from fastconv.keras.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from fastconv.keras.models import Sequential
    from fastconv.keras.preprocessing.image import ImageDataGenerator
    from fastconv.keras.utils import set_random_seed

    set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12, 3), dtype=np.float32)
    y = (x[:, :, :6].mean(axis=(1, 2, 3)) > x[:, :, 6:].mean(axis=(1, 2, 3))).astype(np.float32)
    model = Sequential([Conv2D(4, 3, activation="relu", input_shape=(12, 12, 3)), MaxPooling2D(),
                        Flatten(), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    flow = ImageDataGenerator(rotation_range=10, zoom_range=0.1).flow(x, y, batch_size=16, seed=0)
    history = model.fit(flow, epochs=2, verbose=0)
    assert len(flow) == 3
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
