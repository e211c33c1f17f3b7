"""depthwise_conv2d and its gradients.

Against the NumPy reference (random shapes, depth multipliers, strides, dilations, paddings,
dtypes, layouts), against central finite differences in float64, against TensorFlow's ops and
tf.GradientTape, one thread against two (bit for bit), and every validation branch.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import reference as ref
from _helpers import DTYPES, assert_close, tf_padding


@st.composite
def depthwise_problems(draw, max_size=11, max_channels=19, allow_dilation=True):
    """A random depthwise convolution whose filter fits: shapes, strides, dilations, padding."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    c, multiplier = draw(st.integers(1, max_channels)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if allow_dilation else (1, 1)
    padding = draw(st.one_of(
        st.sampled_from(["SAME", "VALID"]),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ))
    if padding != "SAME":  # make the filter fit the padded input
        pads = (0, 0, 0, 0) if padding == "VALID" else (*padding[0], *padding[1])
        h = max(h, (kh - 1) * dilations[0] + 1 - pads[0] - pads[1])
        w = max(w, (kw - 1) * dilations[1] + 1 - pads[2] - pads[3])
    return dict(x_shape=(n, h, w, c), w_shape=(kh, kw, c, multiplier), strides=strides, dilations=dilations,
                padding=padding)


def _arrays(problem, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem["x_shape"]).astype(dtype)
    w = rng.standard_normal(problem["w_shape"]).astype(dtype)
    y_shape = ref.depthwise_conv2d(x, w, problem["strides"], problem["padding"], problem["dilations"]).shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    return x, w, dy


def _nchw(a):
    return a.transpose(0, 3, 1, 2)


def _nhwc(a):
    return a.transpose(0, 2, 3, 1)


# -- against the NumPy reference ---------------------------------------------------------------------

@settings(max_examples=120, deadline=None)
@given(problem=depthwise_problems(), dtype=st.sampled_from(DTYPES), data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_matches_reference(problem, dtype, data_format):
    x, w, dy = _arrays(problem, dtype)
    s, p, d = problem["strides"], problem["padding"], problem["dilations"]
    y_ref = ref.depthwise_conv2d(x, w, s, p, d)
    dx_ref = ref.depthwise_conv2d_backprop_input(x.shape, w, dy, s, p, d)
    dw_ref = ref.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, p, d)
    to, back = (lambda a: a, lambda a: a) if data_format == "NHWC" else (_nchw, _nhwc)
    args = (list(s), tf_padding(p, data_format), data_format, list(d))
    y = fc.depthwise_conv2d(to(x), w, *args)
    dx = fc.depthwise_conv2d_backprop_input(to(x).shape, w, to(dy), *args)
    dw = fc.depthwise_conv2d_backprop_filter(to(x), w.shape, to(dy), *args)
    kh, kw = w.shape[:2]
    assert_close(back(y), y_ref, dtype, np.sqrt(kh * kw))
    assert_close(back(dx), dx_ref, dtype, np.sqrt(kh * kw * w.shape[3]))
    assert_close(dw, dw_ref, dtype, np.sqrt(dy.shape[0] * dy.shape[1] * dy.shape[2]))


@pytest.mark.parametrize("shape, kernel, multiplier, stride, padding", [
    ((2, 23, 29, 37), (3, 3), 1, 1, "SAME"),     # channels past whole vectors, tiles and their tails
    ((1, 30, 17, 24), (5, 5), 2, 2, "SAME"),
    ((3, 9, 40, 3), (3, 1), 3, (1, 3), "VALID"),
    ((2, 13, 11, 2), (2, 2), 1, 3, "VALID"),      # stride > kernel: rows and columns no output saw
    ((2, 6, 30, 9), (2, 11), 2, 1, "SAME"),       # more horizontal taps than a register tile
])
def test_larger_shapes(shape, kernel, multiplier, stride, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((*kernel, shape[3], multiplier)).astype(np.float32)
    s = (stride, stride) if isinstance(stride, int) else stride
    y = ref.depthwise_conv2d(x, w, s, padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert_close(fc.depthwise_conv2d(x, w, stride, padding), y, np.float32, 3)
    assert_close(fc.depthwise_conv2d_backprop_input(x.shape, w, dy, stride, padding),
                 ref.depthwise_conv2d_backprop_input(x.shape, w, dy, s, padding), np.float32, 5)
    assert_close(fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, stride, padding),
                 ref.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, padding), np.float32, np.sqrt(dy.size))


