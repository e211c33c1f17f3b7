"""The metrics beyond accuracy, against Keras: confusion-matrix metrics (Precision, Recall, AUC,
TruePositives...), top-k accuracies, the losses as metrics, RootMeanSquaredError; their names in
fit's logs."""
import numpy as np
import pytest

import fastconv.keras as fk

rng = np.random.default_rng(0)
N = 300
BINARY = (rng.integers(0, 2, (N, 1)).astype(np.float32), rng.random((N, 1)).astype(np.float32))
LABELS = rng.integers(0, 5, N)
SCORES = rng.random((N, 5)).astype(np.float32)
ONE_HOT = np.eye(5, dtype=np.float32)[LABELS]
WEIGHTS = rng.random(N).astype(np.float32)

CASES = [
    ("Precision", {}, BINARY), ("Recall", {}, BINARY), ("Precision", {"thresholds": [0.2, 0.5, 0.9]}, BINARY),
    ("Recall", {"thresholds": 0.7}, BINARY), ("Precision", {"top_k": 2}, (ONE_HOT, SCORES)),
    ("Recall", {"class_id": 3}, (ONE_HOT, SCORES)), ("Precision", {"top_k": 1, "class_id": 1}, (ONE_HOT, SCORES)),
    ("TruePositives", {}, BINARY), ("FalsePositives", {"thresholds": [0.3, 0.6]}, BINARY),
    ("TrueNegatives", {}, BINARY), ("FalseNegatives", {}, BINARY),
    ("AUC", {}, BINARY), ("AUC", {"curve": "PR"}, BINARY), ("AUC", {"summation_method": "minoring"}, BINARY),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, BINARY), ("AUC", {"num_thresholds": 7}, BINARY),
    ("AUC", {"thresholds": [0.1, 0.4, 0.8]}, BINARY), ("AUC", {}, (ONE_HOT, SCORES)),
    ("AUC", {"from_logits": True}, (BINARY[0], BINARY[1] * 8 - 4)),
    ("TopKCategoricalAccuracy", {}, (ONE_HOT, SCORES)), ("TopKCategoricalAccuracy", {"k": 2}, (ONE_HOT, SCORES)),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, (LABELS, SCORES)),
    ("BinaryCrossentropy", {}, BINARY), ("CategoricalCrossentropy", {"label_smoothing": 0.1}, (ONE_HOT, SCORES)),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, (LABELS, SCORES)),
    ("RootMeanSquaredError", {}, BINARY),
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name, kwargs, data", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_results_as_keras_over_several_batches(keras, name, kwargs, data, weighted):
    ours, theirs = getattr(fk.metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    y_true, y_pred = data
    for part in (slice(0, 100), slice(100, 220), slice(220, N)):      # accumulated over batches
        sw = WEIGHTS[part] if weighted else None
        ours.update_state(y_true[part], y_pred[part], sample_weight=sw)
        theirs.update_state(y_true[part], y_pred[part], sample_weight=sw)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-5, atol=1e-6)
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(*data)
    theirs.update_state(*data)
    np.testing.assert_allclose(ours.result(), np.asarray(theirs.result()), rtol=2e-5, atol=1e-6)


def test_names_configs_and_logs_as_keras(keras):
    assert [fk.metrics.AUC().name for _ in range(2)] == ["auc", "auc_1"]     # auto-named, as Keras 3
    keras.backend.clear_session()
    fk.backend.clear_session()
    histories = []
    for K in (keras, fk):
        model = K.Sequential([K.Input((3,)), K.layers.Dense(1, activation="sigmoid")])
        model.compile("adam", "binary_crossentropy",
                      metrics=["accuracy", K.metrics.AUC(), "AUC", K.metrics.Precision(), K.metrics.Recall(name="rec"),
                               "precision", "recall", "auc"])
        x, y = rng.random((40, 3)), rng.integers(0, 2, 40)
        histories.append(model.fit(x, y, epochs=1, validation_split=0.25, verbose=0).history)
    assert sorted(histories[1]) == sorted(histories[0])
    for cls, kwargs in (("AUC", {"curve": "PR", "num_thresholds": 50}), ("Precision", {"thresholds": [0.3, 0.8]}),
                        ("TopKCategoricalAccuracy", {"k": 3}), ("BinaryCrossentropy", {"from_logits": True})):
        ours, theirs = getattr(fk.metrics, cls)(**kwargs), getattr(keras.metrics, cls)(**kwargs)
        mine, keras_config = ours.get_config(), theirs.get_config()
        assert set(mine) <= set(keras_config), cls
        for key in mine:
            if key not in ("name", "dtype"):
                assert mine[key] == keras_config[key], (cls, key)


def test_bad_arguments():
    with pytest.raises(ValueError, match="threshold values must be in \\[0, 1\\]"):
        fk.metrics.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match='Invalid `curve` argument value "ROCK"'):
        fk.metrics.AUC(curve="ROCK")
    with pytest.raises(ValueError, match="multi_label, num_labels and label_weights are not supported"):
        fk.metrics.AUC(multi_label=True)
    with pytest.raises(ValueError, match="Argument `num_thresholds` must be an integer > 1"):
        fk.metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="When class_id is provided, y_pred must be a 2D array"):
        fk.metrics.Recall(class_id=0).update_state(np.ones(3), np.ones(3))
