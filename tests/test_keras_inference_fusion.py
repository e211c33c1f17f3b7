"""fastconv.keras.inference.InferenceModel: BatchNormalization folded into the convolutions, the
activations into their epilogue, equal to the layer by layer predict within 1e-5 relative."""
import numpy as np
import pytest

from fastconv.keras import Input, Model, Sequential, layers
from _helpers import predict_layer_by_layer, randomise_batch_norms
from fastconv.keras.utils import set_random_seed
from fastconv.keras.inference import InferenceModel, _fold




def residual_model():
    """A ResNet block and a MobileNetV2 block: Conv-BN-ReLU, Conv-BN + shortcut -> Add -> ReLU,
    depthwise-BN-ReLU6, a BN after pooling (no convolution to fold into), a conv with its own ReLU."""
    x = Input((12, 12, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = layers.BatchNormalization(name="bn1")(y)
    y = layers.Activation("relu")(y)
    z = layers.Conv2D(8, 3, padding="same", name="c2")(y)
    z = layers.BatchNormalization(epsilon=1e-3, name="bn2")(z)
    shortcut = layers.Conv2D(8, 1, name="c3", use_bias=False)(y)
    shortcut = layers.BatchNormalization(center=False, name="bn3")(shortcut)
    y = layers.Add()([z, shortcut])
    y = layers.Activation("relu")(y)
    y = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False, depth_multiplier=2)(y)
    y = layers.BatchNormalization(scale=False)(y)
    y = layers.ReLU(6.0)(y)
    y = layers.MaxPooling2D()(y)
    y = layers.BatchNormalization()(y)
    y = layers.Conv2D(4, 1, activation="relu")(y)
    y = layers.GlobalAveragePooling2D()(y)
    return Model(x, layers.Dense(5)(y))


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def test_folded_model_equals_predict():
    # seeded initial weights: an unlucky draw made every output 0, and the relative error 0/0
    set_random_seed(0)
    rng = np.random.default_rng(0)
    model = residual_model()
    randomise_batch_norms(model, rng)
    frozen = InferenceModel(model)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 12, 12, 3)).astype(np.float32)
        assert relative_error(frozen(x), predict_layer_by_layer(model, x)) <= 1e-5


def test_every_chain_is_merged():
    model = residual_model()
    steps = _fold(model._graph_for((1, 12, 12, 3)))
    names = [type(s).__name__ for s in steps]
    # c1+bn1+relu, c3+bn3, then at the Add c2+bn2+add(c3's output)+relu, depthwise+bn+relu6, pool, bn,
    # conv(relu), gap, dense
    assert names == ["_ConvStep", "_ConvStep", "_ConvStep", "_DepthwiseStep", "_LayerStep",
                     "_AffineStep", "_ConvStep", "_LayerStep", "_DenseStep"]
    assert [getattr(s, "activation", None) for s in steps[:4]] == ["relu", None, "relu", "relu6"]
    assert [s.layer.name for s in steps[:3]] == ["c1", "c3", "c2"]
    assert steps[2].inputs == [steps[0].outputs[0], steps[1].outputs[0]]  # c2 reads y; the residual is c3's


def test_shared_output_is_not_folded():
    """A convolution whose output is read by the BN and by something else keeps its own output."""
    x = Input((6, 6, 2))
    c = layers.Conv2D(3, 3, padding="same")(x)
    bn = layers.BatchNormalization()(c)
    model = Model(x, layers.Add()([c, bn]))
    randomise_batch_norms(model, np.random.default_rng(1))
    steps = _fold(model._graph_for((1, 6, 6, 2)))
    assert [type(s).__name__ for s in steps] == ["_ConvStep", "_AffineStep", "_AddStep"]
    xs = np.random.default_rng(2).standard_normal((2, 6, 6, 2)).astype(np.float32)
    assert relative_error(InferenceModel(model)(xs), predict_layer_by_layer(model, xs)) <= 1e-5


def test_sequential_and_frozen_weights():
    model = Sequential([Input((8, 8, 2)), layers.Conv2D(4, 3), layers.BatchNormalization(), layers.ReLU(),
                        layers.Flatten(), layers.Dense(3)])
    randomise_batch_norms(model, np.random.default_rng(7))
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 2)).astype(np.float32)
    frozen = InferenceModel(model)
    before = predict_layer_by_layer(model, x)
    assert np.abs(before).max() > 0.1
    assert relative_error(frozen(x), before) <= 1e-5
    model.layers[0].kernel.assign(np.zeros(model.layers[0].kernel.shape, np.float32))
    # the weights were read when the InferenceModel was built
    assert relative_error(frozen(x), before) <= 1e-5
    assert relative_error(InferenceModel(model)(x), predict_layer_by_layer(model, x)) <= 1e-5


