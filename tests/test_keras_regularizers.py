"""fastconv.keras regularizers and constraints: values and gradients (finite differences), the
same penalties, configs and layer.losses as Keras, and one epoch of training with them equal to
Keras's (the logged loss includes the penalties; constraints after every update)."""
import numpy as np
import pytest

from fastconv import keras as fk
from fastconv.keras import constraints, regularizers

pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")

REGULARIZERS = [("L1", {}), ("L2", {}), ("L1L2", {"l1": 0.02, "l2": 0.03}), ("OrthogonalRegularizer", {}),
                ("OrthogonalRegularizer", {"factor": 0.2, "mode": "columns"})]
CONSTRAINTS = [("MaxNorm", {}), ("MaxNorm", {"max_value": 0.5, "axis": [0, 1]}), ("NonNeg", {}),
               ("UnitNorm", {"axis": 1}), ("MinMaxNorm", {"min_value": 0.4, "max_value": 0.6, "rate": 0.5})]


@pytest.fixture
def keras(tf):
    import keras as keras_module
    keras_module.backend.clear_session()
    fk.backend.clear_session()
    return keras_module


@pytest.mark.parametrize("name, kwargs", REGULARIZERS)
def test_regularizer_gradients_match_finite_differences(name, kwargs):
    x = np.random.default_rng(0).standard_normal((5, 4))
    reg = getattr(regularizers, name)(**kwargs)
    grad = reg.gradient(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        assert (reg(up) - reg(down)) / 2e-6 == pytest.approx(grad[index], abs=1e-6)


@pytest.mark.parametrize("name, kwargs", REGULARIZERS)
def test_regularizers_match_keras(keras, name, kwargs):
    x = np.random.default_rng(1).standard_normal((6, 3)).astype("float32")
    ours, theirs = getattr(regularizers, name)(**kwargs), getattr(keras.regularizers, name)(**kwargs)
    assert ours(x) == pytest.approx(float(theirs(keras.ops.convert_to_tensor(x))), rel=1e-5)
    assert ours.get_config() == theirs.get_config()
    assert regularizers.get(regularizers.serialize(ours)).get_config() == ours.get_config()


@pytest.mark.parametrize("name, kwargs", CONSTRAINTS)
def test_constraints_match_keras(keras, name, kwargs):
    w = np.random.default_rng(2).standard_normal((3, 4, 2)).astype("float32")
    ours, theirs = getattr(constraints, name)(**kwargs), getattr(keras.constraints, name)(**kwargs)
    np.testing.assert_allclose(ours(w), np.asarray(theirs(w)), rtol=1e-6, atol=1e-7)
    assert ours.get_config() == theirs.get_config()
    assert constraints.get(constraints.serialize(ours)).get_config() == ours.get_config()


def test_identifiers_defaults_and_errors(keras):
    for identifier in ("l1", "l2", "l1l2", "orthogonal_regularizer", "L1L2"):
        assert type(regularizers.get(identifier)).__name__ == type(keras.regularizers.get(identifier)).__name__
        assert regularizers.get(identifier).get_config() == keras.regularizers.get(identifier).get_config()
    for identifier in ("max_norm", "non_neg", "unit_norm", "min_max_norm", "MaxNorm"):
        assert type(constraints.get(identifier)).__name__ == type(keras.constraints.get(identifier)).__name__
    assert regularizers.l1_l2 is regularizers.L1L2 and constraints.max_norm is constraints.MaxNorm
    with pytest.raises(ValueError, match="Could not interpret regularizer identifier: l1_l2"):
        regularizers.get("l1_l2")  # as Keras 3: the string is "l1l2"
    with pytest.raises(ValueError, match="Invalid value for argument l2: expected a non-negative float"):
        regularizers.L2(-1.0)
    with pytest.raises(ValueError, match="computes gradients by hand.*gradient"):
        fk.layers.Dense(2, kernel_regularizer=lambda w: 0.01 * np.sum(w * w))
    with pytest.raises(ValueError, match="Could not interpret constraint identifier"):
        constraints.get("maxnorm")
    # A function w -> w is a valid constraint.
    layer = fk.layers.Dense(2, kernel_constraint=lambda w: np.clip(w, -0.1, 0.1))
    assert callable(layer.kernel_constraint)


def test_layer_losses_and_configs_match_keras(keras):
    x = np.random.default_rng(3).standard_normal((4, 5)).astype("float32")
    kwargs = dict(kernel_regularizer="l2", bias_regularizer=regularizers.L1(0.5), activity_regularizer="l1",
                  bias_initializer="ones")
    ours = fk.layers.Dense(3, **kwargs)
    theirs = keras.layers.Dense(3, kernel_regularizer="l2", bias_regularizer=keras.regularizers.L1(0.5),
                                activity_regularizer="l1", bias_initializer="ones")
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    # The losses of the last call: weight penalties (at the current weights) and the activity one.
    theirs(x * 2)
    ours(x * 2)
    np.testing.assert_allclose(sorted(ours.losses), sorted(float(v) for v in theirs.losses), rtol=1e-5)
    for ours_layer, theirs_layer in [
            (ours, theirs),
            (fk.layers.Conv2D(2, 3, kernel_constraint="max_norm"),
             keras.layers.Conv2D(2, 3, kernel_constraint="max_norm")),
            (fk.layers.BatchNormalization(gamma_regularizer="l2", beta_constraint="non_neg"),
             keras.layers.BatchNormalization(gamma_regularizer="l2", beta_constraint="non_neg"))]:
        ours_config, theirs_config = ours_layer.get_config(), theirs_layer.get_config()
        for key in [k for k in theirs_config if "regularizer" in k or "constraint" in k]:
            theirs_value = theirs_config[key]
            expected = None if theirs_value is None else {"class_name": theirs_value["class_name"],
                                                          "config": theirs_value["config"]}
            assert ours_config[key] == expected, key
        again = type(ours_layer).from_config(ours_config)
        assert again.get_config() == ours_config


# ----------------------------------------------------------------------------------- training
def _regularized_cnn(K, R, C):
    return K.Sequential([
        K.Input((8, 8, 2)),
        K.layers.Conv2D(4, 3, activation="relu", kernel_regularizer=R.L2(0.01), bias_regularizer=R.L1(0.01),
                        activity_regularizer=R.L2(0.001)),
        K.layers.BatchNormalization(gamma_regularizer=R.L2(0.01), beta_regularizer=R.L1(0.01)),
        K.layers.Conv2D(3, 3, kernel_constraint=C.MaxNorm(0.3, axis=[0, 1, 2])),
        K.layers.Flatten(),
        K.layers.Dense(6, activation="tanh", kernel_regularizer=R.L1L2(0.001, 0.01), activity_regularizer=R.L1(0.01),
                       kernel_constraint=C.UnitNorm(), bias_constraint=C.NonNeg()),
        K.layers.Dense(3, activation="softmax", kernel_regularizer=R.OrthogonalRegularizer(0.1),
                       activity_regularizer=R.L2(0.01))])


def _train_both(keras, make, x, y, epochs=1):
    k_model, f_model = make(keras, keras.regularizers, keras.constraints), make(fk, regularizers, constraints)
    for m in (k_model, f_model):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    f_model.set_weights(k_model.get_weights())
    k_hist = k_model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, validation_data=(x, y))
    f_hist = f_model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, validation_data=(x, y))
    return k_model, f_model, k_hist.history, f_hist.history


