"""bias_add and bias_add_grad against NumPy and TensorFlow."""
import numpy as np
import pytest

import fastconv as fc


@pytest.mark.parametrize("shape, data_format, axis", [
    ((2, 5, 6, 7), None, 3), ((2, 5, 6, 7), "NHWC", 3), ((2, 7, 5, 6), "NCHW", 1),
    ((4, 9), None, 1), ((3, 4, 5), "N...C", 2), ((3, 4, 5), "NC...", 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_add_and_grad_match_numpy(shape, data_format, axis, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[axis]).astype(dtype)
    bshape = [1] * len(shape)
    bshape[axis] = -1
    expected = x + b.reshape(bshape)
    np.testing.assert_array_equal(fc.bias_add(x, b, data_format), expected)
    np.testing.assert_array_equal(fc.bias_add(x, b, data_format, relu=True), np.maximum(expected, 0))
    grad = fc.bias_add_grad(x, data_format)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, x.sum(axis=tuple(i for i in range(len(shape)) if i != axis)),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_bias_matches_tensorflow(tf):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 8, 9, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_array_equal(fc.bias_add(x, b), tf.nn.bias_add(x, b).numpy())
    tb = tf.Variable(b)
    with tf.GradientTape() as tape:
        y = tf.nn.bias_add(x, tb)
    np.testing.assert_allclose(fc.bias_add_grad(x), tape.gradient(y, tb, output_gradients=x).numpy(), rtol=1e-5)


def test_bias_grad_bitwise_identical_for_any_thread_count():
    x = np.random.default_rng(2).standard_normal((97, 13, 11, 33)).astype(np.float32)
    results = []
    for n in (1, 2, 7):
        fc.set_num_threads(n)
        results.append(fc.bias_add_grad(x))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_bias_keeps_nan_through_relu_and_promotes_dtypes():
    y = fc.bias_add(np.array([[np.nan, -1.0]]), np.array([0, 0]), relu=True)
    assert np.isnan(y[0, 0]) and y[0, 1] == 0
    assert fc.bias_add(np.ones((2, 3), np.float32), np.ones(3, np.float32)).dtype == np.float32
    assert fc.bias_add(np.ones((2, 3), int), np.ones(3, int)).dtype == np.float64


@pytest.mark.parametrize("call, error, message", [
    (lambda: fc.bias_add(np.ones((2, 3)), np.ones(4)), ValueError, r"bias has 4 entries but value has 3 channels"),
    (lambda: fc.bias_add(np.ones(3), np.ones(3)), ValueError, "value must have rank >= 2"),
    (lambda: fc.bias_add(np.ones((2, 3)), np.ones((3, 1))), ValueError, "bias must be 1-D"),
    (lambda: fc.bias_add(np.ones((2, 3)), np.ones(3), "HWCN"), ValueError, "data_format"),
    (lambda: fc.bias_add(np.ones((2, 3)), np.array(["a", "b", "c"])), TypeError, "bias must hold numbers"),
    (lambda: fc.bias_add_grad(np.ones(3)), ValueError, "out_backprop must have rank >= 2"),
])
def test_bias_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_relu_grad_matches_tensorflow_semantics():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((3, 50, 41, 7)).astype(np.float32)
    f = rng.standard_normal((3, 50, 41, 7)).astype(np.float32)
    g[0, 0, 0, 0] = np.nan
    f[0, 0, 0, 0] = -1.0
    f[0, 0, 0, 1] = np.nan
    expected = g * (f > 0)
    np.testing.assert_array_equal(fc.relu_grad(g, f), expected)
    assert np.isnan(fc.relu_grad(g, f)[0, 0, 0, 0])       # NaN * 0 stays NaN, as TensorFlow's ReluGrad
    assert fc.relu_grad(g, f)[0, 0, 0, 1] == 0            # a NaN feature is not positive
    assert fc.relu_grad(g.astype(np.float64), f).dtype == np.float64
    with pytest.raises(ValueError, match=r"gradients has shape \(2,\) but features has shape \(3,\)"):
        fc.relu_grad(np.ones(2), np.ones(3))


def test_relu_grad_matches_tensorflow(tf):
    from tensorflow.python.ops import gen_nn_ops

    rng = np.random.default_rng(4)
    g = rng.standard_normal((5, 9, 9, 3)).astype(np.float32)
    f = rng.standard_normal((5, 9, 9, 3)).astype(np.float32)
    np.testing.assert_array_equal(fc.relu_grad(g, f), gen_nn_ops.relu_grad(g, f).numpy())
