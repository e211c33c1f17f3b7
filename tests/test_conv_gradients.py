"""Gradients of conv2d: backprop_input, backprop_filter, conv2d_transpose.

Against the NumPy reference (every argument form), against tf.GradientTape and TensorFlow's ops,
and against central finite differences of the forward conv2d in float64.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import reference as ref
from _helpers import DTYPES, assert_close, conv_problems, tf_padding

ALGORITHMS = ("direct", "im2col")


def _problem_arrays(problem, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem["x_shape"]).astype(dtype)
    w = rng.standard_normal(problem["w_shape"]).astype(dtype)
    y_shape = ref.conv2d(x[:, :, :, :0], w[:, :, :0, :], problem["strides"], problem["padding"],
                         problem["dilations"]).shape
    dy = rng.standard_normal(y_shape).astype(dtype)
    return x, w, dy


@settings(max_examples=120, deadline=None)
@given(problem=conv_problems(), dtype=st.sampled_from(DTYPES), algorithm=st.sampled_from(ALGORITHMS),
       data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_gradients_match_reference(problem, dtype, algorithm, data_format):
    x, w, dy = _problem_arrays(problem, dtype)
    s, p, d = problem["strides"], problem["padding"], problem["dilations"]
    dx_ref = ref.conv2d_backprop_input(x.shape, w, dy, s, p, d)
    dw_ref = ref.conv2d_backprop_filter(x, w.shape, dy, s, p, d)
    to = (lambda a: a) if data_format == "NHWC" else (lambda a: a.transpose(0, 3, 1, 2))
    back = (lambda a: a) if data_format == "NHWC" else (lambda a: a.transpose(0, 2, 3, 1))
    x_shape = x.shape if data_format == "NHWC" else to(x).shape
    dx = fc.conv2d_backprop_input(x_shape, w, to(dy), list(s), tf_padding(p, data_format), data_format,
                                  list(d), algorithm=algorithm)
    dw = fc.conv2d_backprop_filter(to(x), w.shape, to(dy), list(s), tf_padding(p, data_format), data_format,
                                   list(d), algorithm=algorithm)
    magnitude = np.sqrt(dy.shape[1] * dy.shape[2] * dy.shape[0] * w.shape[3])
    assert_close(back(dx), dx_ref, dtype, magnitude)
    assert_close(dw, dw_ref, dtype, magnitude)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 31, 37, 3), (3, 5, 40), 1, "SAME"),
    ((1, 23, 29, 24), (3, 3, 7), 2, "SAME"),
    ((3, 16, 16, 17), (1, 1, 33), 1, "VALID"),
    ((1, 40, 12, 20), (7, 2, 9), 3, "VALID"),
    ((2, 13, 11, 2), (2, 2, 3), 3, "VALID"),      # stride > kernel: rows and columns no output saw
])
def test_gradients_larger_shapes(shape, kernel, stride, padding, algorithm):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((kernel[0], kernel[1], shape[3], kernel[2])).astype(np.float32)
    y = ref.conv2d(x, w, (stride, stride), padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = fc.conv2d_backprop_input(x.shape, w, dy, stride, padding, algorithm=algorithm)
    dw = fc.conv2d_backprop_filter(x, w.shape, dy, stride, padding, algorithm=algorithm)
    magnitude = np.sqrt(y.size)
    assert_close(dx, ref.conv2d_backprop_input(x.shape, w, dy, (stride, stride), padding), np.float32, magnitude)
    assert_close(dw, ref.conv2d_backprop_filter(x, w.shape, dy, (stride, stride), padding), np.float32, magnitude)


def test_unseen_rows_get_zero_gradient():
    x_shape = (1, 7, 7, 1)
    w = np.ones((2, 2, 1, 1))
    dy = np.ones((1, 2, 2, 1))  # VALID, stride 3: rows/cols 2, 5, 6 are never read
    for algorithm in ALGORITHMS:
        dx = fc.conv2d_backprop_input(x_shape, w, dy, 3, "VALID", algorithm=algorithm)[0, :, :, 0]
        seen = np.zeros((7, 7))
        seen[np.ix_([0, 1, 3, 4], [0, 1, 3, 4])] = 1
        np.testing.assert_array_equal(dx, seen)


# -- finite differences (float64) ------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(problem=conv_problems(max_size=6, max_channels=4))
def test_gradients_match_finite_differences(problem):
    x, w, dy = _problem_arrays(problem, np.float64, seed=3)
    s, p, d = list(problem["strides"]), tf_padding(problem["padding"]), list(problem["dilations"])

    def loss(xv, wv):
        return float(np.sum(fc.conv2d(xv, wv, s, p, dilations=d) * dy))

    rng = np.random.default_rng(4)
    vx = rng.standard_normal(x.shape)
    vw = rng.standard_normal(w.shape)
    eps = 1e-6
    fd_x = (loss(x + eps * vx, w) - loss(x - eps * vx, w)) / (2 * eps)
    fd_w = (loss(x, w + eps * vw) - loss(x, w - eps * vw)) / (2 * eps)
    for algorithm in ALGORITHMS:
        dx = fc.conv2d_backprop_input(x.shape, w, dy, s, p, dilations=d, algorithm=algorithm)
        dw = fc.conv2d_backprop_filter(x, w.shape, dy, s, p, dilations=d, algorithm=algorithm)
        np.testing.assert_allclose(np.sum(dx * vx), fd_x, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.sum(dw * vw), fd_w, rtol=1e-6, atol=1e-6)


# -- against TensorFlow ------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(problem=conv_problems(allow_dilation=False), dtype=st.sampled_from(DTYPES),
       algorithm=st.sampled_from(ALGORITHMS))
def test_gradients_match_tensorflow_gradient_tape(tf, problem, dtype, algorithm):
    x, w, dy = _problem_arrays(problem, dtype)
    s, p = list(problem["strides"]), tf_padding(problem["padding"])
    tx, tw = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([tx, tw])
        y = tf.nn.conv2d(tx, tw, s, p)
    dx_tf, dw_tf = tape.gradient(y, [tx, tw], output_gradients=tf.constant(dy))
    dx = fc.conv2d_backprop_input(x.shape, w, dy, s, p, algorithm=algorithm)
    dw = fc.conv2d_backprop_filter(x, w.shape, dy, s, p, algorithm=algorithm)
    magnitude = np.sqrt(dy.size)
    assert_close(dx, dx_tf.numpy().astype(np.float64), dtype, magnitude)
    assert_close(dw, dw_tf.numpy().astype(np.float64), dtype, magnitude)


def test_backprop_ops_match_tensorflow_ops(tf):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 10, 9, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 6)).astype(np.float32)
    dy = rng.standard_normal((2, 5, 5, 6)).astype(np.float32)
    dx_tf = tf.compat.v1.nn.conv2d_backprop_input([2, 10, 9, 4], w, dy, [1, 2, 2, 1], "SAME").numpy()
    dw_tf = tf.compat.v1.nn.conv2d_backprop_filter(x, [3, 2, 4, 6], dy, [1, 2, 2, 1], "SAME").numpy()
    np.testing.assert_allclose(fc.conv2d_backprop_input([2, 10, 9, 4], w, dy, [1, 2, 2, 1], "SAME"), dx_tf,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fc.conv2d_backprop_filter(x, [3, 2, 4, 6], dy, [1, 2, 2, 1], "SAME"), dw_tf,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("output_shape, strides, padding", [
    ((2, 10, 9, 3), 2, "SAME"),
    ((2, 11, 11, 3), 3, "VALID"),
    ((1, 8, 8, 3), 1, "SAME"),
])
def test_conv2d_transpose_matches_tensorflow(tf, output_shape, strides, padding):
    rng = np.random.default_rng(6)
    w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)   # [h, w, out_channels, in_channels]
    in_shape = fc.conv2d(np.zeros(output_shape, np.float32), w, strides, padding).shape
    x = rng.standard_normal(in_shape).astype(np.float32)
    expected = tf.nn.conv2d_transpose(x, w, output_shape, strides, padding).numpy()
    for algorithm in ALGORITHMS:
        np.testing.assert_allclose(fc.conv2d_transpose(x, w, output_shape, strides, padding, algorithm=algorithm),
                                   expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fc.conv2d_transpose(x, w, output_shape[1:3], strides, padding), expected,
                               rtol=1e-4, atol=1e-4)


# -- threads, dtypes, bad input --------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_gradients_bitwise_identical_for_any_thread_count(algorithm):
    rng = np.random.default_rng(7)
    # large enough (15 M multiply-adds) for every thread count below to be used
    x = rng.standard_normal((5, 67, 71, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 33)).astype(np.float32)
    dy = rng.standard_normal((5, 34, 36, 33)).astype(np.float32)
    results = []
    for n in (1, 2, 3, 8):
        fc.set_num_threads(n)
        results.append((fc.conv2d_backprop_input(x.shape, w, dy, 2, "SAME", algorithm=algorithm),
                        fc.conv2d_backprop_filter(x, w.shape, dy, 2, "SAME", algorithm=algorithm)))
    for dx, dw in results[1:]:
        np.testing.assert_array_equal(dx, results[0][0])
        np.testing.assert_array_equal(dw, results[0][1])


def test_gradient_dtypes_and_out():
    x = np.ones((1, 4, 4, 2), np.float32)
    w = np.ones((3, 3, 2, 3), np.float32)
    dy = np.ones((1, 4, 4, 3), np.float32)
    assert fc.conv2d_backprop_input(x.shape, w, dy, 1, "SAME").dtype == np.float32
    assert fc.conv2d_backprop_input(x.shape, w, dy.astype(int), 1, "SAME").dtype == np.float64
    assert fc.conv2d_backprop_filter(x, w.shape, dy.astype(np.float64), 1, "SAME").dtype == np.float64
    out = np.empty((3, 3, 2, 3), np.float32)
    assert fc.conv2d_backprop_filter(x, w.shape, dy, 1, "SAME", out=out) is out
    np.testing.assert_array_equal(out, fc.conv2d_backprop_filter(x, w.shape, dy, 1, "SAME"))
    out = np.empty(x.shape, np.float32)
    assert fc.conv2d_backprop_input(x.shape, w, dy, 1, "SAME", out=out) is out
    x0, w0, dy0 = x.copy(), w.copy(), dy.copy()
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(dy, dy0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: fc.conv2d_backprop_input((1, 5, 5, 2), np.ones((3, 3, 2, 4)), np.ones((1, 4, 5, 4)), 1, "SAME"),
     ValueError, r"out_backprop has shape \(1, 4, 5, 4\), but conv2d of an input of shape \(1, 5, 5, 2\).*gives \(1, 5, 5, 4\)"),
    (lambda: fc.conv2d_backprop_input((1, 5, 5), np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4)), 1, "SAME"),
     ValueError, "input_sizes must be 2 or 4 non-negative ints"),
    (lambda: fc.conv2d_backprop_input((1, 5, 5, 3), np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4)), 1, "SAME"),
     ValueError, "filters have 2 input channels but the input has 3"),
    (lambda: fc.conv2d_backprop_input((1, 5.5, 5, 2), np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4)), 1, "SAME"),
     TypeError, "input_sizes must be a list of ints"),
    (lambda: fc.conv2d_backprop_input((1, 5, 5, 2), np.ones((3, 3, 2, 4)), np.ones((5, 5, 4)), 1, "SAME"),
     ValueError, "out_backprop must be 4-D"),
    (lambda: fc.conv2d_backprop_filter(np.ones((1, 5, 5, 2)), (3, 3, 2, 4), np.ones((1, 3, 3, 4)), 1, "SAME"),
     ValueError, r"out_backprop has shape \(1, 3, 3, 4\).*gives \(1, 5, 5, 4\)"),
    (lambda: fc.conv2d_backprop_filter(np.ones((1, 5, 5, 2)), (3, 3, 2), np.ones((1, 5, 5, 4)), 1, "SAME"),
     ValueError, "filter_sizes must be 4 non-negative ints"),
    (lambda: fc.conv2d_backprop_filter(np.ones((1, 5, 5, 2)), (3, 3, 2, 4), np.ones((1, 5, 5, 4)), 1, "SAME",
                                       algorithm="fft"), ValueError, "algorithm must be one of"),
    (lambda: fc.conv2d_transpose(np.ones((1, 3, 3, 4)), np.ones((3, 3, 2, 4)), (1, 7, 7, 2), 2, "SAME"),
     ValueError, r"conv2d_transpose: input has shape \(1, 3, 3, 4\), but conv2d of an input of shape \(1, 7, 7, 2\)"),
    (lambda: fc.conv2d_transpose(np.ones((1, 4, 4, 4)), np.ones((3, 3, 2, 5)), (1, 7, 7, 2), 2, "SAME"),
     ValueError, r"conv2d_transpose: input has shape \(1, 4, 4, 4\).*gives \(1, 4, 4, 5\)"),
    (lambda: fc.conv2d_backprop_input((1, 5, 5, 2), np.ones((3, 3, 2, 4)), np.ones((1, 5, 5, 4)), 0, "SAME"),
     ValueError, "strides"),
])
def test_gradient_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