def test_one_epoch_with_l2_on_a_kernel_matches_keras(keras):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((32, 8, 8, 2)).astype("float32"), rng.integers(0, 3, 32)

    def make(K, R, C):
        return K.Sequential([K.Input((8, 8, 2)), K.layers.Conv2D(4, 3, activation="relu", kernel_regularizer=R.L2()),
                             K.layers.Flatten(), K.layers.Dense(3, activation="softmax",
                                                                kernel_regularizer="l2")])
    k_model, f_model, k_hist, f_hist = _train_both(keras, make, x, y)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=1e-4, err_msg=key)
    for kw, fw in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(fw, kw, rtol=1e-4, atol=1e-4 * np.abs(kw).max())
    # The logged loss includes the penalties: it exceeds the cross-entropy alone.
    cross_entropy = fk.losses.SparseCategoricalCrossentropy()(y, f_model.predict(x, verbose=0))
    assert f_model.evaluate(x, y, verbose=0)[0] > cross_entropy


def test_every_regularizer_and_constraint_in_training_matches_keras(keras):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((24, 8, 8, 2)).astype("float32"), rng.integers(0, 3, 24)
    k_model, f_model, k_hist, f_hist = _train_both(keras, _regularized_cnn, x, y)
    assert sorted(f_hist) == sorted(k_hist)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=1e-4, err_msg=key)
    for kw, fw in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(fw, kw, rtol=1e-4, atol=1e-4 * np.abs(kw).max())
    dense = f_model.layers[-2]
    np.testing.assert_allclose(np.linalg.norm(dense.kernel.value, axis=0), 1.0, rtol=1e-5)  # UnitNorm
    assert (dense.bias.value >= 0).all()  # NonNeg
