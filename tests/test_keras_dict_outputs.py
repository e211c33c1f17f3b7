"""Functional models built with a dict of outputs (Keras 3's functional-API guide), against Keras:
outputs returned as dicts, targets/losses/metrics/logs by key, lists in sorted-key order, and
.keras files both ways."""
import numpy as np
import pytest

import fastconv.keras as fk


def _model(K):
    """The guide's ticket classifier, small: two inputs, a dict of two outputs."""
    title = K.Input(shape=(6,), name="title")
    tags = K.Input(shape=(4,), name="tags")
    x = K.layers.concatenate([K.layers.Dense(8, activation="relu")(title), tags])
    priority = K.layers.Dense(1, name="priority_head")(x)
    department = K.layers.Dense(3, name="department_head")(x)
    return K.Model(inputs=[title, tags], outputs={"priority": priority, "department": department})


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = [rng.standard_normal((n, 6)).astype(np.float32), rng.standard_normal((n, 4)).astype(np.float32)]
    y = {"priority": rng.random((n, 1)).astype(np.float32), "department": rng.integers(0, 3, n)}
    return x, y


def test_outputs_are_dicts_in_the_given_order_and_match_keras(keras):
    k_model, f_model = _model(keras), _model(fk)
    f_model.set_weights(k_model.get_weights())
    x, _ = _data()
    k_out, f_out = k_model.predict(x, verbose=0), f_model.predict(x, verbose=0)
    assert list(f_out) == list(k_out) == ["priority", "department"]
    for key in k_out:
        np.testing.assert_allclose(f_out[key], k_out[key], rtol=1e-5, atol=1e-6)
    assert list(f_model(x)) == ["priority", "department"] and list(f_model.predict_on_batch(x)) == list(k_out)
    # the flat order is the sorted keys' (department, priority), as Keras's
    assert [t.shape for t in f_model.outputs] == [tuple(t.shape) for t in k_model.outputs] == [(None, 3), (None, 1)]
    assert isinstance(f_model.output, dict) and list(f_model.output) == ["priority", "department"]


@pytest.mark.parametrize("form", ["dict", "list"])
def test_training_by_key_matches_keras(keras, form):
    x, y = _data()
    k_model, f_model = _model(keras), _model(fk)
    f_model.set_weights(k_model.get_weights())
    for m, K in ((k_model, keras), (f_model, fk)):
        if form == "dict":
            m.compile(K.optimizers.SGD(0.05),
                      loss={"priority": "mse", "department": "sparse_categorical_crossentropy"},
                      loss_weights={"priority": 1.0, "department": 0.2},
                      metrics={"department": ["accuracy"]})
        else:    # lists follow the sorted keys: department, then priority
            m.compile(K.optimizers.SGD(0.05), loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[0.2, 1.0])
    targets = y if form == "dict" else [y["department"], y["priority"]]
    k_hist = k_model.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    f_hist = f_model.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert sorted(f_hist) == sorted(k_hist)
    for key in k_hist:
        np.testing.assert_allclose(f_hist[key], k_hist[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(f_model.get_weights(), k_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _assert_same_dicts(a, b):
    assert list(a) == list(b)
    for key in b:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_keras_files_both_ways_keep_the_dict(keras, tmp_path):
    x, _ = _data()
    f_model = _model(fk)
    f_model.save(tmp_path / "ours.keras")
    _assert_same_dicts(keras.models.load_model(tmp_path / "ours.keras").predict(x, verbose=0),
                       f_model.predict(x, verbose=0))
    k_model = _model(keras)
    k_model.save(tmp_path / "theirs.keras")
    _assert_same_dicts(fk.models.load_model(tmp_path / "theirs.keras").predict(x, verbose=0),
                       k_model.predict(x, verbose=0))
    again = fk.models.model_from_json(f_model.to_json())
    assert list(again.predict(x, verbose=0)) == ["priority", "department"]


def test_keys_must_be_strings():
    inputs = fk.Input((3,))
    with pytest.raises(ValueError, match="the keys of a dict of outputs must be strings"):
        fk.Model(inputs, {1: fk.layers.Dense(1)(inputs)})