def test_non_finite_input_takes_the_fallback():
    """A NaN in the input: the Winograd kernel refuses, the fallback gives predict's answer."""
    x = Input((20, 20, 16))
    y = layers.Conv2D(16, 3, padding="same")(x)
    model = Model(x, layers.BatchNormalization()(y))
    randomise_batch_norms(model, np.random.default_rng(5))
    xs = np.random.default_rng(6).standard_normal((4, 20, 20, 16)).astype(np.float32)
    xs[0, 3, 4, 5] = np.nan
    got, want = InferenceModel(model)(xs), predict_layer_by_layer(model, xs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    assert relative_error(got[finite], want[finite]) <= 1e-5


def test_wrong_number_of_inputs():
    model = Sequential([Input((4, 4, 1)), layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="takes 1 inputs; received 2"):
        InferenceModel(model)([np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1))])


# ------------------------------------------------ predict runs through a frozen copy of the model
def test_predict_runs_the_frozen_copy_and_rebuilds_it_when_a_weight_changes():
    set_random_seed(0)
    rng = np.random.default_rng(0)
    model = residual_model()
    randomise_batch_norms(model, rng)
    x = rng.standard_normal((3, 12, 12, 3)).astype(np.float32)
    first = model.predict(x, verbose=0)
    assert np.abs(first).max() > 0.1
    frozen = model._frozen_inference()
    assert isinstance(frozen, InferenceModel)
    assert relative_error(first, predict_layer_by_layer(model, x)) <= 1e-5
    np.testing.assert_array_equal(model.predict_on_batch(x), first)
    assert model._frozen_inference() is frozen  # kept while no weight changes
    other = Sequential([Input((4,)), layers.Dense(2)])
    other.layers[0].kernel.assign(np.ones((4, 2), np.float32))
    assert model._frozen_inference() is frozen  # ... of this model
    # every way a weight changes gives predict the new weights
    changes = [
        lambda: model.get_layer("c1").kernel.assign(rng.standard_normal((3, 3, 3, 8)).astype(np.float32)),
        lambda: model.get_layer("bn2").moving_variance.assign(rng.uniform(0.5, 2, 8).astype(np.float32)),
        lambda: model.set_weights([w * 1.5 for w in model.get_weights()]),
        lambda: model.get_layer("bn1")(rng.standard_normal((4, 12, 12, 8)).astype(np.float32), training=True),
        lambda: model.fit(x, rng.standard_normal((3, 5)).astype(np.float32), epochs=1, verbose=0),
    ]
    model.compile("adam", "mse")
    previous = first
    for change in changes:
        change()
        got = model.predict_on_batch(x)
        assert np.abs(got - previous).max() > 1e-3 * np.abs(previous).max()
        assert relative_error(got, predict_layer_by_layer(model, x)) <= 1e-5
        previous = got


def test_weights_are_read_only_outside_their_updates():
    model = Sequential([Input((6, 6, 2)), layers.Conv2D(3, 3), layers.Flatten(), layers.Dense(2)])
    model.predict(np.ones((1, 6, 6, 2), np.float32), verbose=0)
    kernel = model.layers[0].kernel
    version = kernel.version
    # a write into the array would go unseen by the frozen copy: it is refused instead
    with pytest.raises(ValueError, match="read-only"):
        kernel.value[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(kernel)[...] = 0
    assert kernel.version == version
    kernel.assign_add(np.ones(kernel.shape, np.float32))
    assert kernel.version > version and not kernel.value.flags.writeable
    import copy
    import pickle
    for again in (copy.deepcopy(kernel), pickle.loads(pickle.dumps(kernel))):
        np.testing.assert_array_equal(again.value, kernel.value)
        assert not again.value.flags.writeable


def test_a_custom_initializers_array_stays_the_callers():
    mine = np.full((2, 2, 1, 1), 0.5, np.float32)
    model = Sequential([Input((4, 4, 1)), layers.Conv2D(1, 2, kernel_initializer=lambda shape, dtype=None: mine)])
    model.compile("sgd", "mse")
    model.fit(np.ones((2, 4, 4, 1), np.float32), np.zeros((2, 3, 3, 1), np.float32), verbose=0)
    np.testing.assert_array_equal(mine, 0.5)
    assert mine.flags.writeable
    assert not np.array_equal(model.layers[0].kernel.value, mine)


def test_predict_of_bad_input_says_what_the_layers_say():
    model = residual_model()
    with pytest.raises(ValueError, match=r'expected axis -1 of input shape to have value 3.*\n\(model "'):
        model.predict(np.zeros((2, 12, 12, 4), np.float32), verbose=0)