def test_bias_and_activations_fused():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 10, 13)) * 3
    w = rng.standard_normal((3, 3, 13, 2))
    b = rng.standard_normal(26)
    x[0, 4, 4, 5] = np.nan
    plain = fc.depthwise_conv2d(x, w, 1, "SAME")
    biased = fc.depthwise_conv2d(x, w, 1, "SAME", bias=b)
    np.testing.assert_array_equal(biased, fc.bias_add(plain, b))
    np.testing.assert_array_equal(fc.depthwise_conv2d(x, w, 1, "SAME", bias=b, activation="relu"),
                                  fc.nn.relu(biased))
    relu6 = fc.depthwise_conv2d(x, w, 1, "SAME", bias=b, activation="relu6")
    np.testing.assert_array_equal(relu6, np.where(np.isnan(biased), biased, np.clip(biased, 0, 6)))
    assert np.isnan(relu6).any() and (relu6 == 6).any() and (relu6 == 0).any()


def test_layouts_dtypes_and_out():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 12, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 6, 2)).astype(np.float32)
    y = fc.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME")
    strided = np.repeat(x, 2, axis=2)[:, :, ::2]           # not contiguous
    np.testing.assert_array_equal(fc.depthwise_conv2d(strided, w, [1, 2, 2, 1], "SAME"), y)
    nchw = fc.depthwise_conv2d(np.ascontiguousarray(_nchw(x)), w, [1, 1, 2, 2], "SAME", "NCHW")
    np.testing.assert_array_equal(_nhwc(nchw), y)
    assert fc.depthwise_conv2d(x.astype(np.float16), w.astype(np.float16), 1, "SAME").dtype == np.float16
    assert fc.depthwise_conv2d(x.astype(int), w.astype(int), 1, "SAME").dtype == np.float64
    assert fc.depthwise_conv2d(x, w.astype(np.float64), 1, "SAME").dtype == np.float64
    assert fc.nn.depthwise_conv2d is fc.depthwise_conv2d
    np.testing.assert_array_equal(fc.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME", data_format=None, name="dw"), y)
    out = np.empty(y.shape, np.float32)
    assert fc.depthwise_conv2d(x, w, 2, "SAME", out=out) is out
    np.testing.assert_array_equal(out, y)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    x0, w0, dy0 = x.copy(), w.copy(), dy.copy()
    out = np.empty((1, 6, 8, 12), np.float32)              # an NCHW destination
    assert fc.depthwise_conv2d_backprop_input((1, 6, 8, 12), w, _nchw(dy[:1]), 2, "SAME", "NCHW", out=out) is out
    np.testing.assert_array_equal(_nhwc(out), fc.depthwise_conv2d_backprop_input((8, 12), w, dy[:1], 2, "SAME"))
    out = np.empty(w.shape, np.float32)
    assert fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, 2, "SAME", out=out) is out
    np.testing.assert_array_equal(out, fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, 2, "SAME"))
    for a, a0 in ((x, x0), (w, w0), (dy, dy0)):
        np.testing.assert_array_equal(a, a0)


def test_empty_batch_and_channels():
    assert fc.depthwise_conv2d(np.ones((0, 5, 5, 3)), np.ones((3, 3, 3, 2)), 1, "SAME").shape == (0, 5, 5, 6)
    assert fc.depthwise_conv2d(np.ones((1, 5, 5, 0)), np.ones((3, 3, 0, 2)), 1, "SAME").shape == (1, 5, 5, 0)
    dw = fc.depthwise_conv2d_backprop_filter(np.ones((0, 5, 5, 3)), (3, 3, 3, 2), np.ones((0, 5, 5, 6)), 1, "SAME")
    np.testing.assert_array_equal(dw, np.zeros((3, 3, 3, 2)))


