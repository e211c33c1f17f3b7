"""fastconv.keras's training loop against Keras on TensorFlow: from_logits losses, data from
generators / PyDatasets / tf.data / fastconv's Dataset, sample and class weights, several inputs
and outputs, Keras 2 spellings, config, and Ctrl-C during fit."""
import os
import signal
import threading
import warnings

import numpy as np
import pytest

from fastconv import keras as fk
from fastconv.keras import layers as L
from _helpers import floatx_of_both

pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`", "ignore:`shuffle=True` was passed")


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session()
    fk.backend.clear_session()
    return keras_module


def _data(n=48, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype("float32"), rng.integers(0, classes, n)


def _dense(K, classes=3, activation=None, features=6):
    return K.Sequential([K.Input((features,)), K.layers.Dense(8, activation="relu"),
                         K.layers.Dense(classes, activation=activation)])


class _BatchLog:
    """Per-batch logs (sorted by name) recorded by a callback of either library."""

    @staticmethod
    def make(base):
        class Recorder(base):
            def __init__(self):
                super().__init__()
                self.batches = []

            def on_train_batch_end(self, batch, logs=None):
                self.batches.append({k: float(v) for k, v in logs.items()})
        return Recorder()


def _fit_both(keras, k_model, f_model, compile_kwargs, fit_args, fit_kwargs, f_fit_args=None):
    """Same initial weights, same compile arguments (built per library by compile_kwargs(K)),
    one fit each: (Keras history, fastconv history, Keras batches, fastconv batches)."""
    k_model.compile(**compile_kwargs(keras))
    f_model.compile(**compile_kwargs(fk))
    f_model.set_weights(k_model.get_weights())
    k_rec, f_rec = _BatchLog.make(keras.callbacks.Callback), _BatchLog.make(fk.callbacks.Callback)
    k_hist = k_model.fit(*fit_args, callbacks=[k_rec], verbose=0, shuffle=False, **fit_kwargs)
    f_hist = f_model.fit(*(f_fit_args or fit_args), callbacks=[f_rec], verbose=0, shuffle=False, **fit_kwargs)
    return k_hist.history, f_hist.history, k_rec.batches, f_rec.batches


def _assert_same(keras_result, k_model, f_model, rtol=1e-4, weights_rtol=None):
    """Histories and per-batch logs within ``rtol``, final weights within ``weights_rtol`` (default
    ``rtol``) of each tensor's largest entry."""
    weights_rtol = rtol if weights_rtol is None else weights_rtol
    k_hist, f_hist, k_batches, f_batches = keras_result
    assert sorted(f_hist) == sorted(k_hist)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=rtol, atol=1e-6, err_msg=key)
    assert len(f_batches) == len(k_batches)
    for kb, fb in zip(k_batches, f_batches):
        assert sorted(fb) == sorted(kb)
        np.testing.assert_allclose([fb[k] for k in sorted(kb)], [kb[k] for k in sorted(kb)], rtol=rtol, atol=1e-6)
    for kw, fw in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(fw, kw, rtol=weights_rtol, atol=weights_rtol * np.abs(kw).max())


# ------------------------------------------------------------------------------- 1. from_logits
def _cnn_tutorial(K, dtype=None):
    """The TensorFlow CNN tutorial's model (CIFAR-10): Dense(10) logits."""
    kw = {} if dtype is None else {"dtype": dtype}
    return K.Sequential([
        K.Input((32, 32, 3), **kw),
        K.layers.Conv2D(32, (3, 3), activation="relu", **kw), K.layers.MaxPooling2D((2, 2), **kw),
        K.layers.Conv2D(64, (3, 3), activation="relu", **kw), K.layers.MaxPooling2D((2, 2), **kw),
        K.layers.Conv2D(64, (3, 3), activation="relu", **kw),
        K.layers.Flatten(**kw), K.layers.Dense(64, activation="relu", **kw), K.layers.Dense(10, **kw)])


def test_cnn_tutorial_with_logits_trains_as_keras(keras):
    """In float64: Adam's first steps move each weight by about one learning rate times the sign of
    its gradient, and a ReLU input within float32 rounding of zero changes a bias gradient by a
    whole term, so in float32 the final biases of the two libraries differ by up to 0.3% of a step
    (CI saw it); the per-batch losses agree either way."""
    rng = np.random.default_rng(1)
    x = rng.random((64, 32, 32, 3))
    y = rng.integers(0, 10, (64, 1))

    def compile_kwargs(K):
        return dict(optimizer="adam", loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    with floatx_of_both(keras, "float64"):
        k_model, f_model = _cnn_tutorial(keras, "float64"), _cnn_tutorial(fk, "float64")
        result = _fit_both(keras, k_model, f_model, compile_kwargs, (x, y), dict(batch_size=32, epochs=1))
    # logs: Keras keeps its metrics in float32; weights: Keras's learning rate is a float32 variable
    _assert_same(result, k_model, f_model, rtol=1e-6, weights_rtol=1e-6)


@pytest.mark.filterwarnings("ignore:.*received `from_logits=True`")
@pytest.mark.parametrize("loss, activation, targets", [
    ("binary", None, "binary"), ("categorical", "softmax", "one_hot"), ("sparse", "relu", "labels")])
def test_from_logits_losses_train_as_keras(keras, loss, activation, targets):
    """from_logits=True reads the output itself as logits; after a softmax (or sigmoid), as Keras on
    TensorFlow, the pre-activation (with Keras's warning)."""
    x, labels = _data()
    classes = 1 if targets == "binary" else 3
    y = {"binary": (labels > 0).astype("float32")[:, None], "one_hot": np.eye(3)[labels], "labels": labels}[targets]
    k_model, f_model = _dense(keras, classes, activation), _dense(fk, classes, activation)
    name = {"binary": "BinaryCrossentropy", "categorical": "CategoricalCrossentropy",
            "sparse": "SparseCategoricalCrossentropy"}[loss]

    def compile_kwargs(K):
        return dict(optimizer="sgd", loss=getattr(K.losses, name)(from_logits=True), metrics=["accuracy"])
    result = _fit_both(keras, k_model, f_model, compile_kwargs, (x, y), dict(batch_size=16, epochs=1))
    _assert_same(result, k_model, f_model)


# ----------------------------------------------------------------------------- 2. data sources
class _Batches(fk.utils.PyDataset):
    def __init__(self, x, y, batch_size, weights=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.weights = x, y, batch_size, weights
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.weights is None:
            return self.x[part], self.y[part]
        return self.x[part], self.y[part], self.weights[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


class _Iterable:
    """Neither a generator nor a sequence: an object with __iter__ only."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self):
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]


def _endless(x, y, batch_size):
    while True:
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]


def _train(data, seed=3, **fit_kwargs):
    fk.utils.set_random_seed(seed)
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(data[0], data[1], verbose=0, **fit_kwargs) if isinstance(data, tuple) else \
        model.fit(data, verbose=0, **fit_kwargs)
    return history.history, model.get_weights()


def _assert_same_run(a, b):
    assert a[0] == b[0]
    for wa, wb in zip(a[1], b[1]):
        np.testing.assert_array_equal(wa, wb)


def test_every_kind_of_batch_source_trains_as_arrays(tf):
    x, y = _data()
    reference = _train((x, y), batch_size=16, epochs=2, shuffle=False)
    _assert_same_run(_train(_Batches(x, y, 16), epochs=2, shuffle=False), reference)
    _assert_same_run(_train(_Iterable(x, y, 16), epochs=2), reference)
    _assert_same_run(_train(_endless(x, y, 16), epochs=2, steps_per_epoch=3), reference)
    _assert_same_run(_train(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2), reference)
    _assert_same_run(_train(tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat(), epochs=2,
                            steps_per_epoch=3), reference)
    light = pytest.importorskip("fastconv.keras.dataset", reason="fastconv.keras.dataset not there yet")
    _assert_same_run(_train(light.Dataset.from_tensor_slices((x, y)).batch(16), epochs=2), reference)
    _assert_same_run(_train(light.Dataset.from_tensor_slices((x, y)).batch(16).repeat(), epochs=2, steps_per_epoch=3),
                     reference)
    # steps_per_epoch takes its batches from one iterator that continues across epochs (as Keras):
    # 3 epochs of 2 batches run through the data twice.
    _, weights = _train(_endless(x, y, 16), epochs=3, steps_per_epoch=2)
    for wa, wb in zip(weights, reference[1]):
        np.testing.assert_array_equal(wa, wb)


def test_generator_ends_with_keras_warning_and_predict_evaluate_take_sources(tf):
    x, y = _data()
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    finite = (b for b in _Iterable(x, y, 16))
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        history = model.fit(finite, epochs=3, verbose=0)
    # The generator is used up after its first epoch: training stops there.
    assert history.epoch == [0]
    with pytest.warns(UserWarning, match="ran out of data"):
        model.fit(_Batches(x, y, 16), epochs=1, steps_per_epoch=5, verbose=0)
    expected = model.evaluate(x, y, verbose=0, batch_size=16)
    assert model.evaluate(_Batches(x, y, 16), verbose=0) == pytest.approx(expected)
    assert model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), verbose=0) == pytest.approx(expected)
    assert model.evaluate(_endless(x, y, 16), steps=3, verbose=0) == pytest.approx(expected)
    np.testing.assert_allclose(model.predict(_endless(x, y, 16), steps=3, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(model.predict(tf.data.Dataset.from_tensor_slices(x).batch(10), verbose=0),
                               model.predict(x, verbose=0))
    sequence = _Batches(x, y, 16)
    model.fit(sequence, epochs=2, verbose=0, validation_data=_Batches(x, y, 24))
    assert sequence.epochs_ended == 2


def test_zero_steps_run_the_whole_source_as_keras(keras):
    """Keras takes steps_per_epoch=0 and validation_steps=0 as None: the whole source (Geron's
    Xception transfer computes validation_steps=int(0.15 * n / batch_size), 0 on a small set)."""
    x, y = _data()
    k_model, f_model = _dense(keras), _dense(fk)
    k_hist, f_hist, k_batches, f_batches = _fit_both(
        keras, k_model, f_model, lambda K: dict(optimizer="adam", loss="sparse_categorical_crossentropy"),
        (x, y), dict(batch_size=16, epochs=2, steps_per_epoch=0, validation_data=(x[:20], y[:20]),
                     validation_steps=0))
    assert len(k_batches) == len(f_batches) == 2 * 3
    np.testing.assert_allclose(f_hist["val_loss"], k_hist["val_loss"], rtol=1e-5)
    assert f_model.evaluate(x, y, steps=0, verbose=0) == pytest.approx(k_model.evaluate(x, y, steps=0, verbose=0),
                                                                      rel=1e-5)
    _assert_same_run(_train(_Batches(x, y, 16), epochs=2, shuffle=False, steps_per_epoch=0),
                     _train(_Batches(x, y, 16), epochs=2, shuffle=False))


def test_batch_source_errors():
    x, y = _data()
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="when providing `x` as a generator, `y` should not be passed"):
        model.fit(_endless(x, y, 16), y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="when providing `x` as a PyDataset, `sample_weight` should not be passed"):
        model.fit(_Batches(x, y, 16), sample_weight=np.ones(48), verbose=0)
    with pytest.raises(TypeError, match="unsupported type of x: object.*PyDataset.*generator.*tf.data.Dataset"):
        model.fit(object(), y, verbose=0)
    with pytest.raises(ValueError, match="y is required with array inputs"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"data is expected to be in format `x`, `\(x,\)`, `\(x, y\)`, or "
                                         r"`\(x, y, sample_weight\)`, found a tuple of 4"):
        model.fit(iter([(x, y, y, y)]), verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive integer, 0 or None. "
                                         "Received: steps_per_epoch=-1"):
        model.fit(_endless(x, y, 16), steps_per_epoch=-1, verbose=0)
    with pytest.raises(ValueError, match="validation_steps must be a positive integer, 0 or None"):
        model.fit(x, y, validation_data=(x, y), validation_steps=1.5, verbose=0)
    with pytest.raises(ValueError, match="delivered no batch"):
        model.fit(iter([]), verbose=0)


def test_infinite_tf_dataset_needs_steps(tf):
    x, y = _data()
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="the tf.data.Dataset is infinite.*pass steps_per_epoch"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16).repeat(), verbose=0)


# ------------------------------------------------------------------------ 3. sample/class weights
def test_sample_and_class_weights_train_as_keras(keras):
    x, y = _data()
    weights = np.random.default_rng(2).uniform(0, 2, len(x)).astype("float32")
    weights[:5] = 0

    def compile_kwargs(K):
        return dict(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                    weighted_metrics=["accuracy"])
    k_model, f_model = _dense(keras, activation="softmax"), _dense(fk, activation="softmax")
    val = (x[:20], y[:20], weights[:20])
    result = _fit_both(keras, k_model, f_model, compile_kwargs, (x, y),
                       dict(batch_size=16, epochs=1, sample_weight=weights, validation_data=val))
    assert "weighted_accuracy" in result[0] and "val_weighted_accuracy" in result[0]
    _assert_same(result, k_model, f_model)
    k_eval = k_model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    f_eval = f_model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert sorted(f_eval) == sorted(k_eval)
    np.testing.assert_allclose([f_eval[k] for k in sorted(k_eval)], [k_eval[k] for k in sorted(k_eval)], rtol=1e-5)

    k_model, f_model = _dense(keras, activation="softmax"), _dense(fk, activation="softmax")
    result = _fit_both(keras, k_model, f_model, compile_kwargs, (x, y),
                       dict(batch_size=16, epochs=1, class_weight={0: 0.5, 2: 3.0}, validation_split=0.25))
    _assert_same(result, k_model, f_model)


def test_weighted_loss_divides_by_the_number_of_samples():
    """sum_over_batch_size: sum(w * loss) / n, not / sum(w), as Keras 3."""
    loss = fk.losses.MeanSquaredError()
    y, p = np.zeros((4, 1)), np.array([[1.0], [2.0], [3.0], [4.0]], dtype="float32")
    assert loss(y, p, sample_weight=[1, 0, 0, 0]) == pytest.approx(1 / 4)
    assert fk.losses.MeanSquaredError(reduction="mean_with_sample_weight")(y, p, sample_weight=[1, 0, 0, 1]) \
        == pytest.approx(17 / 2)
    assert fk.losses.MeanSquaredError(reduction="sum")(y, p, sample_weight=[1, 0, 0, 1]) == pytest.approx(17)
    metric = fk.metrics.Mean()
    metric.update_state([1.0, 3.0, 5.0, 7.0], sample_weight=[1, 1, 0, 0])
    assert metric.result() == pytest.approx(2.0)


def test_weight_errors():
    x, y = _data()
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="cannot pass `class_weight` and `sample_weight` at the same time"):
        model.fit(x, y, sample_weight=np.ones(48), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="x and y and sample_weight must have the same number of samples.*"
                                         "sample_weight with 10 samples"):
        model.fit(x, y, sample_weight=np.ones(10), verbose=0)
    with pytest.raises(ValueError, match="class_weight must be a dict"):
        model.fit(x, y, class_weight=[1.0, 2.0], verbose=0)


# ------------------------------------------------------------------ 4. several inputs and outputs
def _two_in_two_out(K):
    a, b = K.Input((4,), name="a"), K.Input((3,), name="b")
    h = K.layers.Dense(6, activation="relu", name="hidden")(K.layers.Concatenate()([a, b]))
    out1 = K.layers.Dense(1, activation="sigmoid", name="out1")(h)
    out2 = K.layers.Dense(3, activation="softmax", name="out2")(h)
    return K.Model([a, b], [out1, out2])


def _multi_data(n=40):
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((n, 4)).astype("float32"), rng.standard_normal((n, 3)).astype("float32")
    return x1, x2, (rng.random(n) > 0.5).astype("float32"), rng.integers(0, 3, n)


@pytest.mark.parametrize("form", ["lists", "dicts"])
def test_two_inputs_two_outputs_train_as_keras(keras, form):
    x1, x2, y1, y2 = _multi_data()
    if form == "lists":
        def compile_kwargs(K):
            return dict(optimizer="adam", loss=["binary_crossentropy", "sparse_categorical_crossentropy"],
                        loss_weights=[1.0, 0.5], metrics=[["accuracy", "mse"], ["accuracy"]])
        x, y = [x1, x2], [y1, y2]
    else:
        def compile_kwargs(K):
            return dict(optimizer="adam",
                        loss={"out1": "binary_crossentropy", "out2": "sparse_categorical_crossentropy"},
                        loss_weights={"out1": 2.0, "out2": 1.0}, metrics={"out2": "accuracy"})
        x, y = {"a": x1, "b": x2}, {"out1": y1, "out2": y2}
    k_model, f_model = _two_in_two_out(keras), _two_in_two_out(fk)
    result = _fit_both(keras, k_model, f_model, compile_kwargs, (x, y),
                       dict(batch_size=16, epochs=1, validation_data=(x, y) if form == "lists" else None))
    _assert_same(result, k_model, f_model)
    np.testing.assert_allclose(f_model.evaluate(x, y, verbose=0), k_model.evaluate(x, y, verbose=0), rtol=1e-5)


def test_one_loss_for_two_outputs_and_an_output_without_loss(keras):
    x1, x2, y1, y2 = _multi_data()
    y2 = y2.astype("float32")[:, None] / 2
    for loss in ("mse", ["mse", None]):
        k_model, f_model = _two_in_two_out(keras), _two_in_two_out(fk)

        def compile_kwargs(K, loss=loss):
            return dict(optimizer="sgd", loss=loss, metrics=[["mae"], ["mae"]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras: no gradient for out2 when it has no loss
            result = _fit_both(keras, k_model, f_model, compile_kwargs, ([x1, x2], [y1, np.repeat(y2, 3, 1)]),
                               dict(batch_size=20, epochs=1))
        _assert_same(result, k_model, f_model)


def test_several_outputs_errors():
    x1, x2, y1, y2 = _multi_data()
    model = _two_in_two_out(fk)
    model.compile("adam", loss={"out1": "mse"})
    with pytest.raises(ValueError, match=r"Expected keys \['out1', 'out2'\] in loss dict"):
        model.fit([x1, x2], [y1, y2], verbose=0)
    model.compile("adam", loss="mse", metrics=["mae"])
    with pytest.raises(ValueError, match=r"Invalid `metrics`.*output names of the functional model \['out1', 'out2'\]"):
        model.fit([x1, x2], [y1, y2], verbose=0)
    model.compile("adam", loss="mse")
    with pytest.raises(ValueError, match=r"the keys of the input arrays dict must be the model's names \['a', 'b'\].*"
                                         r"missing: \['b'\]"):
        model.fit({"a": x1}, [y1, y2], verbose=0)
    with pytest.raises(ValueError, match=r"the model has 2 inputs; pass a list of 2 arrays "
                                         r"\(in the order \['a', 'b'\]\)"):
        model.fit(x1, [y1, y2], verbose=0)
    with pytest.raises(ValueError, match=r"the model has 2 outputs \['out1', 'out2'\]; received a list of 3 target"):
        model.fit([x1, x2], [y1, y2, y1], verbose=0)
    with pytest.raises(ValueError, match=r"2 outputs \['out1', 'out2'\]; received a list of 3 sample weights"):
        model.fit([x1, x2], [y1, y2], sample_weight=[np.ones(40)] * 3, verbose=0)


# ------------------------------------------------------------------------- 5. Keras 2 spellings
def test_keras2_generator_methods_and_acc_names():
    x, y = _data()
    model = _dense(fk)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
    with pytest.warns(DeprecationWarning, match=r"`Model.fit_generator` is deprecated.*Please use `Model.fit`"):
        history = model.fit_generator(_endless(x, y, 16), steps_per_epoch=3, epochs=2, verbose=0,
                                      validation_data=(x, y))
    assert sorted(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    with pytest.warns(DeprecationWarning, match="`Model.evaluate_generator` is deprecated"):
        values = model.evaluate_generator(_endless(x, y, 16), steps=3)
    assert values == pytest.approx(model.evaluate(x, y, batch_size=16, verbose=0))
    with pytest.warns(DeprecationWarning, match="`Model.predict_generator` is deprecated"):
        predictions = model.predict_generator(_endless(x, y, 16), steps=3)
    np.testing.assert_allclose(predictions, model.predict(x, verbose=0))


# ------------------------------------------------------------------------------- 8. Ctrl-C in fit
class _Snapshots(fk.callbacks.Callback):
    """Weights and optimizer state after every step."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(_state(self.model))


def _state(model):
    return [w.copy() for w in model.get_weights()] + [a.copy() for _, a in model.optimizer.variables]


def _interruptible_model():
    fk.utils.set_random_seed(5)
    model = fk.Sequential([L.Input((6,)), L.Dense(32, activation="relu"), L.BatchNormalization(),
                           L.Dense(32, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def python_sigint_handler():
    """Python's own Ctrl-C handler for the test, as in a program run from a terminal: a process
    started in the background of a non-interactive shell (nohup ... &) inherits SIGINT ignored,
    and Python then installs no handler (fit rightly raises nothing there)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_at_a_step_boundary_and_runs_on_train_end(tmp_path, python_sigint_handler):
    """SIGINT at a random time during fit: every weight and optimizer state is the one after a
    whole number of steps (never between two), on_train_end ran, the KeyboardInterrupt reached
    the caller."""
    x, y = _data(n=256)
    epochs = 30
    reference = _interruptible_model()
    snapshots = _Snapshots()
    reference.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=[snapshots])
    rng = np.random.default_rng(0)
    interrupted_at = set()
    for trial in range(12):
        model = _interruptible_model()
        before = _state(model)
        csv_logger = fk.callbacks.CSVLogger(tmp_path / f"log{trial}.csv")
        ended = []
        timer = threading.Timer(rng.uniform(0.002, 0.15), os.kill, (os.getpid(), signal.SIGINT))
        on_train = fk.callbacks.LambdaCallback(on_train_begin=lambda logs, timer=timer: timer.start(),
                                               on_train_end=lambda logs, ended=ended: ended.append(1))
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=[csv_logger, on_train])
            timer.cancel()
        timer.join()
        steps = model.optimizer.iterations
        state = _state(model)
        expected = before if steps == 0 else snapshots.states[steps - 1]
        assert len(state) == len(expected)
        for got, want in zip(state, expected):
            np.testing.assert_array_equal(got, want)
        files = [v for v in vars(csv_logger).values() if hasattr(v, "closed")]
        assert ended == [1] and files and all(f.closed for f in files)  # CSVLogger closed its file
        # The completed epochs (an interrupt after an epoch's last step comes before its on_epoch_end).
        completed = len(model.history.epoch)
        assert model.history.epoch == list(range(completed))
        assert completed == steps // 32 or (steps % 32 == 0 and completed == steps // 32 - 1)
        interrupted_at.add(steps)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert len(interrupted_at) > 3  # the interrupts came at different steps


# ---------------------------------------------------------------------------------- 6. config
def test_config_matches_keras_names_and_floatx_changes_new_layers(keras):
    assert all(hasattr(keras.config, name) for name in fk.config.__all__)
    assert fk.config.floatx() == keras.config.floatx() == "float32"
    assert fk.config.image_data_format() == fk.backend.image_data_format() == "channels_last"
    assert fk.config.epsilon() == keras.config.epsilon() and isinstance(fk.config.backend(), str)
    x, y = _data()
    fk.config.set_floatx("float64")
    try:
        model = _dense(fk)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=1, verbose=0)
        assert {w.dtype for w in model.get_weights()} == {np.dtype("float64")}
        assert model.predict(x, verbose=0).dtype == np.float64
    finally:
        fk.config.set_floatx("float32")
    assert _dense(fk).get_weights()[0].dtype == np.float32
    with pytest.raises(ValueError, match="float32 or float64 only; float16 is not implemented"):
        fk.config.set_floatx("float16")
    with pytest.raises(ValueError, match="Unknown `floatx` value: 'int8'"):
        fk.backend.set_floatx("int8")
    with pytest.raises(ValueError, match="default to channels_last only.*data_format='channels_first'"):
        fk.config.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match="must be one of"):
        fk.config.set_image_data_format("nhwc")
    fk.config.set_epsilon(1e-3)
    try:
        # Cross-entropies clip probabilities to [epsilon, 1 - epsilon].
        assert fk.losses.BinaryCrossentropy()(np.ones((1, 1)), np.zeros((1, 1), "float32")) == \
            pytest.approx(-np.log(1e-3), rel=1e-5)
    finally:
        fk.config.set_epsilon(1e-7)


def test_enable_unsafe_deserialization_lets_lambda_code_load():
    import contextvars

    if not hasattr(L, "Lambda"):
        pytest.skip("fastconv.keras.layers.Lambda is not there yet")
    layer = L.Lambda(lambda t: t * 2.0)
    config = layer.get_config()

    def load_after_enabling():
        with pytest.raises(ValueError):
            L.Lambda.from_config(config)
        fk.config.enable_unsafe_deserialization()
        return L.Lambda.from_config(config)
    # In a copy of the context: the setting does not leak into the other tests.
    loaded = contextvars.copy_context().run(load_after_enabling)
    np.testing.assert_allclose(loaded(np.ones((1, 2), "float32")), 2.0)
