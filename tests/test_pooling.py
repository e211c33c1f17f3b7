"""Max and average pooling and their gradients: reference, TensorFlow, ties, NaN, finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import reference as ref
from _helpers import DTYPES, assert_close


@st.composite
def pool_problems(draw, allow_explicit=False):
    n = draw(st.integers(1, 3))
    h, w, c = draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 20))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    choices = [st.sampled_from(["SAME", "VALID"])]
    if allow_explicit:
        choices.append(st.tuples(st.tuples(st.integers(0, kh - 1), st.integers(0, kh - 1)),
                                 st.tuples(st.integers(0, kw - 1), st.integers(0, kw - 1))))
    padding = draw(st.one_of(*choices))
    if padding == "VALID":
        h, w = max(h, kh), max(w, kw)
    elif padding != "SAME":  # the window must fit the padded input
        h, w = max(h, kh - sum(padding[0])), max(w, kw - sum(padding[1]))
    return dict(shape=(n, h, w, c), ksize=(kh, kw), strides=(sh, sw), padding=padding)


def tie_free(shape, seed=0):
    """A shuffled arange scaled to [-1, 1]: no two elements equal, so no window has a tie."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) / max(size - 1, 1)) * 2 - 1


def _tf_pad(padding):
    return padding if isinstance(padding, str) else [[0, 0], list(padding[0]), list(padding[1]), [0, 0]]