# -- finite differences (float64) ------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(problem=depthwise_problems(max_size=7, max_channels=5))
def test_gradients_match_finite_differences(problem):
    x, w, dy = _arrays(problem, np.float64, seed=3)
    s, p, d = list(problem["strides"]), tf_padding(problem["padding"]), list(problem["dilations"])

    def loss(xv, wv):
        return float(np.sum(fc.depthwise_conv2d(xv, wv, s, p, dilations=d) * dy))

    rng = np.random.default_rng(4)
    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    eps = 1e-6
    fd_x = (loss(x + eps * vx, w) - loss(x - eps * vx, w)) / (2 * eps)
    fd_w = (loss(x, w + eps * vw) - loss(x, w - eps * vw)) / (2 * eps)
    dx = fc.depthwise_conv2d_backprop_input(x.shape, w, dy, s, p, dilations=d)
    dw = fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, p, dilations=d)
    np.testing.assert_allclose(np.sum(dx * vx), fd_x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.sum(dw * vw), fd_w, rtol=1e-6, atol=1e-6)


# -- against TensorFlow ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(problem=depthwise_problems(allow_dilation=False), dtype=st.sampled_from(DTYPES))
def test_matches_tensorflow_and_gradient_tape(tf, problem, dtype):
    problem["strides"] = (problem["strides"][0],) * 2    # TensorFlow's kernels take equal strides only
    x, w, dy = _arrays(problem, dtype)
    s, p = [1, *problem["strides"], 1], tf_padding(problem["padding"])
    tx, tw = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([tx, tw])
        y_tf = tf.nn.depthwise_conv2d(tx, tw, s, p)
    dx_tf, dw_tf = tape.gradient(y_tf, [tx, tw], output_gradients=tf.constant(dy))
    kh, kw = w.shape[:2]
    assert_close(fc.depthwise_conv2d(x, w, s, p), y_tf.numpy().astype(np.float64), dtype, np.sqrt(kh * kw))
    assert_close(fc.depthwise_conv2d_backprop_input(x.shape, w, dy, s, p), dx_tf.numpy().astype(np.float64),
                 dtype, np.sqrt(kh * kw * w.shape[3]))
    assert_close(fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, p), dw_tf.numpy().astype(np.float64),
                 dtype, np.sqrt(dy.size))


