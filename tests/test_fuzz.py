"""The public-API fuzzer (tests/fuzz_api.py) in quick mode, and the regression tests of the defects
it and issue 13 found: arguments past the kernels' 64-bit index arithmetic, shapes given as floats,
strings or bools, and the NaN placement of the Winograd input gradient.

The long mode is a command: ``python tests/fuzz_api.py --calls 10000 --seed 1``.
"""
import os
import sys

import numpy as np
import pytest

import fastconv as fc
from fastconv import reference as ref
from fastconv.conv import ConvGeometry, select_algorithm
from _helpers import child_env

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_api  # noqa: E402


def test_quick_fuzz_batch_has_no_crash_hang_or_wrong_result():
    """300 seeded calls of every public function in child processes that report signals."""
    records = fuzz_api.run(seed=20261201, start=0, calls=300, timeout=60.0,
                           env=child_env())
    assert len(records) == 300
    by_outcome, by_fn = fuzz_api.summary(records)
    failures = [f"[{r['i']}] {r['outcome']}: {r['desc']} -> {r['detail'][:300]}" for r in records
                if r["outcome"] not in ("ok", "refused", "memory_error")]
    assert not failures, "\n".join(failures)
    # the batch reaches every function, with valid and hostile calls
    assert {fn for fn, _ in by_fn} == set(fuzz_api.FUNCTIONS)
    assert by_outcome["ok"] > 100 and by_outcome["refused"] > 50


def test_oracle_catches_a_wrong_result_and_a_wrong_refusal():
    x = np.ones((1, 3, 3, 1))
    case = fuzz_api.Case("max_pool2d", "", lambda: fc.max_pool2d(x, 2, 1, "VALID") + 1,
                         lambda: ref.max_pool2d(x, (2, 2), (1, 1), "VALID"))
    assert fuzz_api.run_case(case)[0] == "wrong"
    accepted = fuzz_api.Case("max_pool2d", "", lambda: fc.max_pool2d(x, 2, 1, "VALID"), refuse="strides")
    assert fuzz_api.run_case(accepted)[0] == "wrong"
    unnamed = fuzz_api.Case("max_pool2d", "", lambda: fc.max_pool2d(x, 2, 1.5, "VALID"), refuse="ksize")
    assert fuzz_api.run_case(unnamed)[0] == "wrong"
    named = fuzz_api.Case("max_pool2d", "", lambda: fc.max_pool2d(x, 2, 1.5, "VALID"), refuse="strides")
    assert fuzz_api.run_case(named) == ("refused", "TypeError")


X = np.arange(2 * 5 * 5 * 3, dtype=np.float64).reshape(2, 5, 5, 3)
W = np.ones((2, 2, 3, 2))


@pytest.mark.parametrize("value", [2**31, 2**62, 2**63 - 1, 2**63, 2**64, 2**100])
@pytest.mark.parametrize("call, name", [
    (lambda v: fc.conv2d(X, W, v, "VALID"), "strides"),
    (lambda v: fc.conv2d(X, W, 1, "VALID", dilations=[1, v]), "dilations"),
    (lambda v: fc.conv2d(X, W, 1, [[0, 0], [v, 0], [0, 0], [0, 0]]), "padding"),
    (lambda v: fc.conv2d_transpose(np.ones((1, 1, 1, 2)), W, [1, 5, 5, 3], v, "VALID"), "strides"),
    (lambda v: fc.depthwise_conv2d(X, W, [1, v, 1, 1], "SAME"), "strides"),
    (lambda v: fc.max_pool2d(X, v, 1, "SAME"), "ksize"),
    (lambda v: fc.avg_pool2d(X, 2, [v, 1], "VALID"), "strides"),
    (lambda v: fc.max_pool2d(X, 2, 1, [[0, 0], [0, v], [0, 0], [0, 0]]), "padding"),
])
def test_sizes_past_the_kernels_index_arithmetic_are_value_errors(call, name, value):
    """Up to 2**63 - 1 these were accepted and overflowed int64 inside the kernels (wrong results,
    heap overflows in the pooling gradient); from 2**63 they raised OverflowError."""
    with pytest.raises(ValueError, match=name) as info:
        call(value)
    assert not isinstance(info.value, OverflowError)
    assert "2**31 - 1" in str(info.value)


def test_results_past_64_bit_indices_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"conv2d: the result .*padding"):
        fc.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), 1, [[0, 0], [2**31 - 1] * 2, [2**31 - 1] * 2, [0, 0]])
    with pytest.raises(ValueError, match="conv2d_backprop_input: input_sizes"):
        fc.conv2d_backprop_input([2**40, 2**40, 2**40, 1], np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), 1, "VALID")
    with pytest.raises(ValueError, match="conv2d_transpose: output_shape"):
        fc.conv2d_transpose(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), [2**62, 2**31], 1, "VALID")
    with pytest.raises(ValueError, match="conv2d_transpose: output_shape"):   # 2**60 elements: 2**63 bytes
        fc.conv2d_transpose(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), [1, 2**30, 2**30, 1], 2**30, "VALID")
    with pytest.raises(MemoryError):   # 2**56 elements pass, and the machine cannot allocate them
        fc.conv2d_transpose(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), [1, 2**28, 2**28, 1], 2**28, "VALID")


