"""Transfer learning as Keras 3 does it, on fastconv.keras.applications: a frozen base (its
weights and BatchNormalization statistics do not move in fit), a new head, fine-tuning with part
of the base unfrozen, features extracted once with predict; trainable / non-trainable counts as
Keras's."""
import numpy as np
import pytest

import fastconv.keras as fk
from fastconv.keras import applications as A

SIZE = 32


def _data(n=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)
    return A.resnet50.preprocess_input(x), rng.integers(0, classes, n)


def _head_model(keras_module, base, classes=3):
    """Keras's guide: the base called with training=False (its BatchNormalization stays in
    inference mode even when unfrozen), a pooling and a new classifier."""
    inputs = keras_module.Input((SIZE, SIZE, 3))
    x = base(inputs, training=False)
    x = keras_module.layers.GlobalAveragePooling2D()(x)
    x = keras_module.layers.Dropout(0.2)(x)
    outputs = keras_module.layers.Dense(classes, activation="softmax")(x)
    return keras_module.Model(inputs, outputs)


def _counts(model):
    def size(weights):
        return int(sum(np.prod(w.shape) for w in weights))
    return size(model.trainable_weights), size(model.non_trainable_weights)


def _snapshot(model):
    return [np.array(w.numpy(), copy=True) for w in model.weights]


def test_frozen_base_does_not_move_and_head_learns():
    base = A.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    base.trainable = False
    model = _head_model(fk, base)
    model.compile(optimizer=fk.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before_base, before_head = _snapshot(base), [w.numpy() for w in model.layers[-1].weights]
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, w in zip(before_base, base.weights):
        np.testing.assert_array_equal(w.numpy(), a)  # kernels and BN moving statistics, bit for bit
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before_head, model.layers[-1].weights))


def test_fine_tuning_moves_only_the_unfrozen_layers():
    base = A.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    base.trainable = True
    for layer in base.layers[:-10]:
        layer.trainable = False
    model = _head_model(fk, base)
    model.compile(optimizer=fk.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy")
    frozen = {layer.name: _snapshot(layer) for layer in base.layers[:-10] if layer.weights}
    tuned = {layer.name: _snapshot(layer) for layer in base.layers[-10:] if layer.trainable_weights}
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for name, values in frozen.items():
        for a, w in zip(values, base.get_layer(name).weights):
            np.testing.assert_array_equal(w.numpy(), a)
    moved = [name for name, values in tuned.items()
             if any(not np.array_equal(a, w.numpy()) for a, w in zip(values, base.get_layer(name).trainable_weights))]
    assert moved
    # Called with training=False, the unfrozen BatchNormalization keeps its statistics.
    bn = [layer for layer in base.layers[-10:] if isinstance(layer, fk.layers.BatchNormalization)]
    assert bn
    for layer in bn:
        stats = [w for w in layer.weights if not w.trainable]
        np.testing.assert_array_equal(stats[0].numpy(), tuned[layer.name][2])


def test_features_extracted_once_then_a_classifier():
    base = A.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg")
    x, y = _data(n=16)
    features = base.predict(x, batch_size=8, verbose=0)
    assert features.shape == (16, 2048)
    classifier = fk.Sequential([fk.Input((2048,)), fk.layers.Dense(3, activation="softmax")])
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = classifier.fit(features, y, epochs=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("unfrozen", [0, 10])
def test_trainable_counts_match_keras(tf, unfrozen):
    """Frozen base, and its last 10 layers unfrozen: Keras's counts, and the
    summary's lines."""
    import keras
    counts = []
    lines = []
    for module, builder in ((keras, keras.applications.ResNet50), (fk, A.ResNet50)):
        base = builder(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
        base.trainable = unfrozen != 0
        if unfrozen:
            for layer in base.layers[:-unfrozen]:
                layer.trainable = False
        model = _head_model(module, base)
        counts.append(_counts(model))
        printed = []
        model.summary(print_fn=lambda line, *args, printed=printed, **kwargs: printed.append(line))
        lines.append([line.strip() for line in "\n".join(printed).splitlines() if "params" in line])
    assert counts[0] == counts[1]
    assert lines[0] == lines[1]
