"""fastconv.keras against Keras on TensorFlow, end to end: the same initial weights and data give
the same per-batch losses, validation figures and final weights (the lecture's malaria CNN with
Adam, LeNet-5 with both cross-entropies, a residual block with batch normalization), the same
predictions, and the same summary text.  Skipped when TensorFlow is not installed."""
import numpy as np
import pytest

from fastconv import keras as fk

from _helpers import floatx_of_both, lenet5, malaria_cnn, residual_model

# Keras warns about the lecture's `input_shape=` on a first layer; fastconv.keras accepts it quietly.
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")


def _recorder(callback_base):
    class Recorder(callback_base):
        def __init__(self):
            super().__init__()
            self.batches = []

        def on_train_batch_end(self, batch, logs=None):
            self.batches.append([logs[k] for k in sorted(logs)])
    return Recorder()


def _train_both(keras, k_model, f_model, x, y, compile_kwargs, fit_kwargs):
    """Copy Keras's initial weights into fastconv's model, train both, return per-batch logs,
    histories and final weights."""
    for m in (k_model, f_model):
        m.compile(**compile_kwargs())
    f_model.set_weights(k_model.get_weights())
    k_rec, f_rec = _recorder(keras.callbacks.Callback), _recorder(fk.callbacks.Callback)
    k_hist = k_model.fit(x, y, callbacks=[k_rec], verbose=0, shuffle=False, **fit_kwargs)
    f_hist = f_model.fit(x, y, callbacks=[f_rec], verbose=0, shuffle=False, **fit_kwargs)
    return (k_rec.batches, f_rec.batches), (k_hist.history, f_hist.history), \
        (k_model.get_weights(), f_model.get_weights())


# Training compared entry by entry is done in float64 (floatx float64 on both sides): in float32 a
# gradient entry near zero, or a ReLU input within rounding of zero, turns the sign of an Adam or
# RMSprop step (which moves a weight by about one learning rate whatever the gradient's size), so
# float32 weights of two correct implementations differ by a whole step here and there (CI saw it;
# see test_malaria_cnn_at_full_size_matches_keras_losses for the float32 comparison).  The logs stay
# at 1e-6: Keras keeps its metrics in float32 whatever floatx is.
FLOAT64 = dict(rtol=1e-6, dtype=np.float64, weights_rtol=1e-6)


def _assert_same_training(result, rtol=1e-4, dtype=np.float32, weights_rtol=None):
    """Per-batch logs and histories within ``rtol`` (Keras keeps its metrics in float32 whatever
    the model's dtype), final weights of ``dtype`` within ``weights_rtol`` (default ``rtol``)."""
    weights_rtol = rtol if weights_rtol is None else weights_rtol
    (k_batches, f_batches), (k_hist, f_hist), (k_weights, f_weights) = result
    # Running means of the loss and metrics after every batch (what the callbacks see).
    np.testing.assert_allclose(f_batches, k_batches, rtol=rtol)
    assert list(f_hist) == list(k_hist)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=rtol, err_msg=key)
    for kw, fw in zip(k_weights, f_weights):
        assert fw.shape == kw.shape and fw.dtype == kw.dtype == dtype
        # Relative to the weight tensor's largest entry (the update moved every entry).
        np.testing.assert_allclose(fw, kw, rtol=weights_rtol, atol=weights_rtol * np.abs(kw).max())