@settings(max_examples=120, deadline=None)
@given(problem=pool_problems(allow_explicit=True), dtype=st.sampled_from(DTYPES), ties=st.booleans(),
       data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_max_pool_and_gradient_match_reference(problem, dtype, ties, data_format):
    x = tie_free(problem["shape"]).astype(dtype)
    if ties:
        x = np.round(x * 2) / 2  # few distinct values: many ties, first one must win
    k, s, p = problem["ksize"], problem["strides"], problem["padding"]
    y_ref = ref.max_pool2d(x, k, s, p)
    dy = np.random.default_rng(1).standard_normal(y_ref.shape).astype(dtype)
    dx_ref = ref.max_pool2d_grad(x, dy, k, s, p)
    to = (lambda a: a) if data_format == "NHWC" else (lambda a: a.transpose(0, 3, 1, 2))
    pad = _tf_pad(p) if data_format == "NHWC" or isinstance(p, str) else [[0, 0], [0, 0], list(p[0]), list(p[1])]
    y = fc.max_pool2d(to(x), list(k), list(s), pad, data_format)
    dx = fc.max_pool2d_grad(to(x), y, to(dy), list(k), list(s), pad, data_format)
    assert_close(y, to(y_ref), dtype)
    assert_close(dx, to(dx_ref), dtype, magnitude=4)


@settings(max_examples=120, deadline=None)
@given(problem=pool_problems(), dtype=st.sampled_from(DTYPES), data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_avg_pool_and_gradient_match_reference(problem, dtype, data_format):
    x = tie_free(problem["shape"]).astype(dtype)
    k, s, p = problem["ksize"], problem["strides"], problem["padding"]
    y_ref = ref.avg_pool2d(x, k, s, p)
    dy = np.random.default_rng(2).standard_normal(y_ref.shape).astype(dtype)
    dx_ref = ref.avg_pool2d_grad(x.shape, dy, k, s, p)
    to = (lambda a: a) if data_format == "NHWC" else (lambda a: a.transpose(0, 3, 1, 2))
    y = fc.avg_pool2d(to(x), list(k), list(s), p, data_format)
    dx = fc.avg_pool2d_grad(to(x).shape, to(dy), list(k), list(s), p, data_format)
    assert_close(y, to(y_ref), dtype)
    assert_close(dx, to(dx_ref), dtype, magnitude=4)


@settings(max_examples=60, deadline=None)
@given(problem=pool_problems(), dtype=st.sampled_from(DTYPES), ties=st.booleans())
def test_pooling_matches_tensorflow(tf, problem, dtype, ties):
    from tensorflow.python.ops import gen_nn_ops

    x = tie_free(problem["shape"]).astype(dtype)
    if ties:
        x = np.round(x * 2) / 2
    k, s, p = list(problem["ksize"]), list(problem["strides"]), problem["padding"]
    tx = tf.constant(x)
    y_tf = tf.nn.max_pool2d(tx, k, s, p)
    dy = np.random.default_rng(3).standard_normal(y_tf.shape).astype(dtype)
    np.testing.assert_array_equal(fc.max_pool2d(x, k, s, p), y_tf.numpy())
    dx_tf = gen_nn_ops.max_pool_grad(tx, y_tf, dy, [1, *k, 1], [1, *s, 1], p).numpy()
    assert_close(fc.max_pool2d_grad(x, y_tf.numpy(), dy, k, s, p), dx_tf.astype(np.float64), dtype, 4)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        y_avg = tf.nn.avg_pool2d(tx, k, s, p)
    davg_tf = tape.gradient(y_avg, tx, output_gradients=tf.constant(dy))
    assert_close(fc.avg_pool2d(x, k, s, p), y_avg.numpy().astype(np.float64), dtype)
    assert_close(fc.avg_pool2d_grad(x.shape, dy, k, s, p), davg_tf.numpy().astype(np.float64), dtype, 4)
    y_arg, arg_tf = tf.nn.max_pool_with_argmax(tx, k, s, p)
    y_fc, arg_fc = fc.max_pool_with_argmax(x, k, s, p)
    np.testing.assert_array_equal(arg_fc, arg_tf.numpy())
    np.testing.assert_array_equal(y_fc, y_arg.numpy())


def test_max_pool_semantics_of_tensorflow():
    # NaN is ignored; an all-NaN or all -inf window gives the lowest finite float and its gradient
    # goes to the window's first element; ties go to the first maximum in row-major order.
    x = np.array([[[1, np.nan], [0, 2]], [[np.nan, np.nan], [np.nan, np.nan]],
                  [[-np.inf, -np.inf], [-np.inf, -np.inf]], [[1, 3], [3, 2]]], np.float32)[..., None]
    y = fc.max_pool2d(x, 2, 2, "VALID")
    np.testing.assert_array_equal(y.ravel(), [2, np.finfo(np.float32).min, np.finfo(np.float32).min, 3])
    dx = fc.max_pool2d_grad(x, y, np.ones_like(y), 2, 2, "VALID")
    np.testing.assert_array_equal(dx.reshape(4, 4), [[0, 0, 0, 1], [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    # average pooling SAME divides by the real elements of each window
    a = fc.avg_pool2d(np.arange(9.0).reshape(1, 3, 3, 1), 2, 2, "SAME")
    np.testing.assert_array_equal(a.ravel(), [2, 3.5, 6.5, 8])


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 5  # the maximum of all four 2x2 windows of stride 1
    dx = fc.max_pool2d_grad(x, fc.max_pool2d(x, 2, 1, "VALID"), np.ones((1, 2, 2, 1)), 2, 1, "VALID")
    assert dx[0, 1, 1, 0] == 4 and dx.sum() == 4


@pytest.mark.parametrize("include_batch_in_index", [False, True])
def test_argmax_path_agrees_with_max_pool_grad(include_batch_in_index):
    x = tie_free((3, 9, 11, 5))
    y, argmax = fc.max_pool_with_argmax(x, 3, 2, "SAME", include_batch_in_index=include_batch_in_index)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    np.testing.assert_array_equal(y, fc.max_pool2d(x, 3, 2, "SAME"))
    fast = fc.max_pool2d_grad_with_argmax(x.shape, dy, argmax, 3, 2, "SAME",
                                          include_batch_in_index=include_batch_in_index)
    np.testing.assert_array_equal(fast, fc.max_pool2d_grad(x, y, dy, 3, 2, "SAME"))
    assert fc.max_pool_with_argmax(x, 3, 2, "SAME", output_dtype=np.int32)[1].dtype == np.int32


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradients_match_finite_differences(kind):
    x = tie_free((2, 7, 8, 3), seed=5) * 10  # distinct by 10/335 >> eps: no window changes its argmax
    dy = np.random.default_rng(6).standard_normal(fc.max_pool2d(x, 3, 2, "SAME").shape)
    forward = fc.max_pool2d if kind == "max" else fc.avg_pool2d
    loss = lambda xv: float(np.sum(forward(xv, 3, 2, "SAME") * dy))  # noqa: E731
    if kind == "max":
        dx = fc.max_pool2d_grad(x, forward(x, 3, 2, "SAME"), dy, 3, 2, "SAME")
    else:
        dx = fc.avg_pool2d_grad(x.shape, dy, 3, 2, "SAME")
    rng = np.random.default_rng(7)
    for _ in range(5):
        v = rng.standard_normal(x.shape)
        eps = 1e-6
        fd = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(np.sum(dx * v), fd, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_bitwise_identical_for_any_thread_count(kind):
    x = tie_free((4, 97, 101, 33)).astype(np.float32)  # 1.3 M elements: every thread count is used
    results = []
    for n in (1, 2, 5):
        fc.set_num_threads(n)
        if kind == "max":
            y = fc.max_pool2d(x, 3, 2, "SAME")
            results.append((y, fc.max_pool2d_grad(x, y, y * 3, 3, 2, "SAME")))
        else:
            y = fc.avg_pool2d(x, 3, 2, "SAME")
            results.append((y, fc.avg_pool2d_grad(x.shape, y * 3, 3, 2, "SAME")))
    for y, dx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])


def test_pooling_dtypes_layouts_and_inputs_untouched():
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    assert fc.max_pool2d(x, 2, 2, "VALID").dtype == np.float64
    assert fc.avg_pool2d(x.astype(np.float32), 2, 2, "VALID").dtype == np.float32
    xf = np.asfortranarray(x.astype(np.float32))
    x0 = xf.copy()
    np.testing.assert_array_equal(fc.max_pool2d(xf, 2, 2, "VALID"), fc.max_pool2d(x.tolist(), 2, 2, "VALID"))
    np.testing.assert_array_equal(xf, x0)
    out = np.empty((2, 2, 2, 3), np.float32)
    assert fc.max_pool2d(xf, 2, 2, "VALID", out=out) is out


@pytest.mark.parametrize("call, error, message", [
    (lambda: fc.max_pool2d(np.ones((4, 4, 1)), 2, 2, "VALID"), ValueError, r"input must be 4-D \(NHWC\)"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 0, 2, "VALID"), ValueError, "ksize must be"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 2, [2, 2, 2], "VALID"), ValueError, "strides"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), [2, 2, 2, 2], 2, "VALID"), ValueError, "batch and channel"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 5, 1, "VALID"), ValueError, r"window \(ksize \(5, 5\)\) does not fit"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 2, 2, "FULL"), ValueError, "padding must be"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 2, 2, [[0, 0], [2, 0], [0, 0], [0, 0]]), ValueError,
     "smaller than the window"),
    (lambda: fc.avg_pool2d(np.ones((1, 4, 4, 1)), 2, 2, [[0, 0], [1, 0], [0, 0], [0, 0]]), ValueError,
     "padding must be 'SAME' or 'VALID'"),
    (lambda: fc.max_pool2d(np.ones((1, 4, 4, 1)), 2, 2, "VALID", data_format="HWCN"), ValueError, "data_format"),
    (lambda: fc.max_pool2d(np.array([[[["x"]]]]), 1, 1, "VALID"), TypeError, "input must hold numbers"),
    (lambda: fc.max_pool2d_grad(np.ones((1, 4, 4, 1)), np.ones((1, 2, 2, 1)), np.ones((1, 3, 2, 1)), 2, 2, "VALID"),
     ValueError, r"grad has shape \(1, 3, 2, 1\).*gives \(1, 2, 2, 1\)"),
    (lambda: fc.max_pool2d_grad(np.ones((1, 4, 4, 1)), np.ones((1, 1, 2, 1)), np.ones((1, 2, 2, 1)), 2, 2, "VALID"),
     ValueError, "orig_output has shape"),
    (lambda: fc.avg_pool2d_grad((1, 4, 4, 1), np.ones((1, 2, 3, 1)), 2, 2, "VALID"), ValueError,
     r"grad has shape \(1, 2, 3, 1\)"),
    (lambda: fc.avg_pool2d_grad((1, 4, 4), np.ones((1, 2, 2, 1)), 2, 2, "VALID"), ValueError, "input must be 4-D"),
    (lambda: fc.max_pool2d_grad_with_argmax((1, 4, 4, 1), np.ones((1, 2, 2, 1)), np.full((1, 2, 2, 1), 99), 2, 2,
                                            "VALID"), ValueError, "4 of the 4 argmax entries do not name an element of their window"),
    (lambda: fc.max_pool2d_grad_with_argmax((1, 4, 4, 1), np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2, 1), np.int32),
                                            2, 2, "VALID"), ValueError, "3 of the 4 argmax entries"),
    (lambda: fc.max_pool2d_grad_with_argmax((1, 4, 4, 1), np.ones((1, 2, 2, 1)), np.ones((1, 2, 2, 1)), 2, 2,
                                            "VALID"), TypeError, "argmax must hold integers"),
    (lambda: fc.max_pool_with_argmax(np.ones((1, 4, 4, 1)), 2, 2, "VALID", output_dtype=np.float32), TypeError,
     "output_dtype"),
])
def test_pooling_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_argmax_paths_refuse_images_past_2_31_elements():
    huge = np.broadcast_to(np.float32(0), (1, 46341, 46341, 1))  # no memory behind it
    with pytest.raises(ValueError, match="too large for the argmax"):
        fc.max_pool_with_argmax(huge, 2, 2, "VALID")
    with pytest.raises(ValueError, match="too large for the argmax"):
        fc.max_pool2d_grad_with_argmax(huge.shape, np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32),
                                       46341, 46341, "VALID")