def test_native_ops_and_dilations_match_tensorflow(tf):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12, 11, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 5, 3)).astype(np.float32)
    tx, tw = tf.constant(x), tf.constant(w)
    for strides, dilations, padding in (([1, 1, 1, 1], [2, 3], "SAME"), ([1, 2, 2, 1], [1, 1], "VALID"),
                                        ([1, 1, 1, 1], [2, 1], [[0, 0], [1, 2], [3, 0], [0, 0]])):
        with tf.GradientTape() as tape:
            tape.watch([tx, tw])
            y_tf = tf.nn.depthwise_conv2d(tx, tw, strides, padding, dilations=dilations)
        np.testing.assert_allclose(fc.depthwise_conv2d(x, w, strides, padding, dilations=dilations), y_tf.numpy(),
                                   rtol=1e-5, atol=1e-5)
        dy = rng.standard_normal(y_tf.shape).astype(np.float32)
        dx_tf, dw_tf = tape.gradient(y_tf, [tx, tw], output_gradients=tf.constant(dy))
        dx = fc.depthwise_conv2d_backprop_input(x.shape, w, dy, strides, padding, dilations=dilations)
        dw = fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, strides, padding, dilations=dilations)
        np.testing.assert_allclose(dx, dx_tf.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dw, dw_tf.numpy(), rtol=1e-4, atol=1e-4)
        if dilations == [1, 1]:
            # The native gradient ops of TensorFlow 2.21 ignore their dilations on the CPU (they
            # return the undilated gradient), so they are compared without dilations only.
            np.testing.assert_allclose(
                dx, tf.compat.v1.nn.depthwise_conv2d_native_backprop_input(x.shape, w, dy, strides, padding).numpy(),
                rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(
                dw, tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(x, w.shape, dy, strides, padding).numpy(),
                rtol=1e-4, atol=1e-4)


def test_non_finite_values_over_the_padding_as_tensorflow(tf):
    # TensorFlow multiplies the zero padding like any input: inf * 0 = NaN at the borders.
    x = np.ones((1, 4, 5, 2), np.float32)
    w = np.ones((3, 3, 2, 1), np.float32)
    w[0, 0, 1, 0] = np.inf
    np.testing.assert_array_equal(fc.depthwise_conv2d(x, w, 1, "SAME"),
                                  tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME").numpy())
    dy = np.ones((1, 4, 5, 2), np.float32)
    dy[0, 0, 0, 0] = np.inf
    np.testing.assert_array_equal(
        fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, 1, "SAME"),
        tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(x, w.shape, dy, [1, 1, 1, 1], "SAME").numpy())


# -- threads and bad input -------------------------------------------------------------------------

def test_bitwise_identical_for_one_and_two_threads():
    rng = np.random.default_rng(7)
    # odd sizes, large enough (> 2 x 2**21 multiply-adds per pass) for two threads to be used
    x = rng.standard_normal((3, 67, 71, 37)).astype(np.float32)
    w = rng.standard_normal((3, 3, 37, 2)).astype(np.float32)
    dy = rng.standard_normal((3, 34, 36, 74)).astype(np.float32)
    results = []
    for n in (1, 2):
        fc.set_num_threads(n)
        results.append((fc.depthwise_conv2d(x, w, 2, "SAME", bias=np.ones(74, np.float32), activation="relu6"),
                        fc.depthwise_conv2d_backprop_input(x.shape, w, dy, 2, "SAME"),
                        fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, 2, "SAME")))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


X, W = np.ones((1, 5, 5, 2)), np.ones((3, 3, 2, 2))