@pytest.mark.parametrize("stride", [2**20, 2**31 - 1])
def test_large_strides_within_the_limit_are_exact(stride):
    """conv2d_transpose returned values where zeros were expected, pooling windows came out wrong."""
    w = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    got = fc.conv2d_transpose(np.ones((1, 1, 1, 1)), w, [1, 9, 9, 1], [stride, stride], "VALID")
    np.testing.assert_array_equal(got, ref.conv2d_backprop_input((1, 9, 9, 1), w, np.ones((1, 1, 1, 1)),
                                                                 (stride, stride), "VALID"))
    assert np.count_nonzero(got) == 4
    for padding in ("SAME", "VALID"):
        y, argmax = fc.max_pool_with_argmax(X, [2, 2], [stride, 1], padding)
        np.testing.assert_array_equal(y, ref.max_pool2d(X, (2, 2), (stride, 1), padding))
        dy = np.arange(1.0, y.size + 1).reshape(y.shape)
        np.testing.assert_array_equal(fc.max_pool2d_grad_with_argmax(X.shape, dy, argmax, [2, 2], [stride, 1], padding),
                                      ref.max_pool2d_grad(X, dy, (2, 2), (stride, 1), padding))
        np.testing.assert_array_equal(fc.avg_pool2d_grad(X.shape, dy, [2, 2], [stride, 1], padding),
                                      ref.avg_pool2d_grad(X.shape, dy, (2, 2), (stride, 1), padding))


@pytest.mark.parametrize("shape", [[2.9, 5, 5, 3], ["2", 5, 5, 3], [True, 5, 5, 3], np.array([2, 5, 5, 3.0]),
                                   "2553", b"2553"])
@pytest.mark.parametrize("call, name", [
    (lambda s: fc.avg_pool2d_grad(s, np.ones((2, 4, 4, 3)), 2, 1, "VALID"), "orig_input_shape"),
    (lambda s: fc.max_pool2d_grad_with_argmax(s, np.ones((2, 4, 4, 3)), np.zeros((2, 4, 4, 3), np.int64), 2, 1,
                                              "VALID"), "input_shape"),
    (lambda s: fc.conv2d_backprop_input(s, W, np.ones((2, 4, 4, 2)), 1, "VALID"), "input_sizes"),
    (lambda s: fc.conv2d_transpose(np.ones((2, 4, 4, 2)), W, s, 1, "VALID"), "output_shape"),
    (lambda s: fc.depthwise_conv2d_backprop_input(s, np.ones((2, 2, 3, 1)), np.ones((2, 4, 4, 3)), 1, "VALID"),
     "input_sizes"),
    (lambda s: fc.conv2d_backprop_filter(X[:, :4, :4], s, np.ones((2, 3, 3, 2)), 1, "VALID"), "filter_sizes"),
])
def test_shapes_of_floats_strings_or_bools_are_type_errors(call, name, shape):
    """[2.9, 4, 4, 1] used to be truncated to [2, 4, 4, 1]."""
    with pytest.raises(TypeError, match=name):
        call(shape)


@pytest.mark.parametrize("value", [b"1", "1", "11"])
def test_strides_given_as_bytes_or_strings_are_type_errors(value):
    """b"1" iterated as [49] and was taken for strides 49."""
    with pytest.raises(TypeError, match="max_pool2d: strides"):
        fc.max_pool2d(X, 1, value, "VALID")


