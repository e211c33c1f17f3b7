"""fastconv.keras.inference.InferenceModel: the buffers kept between calls and handed from tensor to
tensor, and the residual Add in the convolution's epilogue, against the layer by layer predict."""
import threading

import numpy as np

from fastconv.keras import Input, Model, layers
from _helpers import predict_layer_by_layer, randomise_batch_norms
from fastconv.keras.inference import InferenceModel, _fold


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))




def residual_net():
    """Two ResNet-like blocks: the first block's output is read by the second block's convolution
    and by its Add (a residual written over once nothing reads it), a Reshape (a view) in between."""
    x = Input((8, 8, 16))
    a = layers.Conv2D(16, 1, name="a")(x)
    b = layers.BatchNormalization(name="bn_b")(layers.Conv2D(16, 1, name="b")(a))
    s = layers.Activation("relu")(layers.Add(name="add1")([b, a]))
    r = layers.Reshape((8, 8, 16), name="view")(s)                     # a layer step: its output may be a view
    c = layers.BatchNormalization(name="bn_c")(layers.Conv2D(16, 3, padding="same", name="c")(r))
    t = layers.Activation("relu")(layers.Add(name="add2")([s, c]))
    u = layers.Conv2D(16, 1, name="u")(t)
    v = layers.Add(name="add3")([u, a])                   # `a` is read long after its first Add
    return Model(x, [v, layers.Reshape((8 * 8 * 16,), name="flat")(t)])


def test_repeated_calls_match_predict_and_own_their_results():
    rng = np.random.default_rng(0)
    model = residual_net()
    randomise_batch_norms(model, rng, affine=False)
    frozen = InferenceModel(model)
    xs = [rng.standard_normal((2, 8, 8, 16)).astype(np.float32) for _ in range(3)]
    kept = [np.copy(x) for x in xs]
    results = [frozen(x) for x in xs]
    for x, x0, (v, t) in zip(xs, kept, results):
        np.testing.assert_array_equal(x, x0)  # the input is never written (not even as a residual)
        ev, et = predict_layer_by_layer(model, x)
        assert relative_error(v, ev) <= 1e-5 and relative_error(t, et) <= 1e-5
    # results of earlier calls are not buffers that later calls wrote over
    again = frozen(xs[0])
    np.testing.assert_array_equal(again[0], results[0][0])
    np.testing.assert_array_equal(again[1], results[0][1])
    results[1][0][...] = 0  # writing into a result changes nothing for the next call
    np.testing.assert_array_equal(frozen(xs[1])[0], frozen(xs[1])[0])
    assert not np.shares_memory(again[0], frozen(xs[0])[0])


def test_the_adds_fold_into_the_convolutions():
    steps = _fold(residual_net()._graph_for((2, 8, 8, 16)))
    names = [(type(s).__name__, s.layer.name, len(s.inputs)) for s in steps]
    # a, b+bn_b+add1(+a)+relu, the reshape, c+bn_c+add2(+s)+relu, u+add3(+a), the output reshape
    assert names == [("_ConvStep", "a", 1), ("_ConvStep", "b", 2), ("_LayerStep", "view", 1),
                     ("_ConvStep", "c", 2), ("_ConvStep", "u", 2), ("_LayerStep", "flat", 1)]


def test_winograd_layers_add_their_residual_after_the_kernel():
    """A 3x3 layer wide enough for Winograd (no accumulating epilogue) adds the residual itself."""
    rng = np.random.default_rng(1)
    x = Input((32, 32, 16))
    y = layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same")(x))
    model = Model(x, layers.ReLU()(layers.Add()([y, x])))
    randomise_batch_norms(model, rng, affine=False)
    frozen = InferenceModel(model)
    xs = rng.standard_normal((1, 32, 32, 16)).astype(np.float32)
    step = _fold(model._graph_for(xs.shape))[0]
    assert len(step.inputs) == 2 and step._plan(xs)[0].algorithm == "winograd"
    assert relative_error(frozen(xs), predict_layer_by_layer(model, xs)) <= 1e-5


