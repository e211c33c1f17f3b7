"""fastconv.keras losses (values and gradients) and metrics: against their definitions, finite
differences, and Keras when TensorFlow is installed (the optimizers: test_keras_optimizers.py)."""
import numpy as np
import pytest

from fastconv.keras import losses, metrics, optimizers


def _probabilities(rng, shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


CASES = [
    # (loss, y_true, y_pred, logits or None)
    ("binary_crossentropy", lambda r: (r.random((6, 1)) > 0.5) * 1.0, lambda r: r.uniform(0.05, 0.95, (6, 1)), None),
    ("binary_crossentropy", lambda r: (r.random(6) > 0.5) * 1.0, lambda r: r.uniform(0.05, 0.95, (6, 1)), None),
    ("binary_crossentropy", lambda r: (r.random((5, 3)) > 0.5) * 1.0, None, lambda r: r.standard_normal((5, 3)) * 3),
    ("categorical_crossentropy", lambda r: np.eye(4)[r.integers(0, 4, 5)], lambda r: _probabilities(r, (5, 4)), None),
    ("categorical_crossentropy", lambda r: np.eye(4)[r.integers(0, 4, 5)], None, lambda r: r.standard_normal((5, 4))),
    ("sparse_categorical_crossentropy", lambda r: r.integers(0, 4, 5), lambda r: _probabilities(r, (5, 4)), None),
    ("sparse_categorical_crossentropy", lambda r: r.integers(0, 4, (5, 1)), None, lambda r: r.standard_normal((5, 4))),
    ("mse", lambda r: r.standard_normal((5, 3)), lambda r: r.standard_normal((5, 3)), None),
    ("mae", lambda r: r.standard_normal((5, 3)), lambda r: r.standard_normal((5, 3)), None),
]


def _activation(name, z):
    if name == "binary_crossentropy":
        return 1 / (1 + np.exp(-z))
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("name, make_y, make_p, make_z", CASES)
def test_loss_gradients_match_finite_differences(name, make_y, make_p, make_z):
    rng = np.random.default_rng(0)
    loss = losses.get(name)
    y = make_y(rng)
    z = None if make_z is None else make_z(rng)
    p = _activation(name, z) if make_p is None else make_p(rng)
    value, grad, wrt_logits = loss.value_and_grad(y, p, z)
    assert wrt_logits == (z is not None)
    target = z if wrt_logits else p

    def f():
        q = _activation(name, z) if wrt_logits else p
        return loss.value_and_grad(y, q, z)[0]

    assert value == pytest.approx(f())
    assert grad.shape == target.shape
    for index in np.ndindex(target.shape):
        old = target[index]
        target[index] = old + 1e-6
        up = f()
        target[index] = old - 1e-6
        down = f()
        target[index] = old
        assert (up - down) / 2e-6 == pytest.approx(grad[index], abs=1e-6)


def test_cross_entropy_values():
    y = np.array([[1.0], [0.0]])
    p = np.array([[0.8], [0.3]])
    expected = -(np.log(0.8) + np.log(0.7)) / 2
    assert losses.BinaryCrossentropy()(y, p) == pytest.approx(expected)
    # Probabilities are clipped to [1e-7, 1 - 1e-7]: a certain wrong answer costs -log(1e-7).
    assert losses.binary_crossentropy(np.array([[1.0]]), np.array([[0.0]]))[0] == pytest.approx(-np.log(1e-7), rel=1e-6)
    onehot = np.array([[0, 1, 0.0]])
    assert losses.categorical_crossentropy(onehot, np.array([[0.2, 0.5, 0.3]]))[0] == pytest.approx(-np.log(0.5))
    assert losses.sparse_categorical_crossentropy(np.array([1]), np.array([[0.2, 0.5, 0.3]]))[0] == pytest.approx(-np.log(0.5))
    assert losses.mean_squared_error(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))[0] == pytest.approx(2.5)


@pytest.mark.parametrize("name, y, p, message", [
    ("binary_crossentropy", np.zeros(5), np.zeros((5, 3)), "same shape"),
    ("sparse_categorical_crossentropy", np.array([0, 3]), np.full((2, 3), 1 / 3), r"label value of 3.*\[0, 3\)"),
    ("sparse_categorical_crossentropy", np.array([0.5, 1]), np.full((2, 3), 1 / 3), "must be integers"),
    ("categorical_crossentropy", np.zeros((4, 1)), np.zeros((4, 1)), "one column per class"),
])
def test_loss_errors(name, y, p, message):
    with pytest.raises(ValueError, match=message):
        losses.get(name).value_and_grad(y, p)


def test_unknown_identifiers():
    with pytest.raises(ValueError, match="Could not interpret loss identifier: 'hinge_loss'"):
        losses.get("hinge_loss")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier: 'adamw2'"):
        optimizers.get("adamw2")
    with pytest.raises(ValueError, match="Could not interpret metric identifier: 'f7'"):
        metrics.get("f7")


def test_accuracy_is_resolved_from_the_shapes_as_keras_does():
    assert isinstance(metrics.get("accuracy", (8,), (8, 1)), metrics.BinaryAccuracy)
    assert isinstance(metrics.get("accuracy", (8, 1), (8, 1)), metrics.BinaryAccuracy)
    assert isinstance(metrics.get("accuracy", (8,), (8, 10)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("acc", (8, 1), (8, 10)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.get("accuracy", (8, 10), (8, 10)), metrics.CategoricalAccuracy)
    assert metrics.get("acc", (8,), (8, 1)).name == "acc"
    m = metrics.get("accuracy", (4,), (4, 1))
    m.update_state(np.array([1, 0, 1, 0]), np.array([[0.9], [0.6], [0.2], [0.4]]))
    assert m.result() == 0.5
    m.update_state(np.array([1, 1]), np.array([[0.7], [0.8]]))
    assert m.result() == pytest.approx(4 / 6)  # a mean over every sample seen


def test_losses_match_keras(tf):
    import keras
    rng = np.random.default_rng(1)
    for name, make_y, make_p, make_z in CASES:
        y = make_y(rng).astype(np.float32)
        z = None if make_z is None else make_z(rng).astype(np.float32)
        p = (_activation(name, z) if make_p is None else make_p(rng)).astype(np.float32)
        cls = type(losses.get(name)).__name__
        kloss = getattr(keras.losses, cls)(**({} if z is None else {"from_logits": True}))
        expected = float(kloss(y, p if z is None else z))
        assert losses.get(name).value_and_grad(y, p, z)[0] == pytest.approx(expected, rel=1e-5), name


def test_losses_take_the_logits_of_a_sigmoid_output_as_keras_on_tensorflow(tf):
    """Keras on TensorFlow computes a cross-entropy on a sigmoid/softmax output from that
    activation's input (no clipping): a confident wrong answer costs its full logit."""
    import keras
    from fastconv import keras as fk
    x = np.array([[30.0], [-30.0], [1.0], [40.0]], dtype=np.float32)
    y = np.array([0, 1, 1, 1], dtype=np.float32)
    results = []
    for K in (keras, fk):
        model = K.Sequential([K.layers.Input((1,)), K.layers.Dense(1, activation="sigmoid", kernel_initializer="ones")])
        model.compile(loss="binary_crossentropy", optimizer="sgd")
        results.append(model.evaluate(x, y, verbose=0))
    assert results[1] == pytest.approx(results[0], rel=1e-6)
    assert results[0] > 15  # clipped probabilities would give 8.1