@pytest.mark.parametrize("poison", ["filters", "out_backprop"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_winograd_input_gradient_puts_nan_where_direct_and_im2col_do(poison, value):
    """auto picks Winograd here; with a non-finite filter it multiplied its zero padding of dY by
    the infinity (NaN on the border) where TensorFlow, direct and im2col do not."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 3, 16, 16))
    dy = rng.standard_normal((2, 32, 32, 16))
    (w if poison == "filters" else dy)[1, 2, 3, 4] = value
    geo = ConvGeometry("t", (2, 32, 32, 16), w.shape, 1, "SAME", "NHWC", None)
    assert select_algorithm("input_gradient", geo)[0] == "winograd"
    results = {alg: fc.conv2d_backprop_input([2, 32, 32, 16], w, dy, 1, "SAME", algorithm=alg)
               for alg in ("auto", "winograd", "direct", "im2col")}
    expected = ref.conv2d_backprop_input((2, 32, 32, 16), w, dy, (1, 1), "SAME")
    for alg, got in results.items():
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=alg)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10, err_msg=alg)


def test_select_algorithm_avoids_winograd_input_gradient_for_non_finite_filters():
    geo = ConvGeometry("t", (2, 32, 32, 16), (3, 3, 16, 16), 1, "SAME", "NHWC", None)
    assert select_algorithm("input_gradient", geo, "auto", finite_filters=False) == ("direct", None)
    assert select_algorithm("input_gradient", geo, "winograd", finite_filters=False) == ("direct", None)
    assert select_algorithm("input_gradient", geo, "auto", finite_filters=True) == ("winograd", "direct")


@pytest.mark.parametrize("padding", ["SAME", [[0, 0], [0, 1], [2, 0], [0, 0]]])
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_filter_gradient_of_a_non_finite_out_backprop_multiplies_the_padding(padding, value):
    """Found by the fuzzer: TensorFlow (and the reference) multiply the zero padding of the input by
    dY, so an infinite dY over the padding gives NaN in dW; the kernels skipped the padding."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 4, 2))
    geo_padding = "SAME" if padding == "SAME" else ((0, 1), (2, 0))
    oh, ow = (ref.pads_for(2, 3, 2, 1, geo_padding, 0)[0], ref.pads_for(4, 2, 3, 1, geo_padding, 1)[0])
    dy = rng.standard_normal((1, oh, ow, 4))
    dy[0, -1, 0, 1] = value
    expected = ref.conv2d_backprop_filter(x, (3, 2, 2, 4), dy, (2, 3), geo_padding)
    assert np.isnan(expected).any()
    for alg in ("auto", "direct", "im2col"):
        got = fc.conv2d_backprop_filter(x, [3, 2, 2, 4], dy, [2, 3], padding, algorithm=alg)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=alg)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=alg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_gradient_kernel_takes_strides_near_the_int64_limit(dtype):
    """The grad row's ceiling division overflowed for such strides (which the wrappers now refuse):
    it started at output row -1 and read outside grad and argmax (AddressSanitizer: heap-buffer-
    overflow in grad_row_*_avx2).  The kernel itself must stay in bounds, whatever its plan."""
    from fastconv import _pooling
    x = X.astype(dtype)
    expected_y, argmax = fc.max_pool_with_argmax(x, [2, 2], [2**20, 1], "VALID")   # one output row
    plan = _pooling.PoolPlan(x.shape, expected_y.shape, (2, 2), (2**63 - 1, 1), (0, 0), 1)
    dy = np.arange(1, expected_y.size + 1, dtype=dtype).reshape(expected_y.shape)
    dx = np.empty(x.shape, dtype=dtype)
    matched = _pooling.pool_backward(plan, dy, argmax.astype(np.int32), dx)
    assert matched == dy.size
    np.testing.assert_array_equal(dx, ref.max_pool2d_grad(x, dy, (2, 2), (2**20, 1), "VALID"))
    _pooling.pool_backward(plan, dy, None, dx)
    np.testing.assert_array_equal(dx, ref.avg_pool2d_grad(x.shape, dy, (2, 2), (2**20, 1), "VALID"))


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_input_gradient_kernels_take_strides_near_the_int64_limit(algorithm):
    """The direct input gradient's count of output columns per stride phase, (dst - phase + down - 1)
    // down, overflowed for such strides (which the wrappers now refuse): conv2d_transpose wrote 71
    non-zero values where 4 were expected.  The kernels themselves must compute it without overflow."""
    from fastconv.conv import ConvPlan, convolve
    w = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    dy = np.ones((1, 1, 1, 1))
    geo = ConvGeometry("t", (1, 9, 9, 1), w.shape, 2**20, "VALID", "NHWC", None)
    geo.strides = (2**63 - 1, 2**63 - 1)   # the same output (one pixel) for any stride past 8
    dx = np.empty((1, 9, 9, 1))
    convolve(ConvPlan(geo, "input_gradient", np.float64, algorithm), dy, w, dx)
    np.testing.assert_array_equal(dx, ref.conv2d_backprop_input((1, 9, 9, 1), w, dy, (2**20, 2**20), "VALID"))


def test_depthwise_input_gradient_kernel_takes_strides_near_the_int64_limit():
    """The same count in the depthwise row kernel (one channel: its column step stride * channels
    stays in range; with more channels only the wrappers' limit of 2**31 - 1 keeps it so)."""
    from fastconv import _depthwise
    w = np.arange(1.0, 5.0).reshape(2, 2, 1, 1)
    dy = np.ones((1, 1, 1, 1))
    dx = np.empty((1, 9, 9, 1))
    _depthwise.backprop_input(dy, w.reshape(-1), dx, (2, 2, 2**63 - 1, 2**63 - 1, 1, 1, 0, 0), 1, 1)
    np.testing.assert_array_equal(dx, ref.depthwise_conv2d_backprop_input((1, 9, 9, 1), w, dy, (2**20, 2**20),
                                                                           "VALID"))
