"""fastconv.conv2d: the lecture's tables, the NumPy reference, TensorFlow, and every argument form."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv as fc
from fastconv import reference as ref
from _helpers import DTYPES, assert_close, conv_problems, tf_padding

ALGORITHMS = ("direct", "im2col")

SMILEY = np.array([[0, 1, 0, 1, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1], [0, 1, 1, 1, 0]])


# -- the lecture's tables -----------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ("auto", "winograd") + ALGORITHMS)
@pytest.mark.parametrize("kernel, expected", [
    ([[0, 1, 0], [0, 1, 0], [0, 1, 0]],
     [[0, 2, 0, 2, 0], [0, 2, 0, 2, 0], [1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]]),
    ([[0, 0, 0], [0, 0, 0], [1, 1, 1]],
     [[1, 1, 2, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1], [1, 2, 3, 2, 1], [0, 0, 0, 0, 0]]),
])
def test_lecture_smiley_tables(kernel, expected, algorithm):
    W = np.array(kernel)
    z = fc.conv2d(SMILEY[None, :, :, None], W[:, :, None, None], strides=1, padding="SAME", algorithm=algorithm)
    assert isinstance(z, np.ndarray)
    assert z.shape == (1, 5, 5, 1)
    assert z.dtype == np.float64  # integers compute in float64
    np.testing.assert_array_equal(z[0, :, :, 0], expected)


def test_lecture_strides_and_valid():
    W = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]])[:, :, None, None]
    x = SMILEY[None, :, :, None]
    np.testing.assert_array_equal(fc.conv2d(x, W, 1, "VALID")[0, :, :, 0], [[2, 0, 2], [1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(fc.conv2d(x, W, 2, "SAME")[0, :, :, 0], [[0, 0, 0], [1, 0, 1], [1, 1, 1]])


# -- against the NumPy reference -----------------------------------------------------------------

def _case(problem, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(problem["x_shape"]).astype(dtype)
    w = rng.standard_normal(problem["w_shape"]).astype(dtype)
    return x, w


@settings(max_examples=150, deadline=None)
@given(problem=conv_problems(), dtype=st.sampled_from(DTYPES), algorithm=st.sampled_from(ALGORITHMS),
       data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_matches_reference(problem, dtype, algorithm, data_format):
    x, w = _case(problem, dtype)
    expected = ref.conv2d(x, w, problem["strides"], problem["padding"], problem["dilations"])
    xin = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2)
    y = fc.conv2d(xin, w, list(problem["strides"]), tf_padding(problem["padding"], data_format),
                  data_format=data_format, dilations=list(problem["dilations"]), algorithm=algorithm)
    if data_format == "NCHW":
        assert y.shape == tuple(np.array(expected.shape)[[0, 3, 1, 2]])
        y = y.transpose(0, 2, 3, 1)
    assert_close(y, expected, dtype, magnitude=np.sqrt(np.prod(problem["w_shape"][:3])))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape, kernel, stride, padding", [
    ((2, 31, 37, 3), (3, 5, 40), 1, "SAME"),      # several channel panels, odd sizes
    ((1, 23, 29, 24), (3, 3, 7), 2, "SAME"),      # narrow kernel, strided
    ((3, 16, 16, 17), (1, 1, 33), 1, "VALID"),    # 1x1
    ((1, 40, 12, 5), (7, 2, 9), 3, "VALID"),      # non-square kernel, tall image
    ((2, 19, 21, 2), (5, 5, 3), (2, 3), [[0, 0], [4, 1], [0, 3], [0, 0]]),
])
def test_matches_reference_larger(shape, kernel, stride, padding, algorithm):
    """Sizes beyond a tile of the micro-kernel in every direction, with partial tiles."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((kernel[0], kernel[1], shape[3], kernel[2])).astype(np.float32)
    st_ = (stride, stride) if np.isscalar(stride) else stride
    pad = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding[1:3])
    expected = ref.conv2d(x, w, st_, pad)
    y = fc.conv2d(x, w, stride, padding, algorithm=algorithm)
    assert_close(y, expected, np.float32, magnitude=np.sqrt(w[..., 0].size))


def test_algorithms_agree_and_auto_is_one_of_them():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 20, 20, 16)).astype(np.float32)
    w = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
    results = {a: fc.conv2d(x, w, 1, "SAME", algorithm=a) for a in ("auto", "direct", "im2col", "winograd")}
    np.testing.assert_allclose(results["direct"], results["im2col"], rtol=1e-5, atol=1e-5)
    # Winograd (F(4x4, 3x3) here) within 1e-5 of the largest output (tests/test_conv_winograd.py)
    np.testing.assert_allclose(results["direct"], results["winograd"], rtol=0,
                               atol=1e-5 * np.abs(results["direct"]).max())
    assert any(np.array_equal(results["auto"], results[a]) for a in ALGORITHMS + ("winograd",))