def test_pooling_kernels_check_their_buffers_against_the_plan():
    from fastconv import _pooling

    plan = _pooling.PoolPlan((2, 6, 7, 3), (2, 3, 3, 3), (2, 2), (2, 2), (0, 0), 2)
    x = np.ones((2, 6, 7, 3), np.float32)
    y = np.empty((2, 3, 3, 3), np.float32)
    argmax = np.empty((2, 3, 3, 3), np.int32)
    _pooling.max_pool(plan, x, y, argmax)
    np.testing.assert_array_equal(y, 1)
    with pytest.raises(ValueError, match=r"max_pool: x has shape \(2, 6, 8, 3\); the plan needs \(2, 6, 7, 3\)"):
        _pooling.max_pool(plan, np.ones((2, 6, 8, 3), np.float32), y)
    with pytest.raises(ValueError, match=r"avg_pool: y has shape \(2, 3, 4, 3\); the plan needs \(2, 3, 3, 3\)"):
        _pooling.avg_pool(plan, x, np.empty((2, 3, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"max_pool: argmax has shape \(1, 3, 3, 3\)"):
        _pooling.max_pool(plan, x, y, np.empty((1, 3, 3, 3), np.int32))
    with pytest.raises(ValueError, match=r"pool_backward: dx has shape \(2, 6, 6, 3\); the plan needs \(2, 6, 7, 3\)"):
        _pooling.pool_backward(plan, y, argmax, np.empty((2, 6, 6, 3), np.float32))
    with pytest.raises(ValueError, match="no pooling has input"):
        _pooling.PoolPlan((2, 6, 7, 3), (2, 3, 3, 4), (2, 2), (2, 2), (0, 0), 1)
    with pytest.raises(ValueError, match="no pooling has input"):
        _pooling.PoolPlan((2, 6, 7, 3), (2, 3, 3, 3), (2, 2), (2, 2), (2, 0), 1)