def test_malaria_cnn_one_epoch_with_adam_matches_keras(keras):
    """The lecture's CNN on 32x32 images (dropout 0, no shuffling): 400 samples, batch 100,
    validation_split 0.1 -> 4 batches of Adam, then the validation."""
    rng = np.random.default_rng(0)
    x = rng.random((400, 32, 32, 3))
    y = (rng.random(400) > 0.5).astype(np.float64)
    with floatx_of_both(keras, "float64"):
        result = _train_both(keras, malaria_cnn(keras, 32, dropout=0.0), malaria_cnn(fk, 32, dropout=0.0), x, y,
                             lambda: dict(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"]),
                             dict(batch_size=100, epochs=1, validation_split=0.1))
    assert len(result[0][0]) == 4
    _assert_same_training(result, **FLOAT64)


def test_malaria_cnn_at_full_size_matches_keras_losses(keras):
    """At the lecture's 100x100 the per-batch losses and the validation agree within 1e-4, and
    the weights to 1% in norm. Not entry by entry: with 36,864 inputs to the Dense layer, float32
    sums in another order (fastconv's or TensorFlow's, or Keras in float64 against float32) turn
    the signs of near-zero gradients, and Adam moves such a weight by the full step whatever the
    gradient's size. Measured on this test: fastconv against Keras, conv2d_1's biases (which start
    at 0) differ by up to 2.5% of their largest entry, the tensors by 2e-4 to 5e-3 in norm; Keras
    in float32 against Keras in float64, by up to 1.1% and 4e-5 to 2e-3: the same noise."""
    rng = np.random.default_rng(0)
    x = rng.random((400, 100, 100, 3), dtype=np.float32)
    y = (rng.random(400) > 0.5).astype(np.float32)
    (k_batches, f_batches), (k_hist, f_hist), (k_weights, f_weights) = _train_both(
        keras, malaria_cnn(keras, 100, dropout=0.0), malaria_cnn(fk, 100, dropout=0.0), x, y,
        lambda: dict(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"]),
        dict(batch_size=100, epochs=1, validation_split=0.1))
    np.testing.assert_allclose(f_batches, k_batches, rtol=1e-4)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=1e-4, err_msg=key)
    for kw, fw in zip(k_weights, f_weights):
        assert np.linalg.norm(fw - kw) <= 1e-2 * np.linalg.norm(kw)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_lenet5_matches_keras(keras, loss):
    rng = np.random.default_rng(1)
    x = rng.random((192, 32, 32, 1))
    labels = rng.integers(0, 10, 192)
    y = np.eye(10)[labels] if loss.startswith("categorical") else labels
    def pool():
        return keras.layers.AveragePooling2D(pool_size=(2, 2))  # Keras 3 requires pool_size here

    with floatx_of_both(keras, "float64"):
        result = _train_both(keras, lenet5(keras, pool), lenet5(fk), x, y,
                             lambda: dict(loss=loss, optimizer="adam", metrics=["accuracy"]),
                             dict(batch_size=32, epochs=2, validation_data=(x[:64], y[:64])))
    _assert_same_training(result, **FLOAT64)


def test_residual_block_with_batch_normalization_matches_keras(keras):
    rng = np.random.default_rng(2)
    x = rng.random((96, 8, 8, 3))
    y = rng.integers(0, 3, 96)
    with floatx_of_both(keras, "float64"):
        result = _train_both(keras, residual_model(keras, "float64"), residual_model(fk, "float64"), x, y,
                             lambda: dict(loss="sparse_categorical_crossentropy",
                                          optimizer="rmsprop", metrics=["acc"]),
                             dict(batch_size=16, epochs=2, validation_split=0.25))
    # includes BatchNormalization's moving statistics
    _assert_same_training(result, **FLOAT64)


def test_predict_with_keras_weights_matches_keras(keras):
    """The full-size malaria CNN with the weights of a Keras model: predictions within 1e-5."""
    k_model, f_model = malaria_cnn(keras, 100), malaria_cnn(fk, 100)
    rng = np.random.default_rng(3)
    k_model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in k_model.get_weights()])
    f_model.set_weights(k_model.get_weights())
    x = rng.random((12, 100, 100, 3), dtype=np.float32)
    expected = k_model.predict(x, verbose=0)
    np.testing.assert_allclose(f_model.predict(x, batch_size=5, verbose=0), expected, rtol=1e-5, atol=1e-5)
    maps_k = keras.Model(inputs=k_model.inputs, outputs=k_model.layers[0].output).predict(x[:1], verbose=0)
    maps_f = fk.Model(inputs=f_model.inputs, outputs=f_model.layers[0].output).predict(x[:1], verbose=0)
    np.testing.assert_allclose(maps_f, maps_k, rtol=1e-5, atol=1e-5)


def test_summary_text_matches_keras(keras):
    x, y = (np.random.default_rng(4).random((8, 8, 8, 3), dtype=np.float32), np.arange(8) % 3)
    for build, expected in ((lambda K: malaria_cnn(K, 100), "Total params: 56,257 (219.75 KB)"),
                            (residual_model, "Optimizer params: 560 (2.19 KB)")):
        keras.backend.clear_session()
        fk.backend.clear_session()
        texts = {}
        for K in (keras, fk):
            model = build(K)
            model.summary(print_fn=texts.setdefault(K.__name__, []).append)
            if build is residual_model:
                # After training, the optimizer's state is counted too.
                model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
                model.fit(x, y, epochs=1, verbose=0)
                model.summary(print_fn=texts[K.__name__].append)
        assert texts["fastconv.keras"] == texts["keras"]
        assert expected in texts["keras"][-1]