def test_threads_have_their_own_buffers():
    rng = np.random.default_rng(2)
    model = residual_net()
    frozen = InferenceModel(model)
    xs = [rng.standard_normal((2, 8, 8, 16)).astype(np.float32) for _ in range(4)]
    expected = [predict_layer_by_layer(model, x)[0] for x in xs]
    errors = []

    def work(i):
        for _ in range(5):
            if relative_error(frozen(xs[i])[0], expected[i]) > 1e-5:
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_zero_padding_folds_into_a_valid_convolution_or_fills_a_reused_buffer():
    """ResNet50's stem: ZeroPadding2D -> Conv2D 'valid' becomes one padded convolution; before a
    pooling layer the padding writes its zeros into a buffer that an earlier tensor left dirty."""
    rng = np.random.default_rng(4)
    x = Input((8, 8, 4))
    c0 = layers.Conv2D(4, 1, name="c0")(x)                              # 8x8x4, free after c1
    c1 = layers.Conv2D(4, 3, name="c1")(c0)                             # 6x6x4
    p1 = layers.ZeroPadding2D(1, name="p1")(c1)                         # 8x8x4 again: c0's buffer
    pooled = layers.MaxPooling2D(2, name="pool")(p1)
    p2 = layers.ZeroPadding2D(((1, 2), (0, 3)), name="p2")(pooled)
    y = layers.Conv2D(5, 3, strides=2, name="c2")(p2)
    model = Model(x, [y, layers.Flatten(name="flat")(pooled)])
    steps = _fold(model._graph_for((2, 8, 8, 4)))
    assert [(type(s).__name__, s.layer.name) for s in steps] == [
        ("_ConvStep", "c0"), ("_ConvStep", "c1"), ("_PadStep", "p1"), ("_LayerStep", "pool"), ("_ConvStep", "c2"),
        ("_LayerStep", "flat")]
    assert steps[4].padding == [[0, 0], [1, 2], [0, 3], [0, 0]]
    frozen = InferenceModel(model)
    for _ in range(2):
        xs = rng.standard_normal((2, 8, 8, 4)).astype(np.float32) - 3  # negative: zeros win the max at the edge
        for got, expected in zip(frozen(xs), predict_layer_by_layer(model, xs)):
            assert relative_error(got, expected) <= 1e-5


def test_dense_and_padded_depthwise_steps_match_predict():
    """Dense layers run as 1x1 convolutions of their rows (ReLU in the epilogue, softmax after);
    a ZeroPadding2D before a 'valid' DepthwiseConv2D becomes its padding (MobileNetV2's strided blocks)."""
    rng = np.random.default_rng(6)
    x = Input((9, 9, 6))
    d = layers.DepthwiseConv2D(3, strides=2, name="dw")(layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x))
    d = layers.ReLU(6.0)(layers.BatchNormalization(name="bn")(d))
    h = layers.Dense(7, activation="relu", name="d1")(layers.Reshape((4 * 4, 6))(d))   # 3-D: a row per pixel
    h = layers.Dense(5, name="d2")(layers.Flatten()(h))
    model = Model(x, [h, layers.Dense(4, activation="softmax", use_bias=False, name="d3")(h)])
    randomise_batch_norms(model, rng, affine=False)
    steps = _fold(model._graph_for((3, 9, 9, 6)))
    kinds = [type(s).__name__ for s in steps]
    assert kinds == ["_DepthwiseStep", "_LayerStep", "_DenseStep", "_LayerStep", "_DenseStep", "_DenseStep"]
    assert steps[0].padding == [[0, 0], [0, 1], [0, 1], [0, 0]] and steps[0].activation == "relu6"
    frozen = InferenceModel(model)
    for batch in (3, 1):
        xs = rng.standard_normal((batch, 9, 9, 6)).astype(np.float32)
        for got, expected in zip(frozen(xs), predict_layer_by_layer(model, xs)):
            assert got.shape == expected.shape
            assert relative_error(got, expected) <= 1e-5


def test_relu6_after_a_convolution_clamps_in_the_kernel():
    """MobileNetV2's expansions: Conv2D -> BatchNormalization -> ReLU6, with outputs past 6."""
    rng = np.random.default_rng(8)
    x = Input((6, 6, 8))
    y = layers.ReLU(6.0)(layers.BatchNormalization(name="bn")(layers.Conv2D(24, 1, name="expand")(x)))
    y = layers.ReLU(6.0)(layers.BatchNormalization(name="bn2")(layers.Conv2D(16, 3, name="c3")(y)))
    model = Model(x, y)
    randomise_batch_norms(model, rng, affine=False)
    for name in ("expand", "c3"):   # weights of the test's own seed, large enough to pass 6 surely
        kernel = model.get_layer(name).kernel
        kernel.assign(rng.standard_normal(kernel.shape).astype(np.float32))
    xs = 4 * rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    expected = predict_layer_by_layer(model, xs)
    assert expected.max() == 6 and expected.min() == 0
    steps = _fold(model._graph_for(xs.shape))
    assert [(s.layer.name, s.activation) for s in steps] == [("expand", "relu6"), ("c3", "relu6")]
    assert relative_error(InferenceModel(model)(xs), expected) <= 1e-5