# -- against TensorFlow ----------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(problem=conv_problems(), dtype=st.sampled_from(DTYPES), algorithm=st.sampled_from(ALGORITHMS))
def test_matches_tensorflow(tf, problem, dtype, algorithm):
    x, w = _case(problem, dtype)
    expected = tf.nn.conv2d(x, w, list(problem["strides"]), tf_padding(problem["padding"]),
                            dilations=list(problem["dilations"])).numpy()
    y = fc.conv2d(x, w, list(problem["strides"]), tf_padding(problem["padding"]),
                  dilations=list(problem["dilations"]), algorithm=algorithm)
    assert y.shape == expected.shape
    assert_close(y, expected.astype(np.float64), dtype, magnitude=np.sqrt(np.prod(problem["w_shape"][:3])))


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [6, 7, 8, 9])
def test_same_padding_with_stride_as_tensorflow(tf, stride, size):
    """SAME with stride > 1: total padding from the output size, the odd one at the bottom/right."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal((1, size, size + 1, 2)).astype(np.float32)
    w = rng.standard_normal((4, 3, 2, 3)).astype(np.float32)
    expected = tf.nn.conv2d(x, w, stride, "SAME").numpy()
    for algorithm in ALGORITHMS:
        np.testing.assert_allclose(fc.conv2d(x, w, stride, "SAME", algorithm=algorithm), expected, rtol=1e-5, atol=1e-5)


def test_nan_and_inf_propagate_as_tensorflow(tf):
    x = np.ones((1, 5, 6, 2), np.float32)
    x[0, 2, 3, 1] = np.nan
    x[0, 0, 0, 0] = np.inf
    w = np.ones((3, 3, 2, 4), np.float32)
    expected = tf.nn.conv2d(x, w, 1, "SAME").numpy()
    for algorithm in ("auto", "winograd") + ALGORITHMS:
        np.testing.assert_array_equal(fc.conv2d(x, w, 1, "SAME", algorithm=algorithm), expected)
    # An infinite weight over the padding: TensorFlow multiplies the padding's zeros (0 * inf = NaN).
    w[0, 0] = np.inf
    x = np.ones((1, 4, 4, 2), np.float32)
    expected = tf.nn.conv2d(x, w, 1, "SAME").numpy()
    for algorithm in ("auto", "winograd") + ALGORITHMS:
        np.testing.assert_array_equal(fc.conv2d(x, w, 1, "SAME", algorithm=algorithm), expected)


# -- Winograd (each tile: tests/test_conv_winograd.py) --------------------------------------------

@st.composite
def winograd_problems(draw):
    n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 13)), draw(st.integers(1, 13))
    cin, cout = draw(st.integers(1, 24)), draw(st.integers(1, 40))
    padding = draw(st.one_of(st.sampled_from(["SAME", "VALID"]),
                             st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                                       st.tuples(st.integers(0, 3), st.integers(0, 3)))))
    if padding == "VALID":
        h, w = max(h, 3), max(w, 3)
    elif padding != "SAME":
        h, w = max(h, 3 - sum(padding[0])), max(w, 3 - sum(padding[1]))
    return dict(x_shape=(n, h, w, cin), w_shape=(3, 3, cin, cout), strides=(1, 1), dilations=(1, 1),
                padding=padding)


@settings(max_examples=80, deadline=None)
@given(problem=winograd_problems(), dtype=st.sampled_from(DTYPES), data_format=st.sampled_from(["NHWC", "NCHW"]))
def test_winograd_matches_reference(problem, dtype, data_format):
    x, w = _case(problem, dtype)
    p = problem["padding"]
    expected = ref.conv2d(x, w, (1, 1), p)
    xin = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2)
    y = fc.conv2d(xin, w, 1, tf_padding(p, data_format), data_format=data_format, algorithm="winograd")
    if data_format == "NCHW":
        y = y.transpose(0, 2, 3, 1)
    assert_close(y, expected, dtype, magnitude=np.sqrt(9 * problem["x_shape"][3]))
    dy = np.random.default_rng(1).standard_normal(expected.shape).astype(dtype)
    dx = fc.conv2d_backprop_input(x.shape, w, dy, 1, tf_padding(p), algorithm="winograd")
    assert_close(dx, ref.conv2d_backprop_input(x.shape, w, dy, (1, 1), p), dtype,
                 magnitude=np.sqrt(9 * w.shape[3]))


def test_winograd_is_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((3, 37, 41, 24)).astype(np.float32)
    w = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    results = []
    for n in (1, 2, 5):
        fc.set_num_threads(n)
        results.append(fc.conv2d(x, w, 1, "SAME", algorithm="winograd"))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_winograd_needs_3x3_stride_1_no_dilation():
    x = np.ones((1, 8, 8, 2))
    for w_shape, strides, dilations in [((5, 5, 2, 1), 1, 1), ((3, 3, 2, 1), 2, 1), ((3, 3, 2, 1), 1, 2)]:
        with pytest.raises(ValueError, match="algorithm='winograd' needs 3x3 filters, strides 1 and dilations 1"):
            fc.conv2d(x, np.ones(w_shape), strides, "SAME", dilations=dilations, algorithm="winograd")


# -- NumPy friendliness ----------------------------------------------------------------------------

@pytest.mark.parametrize("x_dtype, w_dtype, expected", [
    (np.float32, np.float32, np.float32),
    (np.float32, np.float64, np.float64),
    (np.float64, np.float32, np.float64),
    (np.int32, np.int64, np.float64),
    (np.bool_, np.int8, np.float64),
    (np.uint8, np.float32, np.float32),
    (np.float16, np.float16, np.float16),
    (np.int64, np.float32, np.float64),
])
def test_result_dtype_follows_numpy_promotion(x_dtype, w_dtype, expected):
    x = (np.arange(2 * 5 * 5 * 2) % 3).reshape(2, 5, 5, 2).astype(x_dtype)
    w = (np.arange(3 * 3 * 2 * 2) % 2).reshape(3, 3, 2, 2).astype(w_dtype)
    y = fc.conv2d(x, w, 1, "SAME")
    assert y.dtype == expected
    np.testing.assert_allclose(y, ref.conv2d(x.astype(float), w.astype(float), (1, 1), "SAME"), rtol=1e-3)


def test_array_likes_and_layouts():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 7, 9, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    expected = ref.conv2d(x, w, (1, 1), "SAME")
    variants = {
        "lists": (x.tolist(), w.tolist()),
        "fortran": (np.asfortranarray(x), np.asfortranarray(w)),
        "negative strides": (x[:, ::-1, ::-1, :][:, ::-1, ::-1, :], w[::-1][::-1]),
        "non-contiguous view": (np.repeat(x, 2, axis=2)[:, :, ::2, :], np.repeat(w, 3, axis=3)[..., ::3]),
        "read-only": (np.lib.stride_tricks.as_strided(x, writeable=False), w),
    }
    for name, (xi, wi) in variants.items():
        np.testing.assert_allclose(fc.conv2d(xi, wi, 1, "SAME"), expected, rtol=1e-12, atol=1e-12, err_msg=name)
    flipped = x[:, ::-1]
    np.testing.assert_allclose(fc.conv2d(flipped, w, 1, "SAME"), ref.conv2d(flipped, w, (1, 1), "SAME"), atol=1e-12)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    x0, w0 = x.copy(), w.copy()
    for algorithm in ALGORITHMS:
        fc.conv2d(x, w, 2, "SAME", algorithm=algorithm)
        fc.conv2d(x.transpose(0, 3, 1, 2), w, 1, "VALID", data_format="NCHW", algorithm=algorithm)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_out_argument(data_format):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    xin = x if data_format == "NHWC" else x.transpose(0, 3, 1, 2).copy()
    expected = fc.conv2d(xin, w, 1, "SAME", data_format=data_format)
    out = np.full(expected.shape, 7.0, np.float32)
    result = fc.conv2d(xin, w, 1, "SAME", data_format=data_format, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)
    # a non-contiguous out is filled too
    big = np.zeros(expected.shape[:-1] + (expected.shape[-1] * 2,), np.float32)
    view = big[..., ::2]
    assert fc.conv2d(xin, w, 1, "SAME", data_format=data_format, out=view) is view
    np.testing.assert_array_equal(view, expected)


def test_out_aliasing_an_input_gives_the_right_result():
    x = np.random.default_rng(6).standard_normal((1, 5, 5, 2))
    w = np.random.default_rng(7).standard_normal((1, 1, 2, 2))
    expected = ref.conv2d(x, w)
    fc.conv2d(x, w, 1, "VALID", out=x)  # in place: computed aside, then copied
    np.testing.assert_allclose(x, expected, atol=1e-12)


def test_out_errors():
    x = np.ones((1, 4, 4, 1), np.float32)
    w = np.ones((3, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"out has shape \(1, 2, 2, 1\).*\(1, 4, 4, 1\)"):
        fc.conv2d(x, w, 1, "SAME", out=np.empty((1, 2, 2, 1), np.float32))
    with pytest.raises(TypeError, match="out has dtype float64.*float32"):
        fc.conv2d(x, w, 1, "SAME", out=np.empty((1, 4, 4, 1)))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        fc.conv2d(x, w, 1, "SAME", out=[0.0])


# -- argument forms ---------------------------------------------------------------------------------

@pytest.mark.parametrize("strides", [2, [2], [2, 2], [1, 2, 2, 1], (2, 2), np.array([2, 2])])
def test_stride_forms(strides):
    x = np.random.default_rng(8).standard_normal((1, 9, 9, 2))
    w = np.random.default_rng(9).standard_normal((3, 3, 2, 3))
    np.testing.assert_allclose(fc.conv2d(x, w, strides, "VALID"), ref.conv2d(x, w, (2, 2)), atol=1e-12)


def test_nchw_stride_forms():
    x = np.random.default_rng(10).standard_normal((1, 2, 9, 8))
    w = np.random.default_rng(11).standard_normal((3, 3, 2, 3))
    expected = ref.conv2d(x.transpose(0, 2, 3, 1), w, (2, 3), "SAME", (1, 2)).transpose(0, 3, 1, 2)
    y = fc.conv2d(x, w, [1, 1, 2, 3], "SAME", data_format="NCHW", dilations=[1, 1, 1, 2])
    np.testing.assert_allclose(y, expected, atol=1e-12)
    explicit = fc.conv2d(x, w, [1, 1, 2, 3], [[0, 0], [0, 0], [1, 2], [0, 3]], data_format="NCHW")
    expected = ref.conv2d(x.transpose(0, 2, 3, 1), w, (2, 3), ((1, 2), (0, 3))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(explicit, expected, atol=1e-12)


def test_padding_forms():
    x = np.random.default_rng(12).standard_normal((1, 6, 6, 1))
    w = np.random.default_rng(13).standard_normal((3, 3, 1, 1))
    four = fc.conv2d(x, w, 1, [[0, 0], [1, 2], [0, 1], [0, 0]])
    two = fc.conv2d(x, w, 1, [[1, 2], [0, 1]])
    np.testing.assert_array_equal(four, two)
    np.testing.assert_allclose(four, ref.conv2d(x, w, (1, 1), ((1, 2), (0, 1))), atol=1e-12)
    np.testing.assert_array_equal(fc.conv2d(x, w, 1, "same"), fc.conv2d(x, w, 1, "SAME"))


def test_degenerate_sizes():
    assert fc.conv2d(np.zeros((0, 5, 5, 2)), np.ones((3, 3, 2, 4)), 1, "SAME").shape == (0, 5, 5, 4)
    assert fc.conv2d(np.zeros((1, 5, 5, 2)), np.ones((3, 3, 2, 0)), 1, "SAME").shape == (1, 5, 5, 0)
    np.testing.assert_array_equal(fc.conv2d(np.zeros((1, 5, 5, 0)), np.ones((3, 3, 0, 2)), 1, "SAME"), 0)
    # a filter larger than the image, SAME: every output sees only part of it
    x = np.random.default_rng(14).standard_normal((1, 2, 3, 1))
    w = np.random.default_rng(15).standard_normal((5, 6, 1, 2))
    np.testing.assert_allclose(fc.conv2d(x, w, 1, "SAME"), ref.conv2d(x, w, (1, 1), "SAME"), atol=1e-12)


# -- threads -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bitwise_identical_for_any_thread_count(algorithm):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((3, 97, 101, 5)).astype(np.float32)   # odd sizes: short last blocks
    w = rng.standard_normal((3, 3, 5, 19)).astype(np.float32)
    results = []
    for n in (1, 2, 3, 7):
        fc.set_num_threads(n)
        results.append(fc.conv2d(x, w, [1, 2], "SAME", algorithm=algorithm))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


# -- bad input ---------------------------------------------------------------------------------------

X = np.ones((1, 5, 5, 2))
W = np.ones((3, 3, 2, 4))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(input=np.ones((5, 5, 2))), ValueError, r"input must be 4-D \(NHWC\); received shape \(5, 5, 2\)"),
    (dict(filters=np.ones((3, 3, 2))), ValueError, r"filters must be 4-D.*\(3, 3, 2\)"),
    (dict(filters=np.ones((3, 3, 3, 4))), ValueError, r"filters have 3 input channels but the input has 2.*\(1, 5, 5, 2\).*\(3, 3, 3, 4\)"),
    (dict(strides=0), ValueError, r"strides must be an int or a list of 1, 2 or 4 positive ints. Received: strides=0"),
    (dict(strides=[1, -1]), ValueError, "strides"),
    (dict(strides=[1, 2, 3]), ValueError, r"strides=\[1, 2, 3\]"),
    (dict(strides=1.5), TypeError, "strides"),
    (dict(strides="2"), TypeError, "strides"),
    (dict(strides=True), TypeError, "strides"),
    (dict(strides=[2, 1, 1, 1]), ValueError, "batch and channel dimensions must be 1"),
    (dict(dilations=0), ValueError, "dilations"),
    (dict(dilations=[1, 2, 2, 2]), ValueError, "dilations in the batch and channel"),
    (dict(padding="FULL"), ValueError, "padding must be 'SAME', 'VALID' or explicit pairs. Received: padding='FULL'"),
    (dict(padding=[[0, 0], [1, -1], [0, 0], [0, 0]]), ValueError, "must not be negative"),
    (dict(padding=[[1, 0], [1, 1], [0, 0], [0, 0]]), ValueError, "batch and channel dimensions must be"),
    (dict(padding=[[1, 1, 1]]), ValueError, "explicit padding must be 4 pairs"),
    (dict(padding=[["a", 1], [1, 1]]), TypeError, "padding"),
    (dict(padding=3), TypeError, "padding"),
    (dict(data_format="NWHC"), ValueError, "data_format must be 'NHWC' or 'NCHW'. Received: data_format='NWHC'"),
    (dict(algorithm="fft"), ValueError, "algorithm must be one of"),
    (dict(filters=np.ones((7, 7, 2, 1)), padding="VALID"), ValueError, r"does not fit the padded input.*\(1, 5, 5, 2\)"),
    (dict(filters=np.ones((3, 3, 2, 1)), padding="VALID", dilations=3), ValueError, "effective size 7x7"),
    (dict(filters=np.ones((0, 3, 2, 1))), ValueError, "filter height and width must be positive"),
    (dict(input=np.array([["a"]])), TypeError, r"input must hold numbers.*dtype <U1"),
    (dict(input=np.ones((1, 5, 5, 2), complex)), TypeError, "input must hold numbers"),
    (dict(filters=[[1, 2], [3]]), ValueError, "filters must be a rectangular array-like"),
    (dict(input=np.ones((1, 5, 5, 2), np.longdouble)), TypeError, "not supported"),
])
def test_bad_input(kwargs, error, message):
    args = dict(input=X, filters=W, strides=1, padding="SAME")
    args.update(kwargs)
    with pytest.raises(error, match=message):
        fc.conv2d(**args)


def test_error_names_the_function():
    with pytest.raises(ValueError, match=r"^conv2d: "):
        fc.conv2d(X, W, 0, "SAME")


# -- fused bias and ReLU (fastconv's extension) --------------------------------------------------------

@pytest.mark.parametrize("algorithm", ("auto", "winograd") + ALGORITHMS)
@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_fused_bias_and_relu_equal_the_separate_ops(algorithm, data_format):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 9, 8, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 21)).astype(np.float32)
    b = rng.standard_normal(21).astype(np.float32)
    if data_format == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    plain = fc.conv2d(x, w, 1, "SAME", data_format=data_format, algorithm=algorithm)
    biased = fc.bias_add(plain, b, data_format)
    np.testing.assert_array_equal(fc.conv2d(x, w, 1, "SAME", data_format=data_format, algorithm=algorithm, bias=b),
                                  biased)
    fused = fc.conv2d(x, w, 1, "SAME", data_format=data_format, algorithm=algorithm, bias=b, activation="relu")
    np.testing.assert_array_equal(fused, np.maximum(biased, 0))


def test_fused_bias_errors_and_promotion():
    x = np.ones((1, 4, 4, 2), np.float32)
    w = np.ones((3, 3, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        fc.conv2d(x, w, 1, "SAME", bias=np.ones(2))
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        fc.conv2d(x, w, 1, "SAME", activation="tanh")
    assert fc.conv2d(x, w, 1, "SAME", bias=np.ones(3)).dtype == np.float64