@pytest.mark.parametrize("call, error, message", [
    (lambda: fc.depthwise_conv2d(np.ones((5, 5, 2)), W, 1, "SAME"), ValueError,
     r"depthwise_conv2d: input must be 4-D \(NHWC\); received shape \(5, 5, 2\)"),
    (lambda: fc.depthwise_conv2d(X, np.ones((3, 3, 2)), 1, "SAME"), ValueError,
     r"filter must be 4-D \[filter_height, filter_width, in_channels, channel_multiplier\]"),
    (lambda: fc.depthwise_conv2d(X, np.ones((3, 3, 3, 1)), 1, "SAME"), ValueError,
     r"filter has 3 input channels but the input has 2 \(input shape \(1, 5, 5, 2\)"),
    (lambda: fc.depthwise_conv2d(X, np.ones((0, 3, 2, 1)), 1, "SAME"), ValueError,
     "filter height and width must be positive"),
    (lambda: fc.depthwise_conv2d(X, np.ones((7, 3, 2, 1)), 1, "VALID"), ValueError,
     r"the filter \(effective size 7x3 with dilations \(1, 1\)\) does not fit the padded input"),
    (lambda: fc.depthwise_conv2d(X, W, [1, 2, 2, 2], "SAME"), ValueError,
     "strides in the batch and channel dimensions must be 1"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "SAME", dilations=[0, 1]), ValueError, "dilations must be an int"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "FULL"), ValueError, "padding must be 'SAME', 'VALID' or explicit pairs"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "SAME", data_format="NCWH"), ValueError, "data_format must be"),
    (lambda: fc.depthwise_conv2d(X.astype(str), W, 1, "SAME"), TypeError, "input must hold numbers"),
    (lambda: fc.depthwise_conv2d(X.astype(np.complex64), W, 1, "SAME"), TypeError, "input must hold numbers"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "SAME", activation="tanh"), ValueError,
     "activation must be None, 'relu' or 'relu6'"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "SAME", bias=np.ones(2)), ValueError,
     r"bias must have shape \(4,\) \(in_channels \* channel_multiplier of filter \(3, 3, 2, 2\)\); "
     r"received shape \(2,\)"),
    (lambda: fc.depthwise_conv2d(X, W, 1, "SAME", out=np.empty((1, 5, 5, 2))), ValueError,
     r"out has shape \(1, 5, 5, 2\), the result has shape \(1, 5, 5, 4\)"),
    (lambda: fc.depthwise_conv2d_backprop_input((1, 5, 5, 2), W, np.ones((1, 4, 5, 4)), 1, "SAME"), ValueError,
     r"out_backprop has shape \(1, 4, 5, 4\), but depthwise_conv2d of an input of shape \(1, 5, 5, 2\).*gives "
     r"\(1, 5, 5, 4\)"),
    (lambda: fc.depthwise_conv2d_backprop_input((1, 5, 5), W, np.ones((1, 5, 5, 4)), 1, "SAME"), ValueError,
     "input_sizes must be .*2 or 4 non-negative ints"),
    (lambda: fc.depthwise_conv2d_backprop_input((1, 5, 5, 2), W, np.ones((5, 5, 4)), 1, "SAME"), ValueError,
     "out_backprop must be 4-D"),
    (lambda: fc.depthwise_conv2d_backprop_input((5, 5), np.ones((3, 3, 2)), np.ones((1, 5, 5, 4)), 1, "SAME"),
     ValueError, "depthwise_conv2d_backprop_input: filter must be 4-D"),
    (lambda: fc.depthwise_conv2d_backprop_filter(X, (3, 3, 2, 2), np.ones((1, 3, 3, 4)), 1, "SAME"), ValueError,
     r"depthwise_conv2d_backprop_filter: out_backprop has shape \(1, 3, 3, 4\).*gives \(1, 5, 5, 4\)"),
    (lambda: fc.depthwise_conv2d_backprop_filter(X, (3, 3, 2), np.ones((1, 5, 5, 4)), 1, "SAME"), ValueError,
     "filter_sizes must be .*4 non-negative ints"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_kernels_check_their_buffers():
    # The private kernels refuse buffers that disagree instead of reading or writing out of bounds.
    from fastconv import _depthwise as kernels
    x, y = np.ones((1, 5, 5, 3), np.float32), np.empty((1, 5, 5, 6), np.float32)
    w, geom = np.ones(54, np.float32), (3, 3, 1, 1, 1, 1, 1, 1)
    cases = [
        (lambda: kernels.forward(x, w[:53], None, y, geom, 2, 0, 1), "a filter of 53 values"),
        (lambda: kernels.forward(x, w, np.ones(5, np.float32), y, geom, 2, 0, 1), "a bias of 5"),
        (lambda: kernels.forward(x, w, None, y, geom, 3, 0, 1), "depth multiplier 3 do not match 6"),
        (lambda: kernels.forward(x, w, None, y, geom, 2, 0, 0), "must be positive"),
        (lambda: kernels.forward(x, w, None, y, (3, 3, 0, 1, 1, 1, 1, 1), 2, 0, 1), "must be positive"),
        (lambda: kernels.forward(x, w, None, y, geom[:7], 2, 0, 1), "geom must be"),
        (lambda: kernels.forward(x, w, None, np.empty((2, 5, 5, 6), np.float32), geom, 2, 0, 1), "batch of 1 inputs"),
        (lambda: kernels.backprop_input(np.ones((2, 5, 5, 6), np.float32), w, x.copy(), geom, 2, 1), "batch of 2"),
        (lambda: kernels.backprop_filter(x, y, np.empty((1, 54), np.float32), np.empty(53, np.float32), geom, 2, 1),
         "a filter of 53 values for partials of 54"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
