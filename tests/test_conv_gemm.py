"""1x1 convolutions as a GEMM read in place (im2col without the copy), forward and filter gradient,
the reduction split into blocks that accumulate, the forward's accumulating epilogue relu(dst + conv + bias), and the
forward tasks split over groups of output channels (few rows; filters larger than the L2 cache)."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import reference as ref
from fastconv.conv import ConvGeometry, ConvPlan, select_algorithm
from _helpers import assert_close


def plan_for(x_shape, w_shape, dtype=np.float32, algorithm="auto", strides=1, padding="SAME", n_threads=None):
    geo = ConvGeometry("test", x_shape, w_shape, strides, padding, "NHWC", None)
    return ConvPlan(geo, "forward", dtype, algorithm, n_threads=n_threads)


@pytest.mark.parametrize("padding, strides, expected", [
    ("SAME", 1, "im2col"),                # the input is its own patch matrix
    ("VALID", 1, "im2col"),
    ([[0, 0], [1, 0], [0, 0], [0, 0]], 1, "direct"),   # padded: rows of zeros are not in the input
])
def test_auto_picks_im2col_for_unpadded_1x1_stride_1(padding, strides, expected):
    geo = ConvGeometry("test", (2, 7, 7, 64), (1, 1, 64, 32), strides, padding, "NHWC", None)
    assert select_algorithm("forward", geo) == (expected, None)
    # the gradients keep their own rules
    assert select_algorithm("input_gradient", geo)[0] == "direct"


def test_in_place_patches_need_no_workspace():
    in_place = plan_for((2, 7, 7, 64), (1, 1, 64, 32)).kernel
    copied = plan_for((2, 7, 7, 64), (1, 1, 64, 32), strides=2).kernel  # im2col gathers every other pixel
    assert in_place.algorithm == copied.algorithm == "im2col"
    assert in_place.workspace_bytes == 64 < copied.workspace_bytes   # one cache line: nothing is copied


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, hw, cin, cout", [
    (1, 1, 1, 1),
    (3, 7, 5, 19),        # 147 pixels: three blocks of 48 and a short one; a partial panel
    (2, 5, 700, 33),      # a reduction of 700: blocks of 256 (float32) or 256 (float64, panels of 8) steps
    (1, 3, 300, 8),       # 300 steps: under 1.5 blocks, one pass (the narrow micro-kernel)
])
def test_1x1_matches_reference_with_bias_and_relu(dtype, n, hw, cin, cout):
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((n, hw, hw, cin)).astype(dtype)
    w = rng.standard_normal((1, 1, cin, cout)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    expected = ref.conv2d(x.astype(np.float64), w.astype(np.float64), (1, 1), "SAME")
    y = fc.conv2d(x, w, 1, "SAME")
    assert_close(y, expected, dtype, magnitude=np.sqrt(cin))
    direct = fc.conv2d(x, w, 1, "SAME", algorithm="direct")
    assert_close(y, direct, dtype, magnitude=np.sqrt(cin))
    # the bias after the accumulated blocks: bit for bit bias_add of the result, then ReLU
    fused = fc.conv2d(x, w, 1, "SAME", bias=b, activation="relu")
    np.testing.assert_array_equal(fused, np.maximum(y + b, 0))


def test_1x1_is_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 11, 13, 600)).astype(np.float32)
    w = rng.standard_normal((1, 1, 600, 40)).astype(np.float32)
    results = [fc.conv2d(x, w, 1, "VALID")]
    try:
        for n in (1, 3):
            fc.set_num_threads(n)
            results.append(fc.conv2d(x, w, 1, "VALID"))
    finally:
        fc.set_num_threads(None)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("algorithm, kernel, strides", [
    ("im2col", 1, 1),     # in place
    ("im2col", 1, 2),     # gathered patches
    ("im2col", 3, 1),
    ("direct", 3, 1),     # interior tiles and border pixels
    ("direct", 1, 1),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulate_adds_the_residual_before_the_bias_and_relu(algorithm, kernel, strides, dtype):
    rng = np.random.default_rng(kernel * 10 + strides)
    x = rng.standard_normal((2, 9, 10, 300)).astype(dtype)
    w = rng.standard_normal((kernel, kernel, 300, 21)).astype(dtype)
    b = rng.standard_normal(21).astype(dtype)
    plan = plan_for(x.shape, w.shape, dtype, algorithm, strides)
    conv = fc.conv2d(x, w, strides, "SAME", algorithm=algorithm)
    residual = rng.standard_normal(conv.shape).astype(dtype)
    y = residual.copy()
    assert plan.run(x, plan.pack(w), y, b, relu=True, accumulate=True)
    assert_close(y, np.maximum(residual + conv.astype(np.float64) + b, 0), dtype, magnitude=np.sqrt(300 * kernel**2))


def test_accumulate_is_refused_where_it_does_not_apply():
    x = np.zeros((1, 16, 16, 16), np.float32)
    w = np.zeros((3, 3, 16, 16), np.float32)
    plan = plan_for(x.shape, w.shape, algorithm="winograd")
    with pytest.raises(ValueError, match="accumulate applies to the forward pass of direct and im2col"):
        plan.run(x, plan.pack(w), np.zeros_like(x), accumulate=True)
    geo = ConvGeometry("test", x.shape, w.shape, 1, "SAME", "NHWC", None)
    gradient = ConvPlan(geo, "input_gradient", np.float32, "direct")
    with pytest.raises(ValueError, match="accumulate applies to the forward pass"):
        gradient.run(x, gradient.pack(w), np.zeros_like(x), accumulate=True)


@pytest.mark.parametrize("algorithm, x_shape, w_shape, expected_tasks", [
    ("im2col", (1, 7, 7, 96), (1, 1, 96, 160), 16),    # 49 pixels: 2 blocks x 8 groups of the 10 panels
    ("im2col", (1, 5, 5, 40), (3, 3, 40, 24), 1),      # gathered patches: each block packed once, one task
    ("direct", (1, 6, 5, 512), (3, 3, 512, 40), 18),   # 288 KiB a panel: 3 groups of one panel x 6 rows
    ("direct", (2, 6, 5, 64), (3, 3, 64, 40), 12),     # 36 KiB a panel: one group of 3 panels x 12 rows
])
def test_tasks_split_over_groups_of_channels(algorithm, x_shape, w_shape, expected_tasks):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[3]).astype(np.float32)
    plan = plan_for(x_shape, w_shape, algorithm=algorithm)
    assert plan.kernel.n_tasks == expected_tasks
    expected = ref.conv2d(x, w, (1, 1), "SAME") + b
    results = []
    try:
        for n in (1, 2, 3):
            fc.set_num_threads(n)
            results.append(fc.conv2d(x, w, 1, "SAME", algorithm=algorithm, bias=b))
    finally:
        fc.set_num_threads(None)
    assert_close(results[0], expected, np.float32, magnitude=np.sqrt(np.prod(w_shape[:3])))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("algorithm, kernel", [("im2col", 1), ("im2col", 3), ("direct", 3), ("direct", 1)])
def test_relu6_in_the_epilogue(algorithm, kernel):
    rng = np.random.default_rng(7)
    x = 3 * rng.standard_normal((2, 6, 7, 20)).astype(np.float32)
    x[0, 2, 3, :] = np.nan  # NaN stays NaN through the clamp, as tf.nn.relu6
    w = rng.standard_normal((kernel, kernel, 20, 19)).astype(np.float32)
    b = rng.standard_normal(19).astype(np.float32)
    plan = plan_for(x.shape, w.shape, algorithm=algorithm)
    y = np.empty(plan.geometry.output_nhwc, np.float32)
    plan.run(x, plan.pack(w), y, b, relu=True, relu6=True)
    expected = np.minimum(fc.conv2d(x, w, 1, "SAME", algorithm=algorithm, bias=b, activation="relu"), 6)
    np.testing.assert_array_equal(y, expected)
    assert np.isnan(y).any() and np.nanmax(y) == 6 and np.nanmin(y) == 0


def test_relu6_is_refused_by_winograd():
    x = np.zeros((1, 16, 16, 16), np.float32)
    w = np.zeros((3, 3, 16, 16), np.float32)
    plan = plan_for(x.shape, w.shape, algorithm="winograd")
    with pytest.raises(ValueError, match="relu6 applies to the forward pass of direct and im2col"):
        plan.run(x, plan.pack(w), np.zeros_like(x), relu=True, relu6=True)


# ------------------------------------------------- the filter gradient of a 1x1 layer, in place
@pytest.mark.parametrize("x_shape, w_shape, padding, expected, by_gemm", [
    ((2, 7, 7, 128), (1, 1, 128, 32), "SAME", "im2col", True),     # few pixels per slice
    ((2, 7, 7, 128), (1, 1, 128, 32), [[0, 0], [1, 0], [0, 0], [0, 0]], "im2col", True),  # padded too
    ((16, 4, 4, 512), (3, 3, 512, 512), "SAME", "im2col", True),   # a large filter, small images
    ((32, 56, 56, 64), (3, 3, 64, 64), "SAME", "direct", False),   # many pixels: by slices of rows
    ((100, 50, 50, 32), (3, 3, 32, 64), "VALID", "im2col", False),  # im2col by slices
    ((2, 7, 7, 16), (3, 3, 16, 256), "SAME", "im2col", False),     # too thin for a tap's tiles
])
def test_auto_filter_gradient_runs_as_a_gemm_per_tap_where_slices_are_short(x_shape, w_shape, padding, expected,
                                                                               by_gemm):
    geo = ConvGeometry("test", x_shape, w_shape, 1, padding, "NHWC", None)
    assert select_algorithm("filter_gradient", geo) == (expected, None)
    kernel = ConvPlan(geo, "filter_gradient", np.float32).kernel
    # the GEMM's tasks are blocks of dW (a tap, a chunk of channels, a group of panels): no partial sums
    assert (kernel.slices == 1) == by_gemm
    if by_gemm:
        taps, chunks = w_shape[0] * w_shape[1], -(-w_shape[2] // 96)
        panels = -(-w_shape[3] // kernel.nr)
        assert kernel.n_tasks == taps * chunks * min(-(-2 * kernel.n_threads // (taps * chunks)), panels)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, h, w, cin, cout", [
    (1, 1, 1, 1, 1),
    (3, 11, 13, 100, 37),   # 429 pixels: a block of 256 and a short one; two chunks of channels,
                            # the second with a partial tile; a partial panel
    (2, 4, 4, 7, 130),      # fewer pixels than one block; many panels in few tasks' groups
])
def test_1x1_filter_gradient_in_place_matches_reference(dtype, n, h, w, cin, cout):
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    dy = rng.standard_normal((n, h, w, cout)).astype(dtype)
    expected = ref.conv2d_backprop_filter(x, (1, 1, cin, cout), dy)
    got = fc.conv2d_backprop_filter(x, (1, 1, cin, cout), dy, 1, "VALID", algorithm="im2col")
    assert_close(got, expected, dtype, magnitude=np.sqrt(n * h * w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, strides, padding, dilations", [
    ((3, 5, 6, 100), 3, 1, "SAME", 1),      # the padding gathered as zeros; two chunks, a partial tile
    ((2, 9, 8, 40), 3, 2, "VALID", 1),
    ((2, 9, 9, 33), (2, 3), (1, 2), "SAME", (2, 1)),
    ((1, 23, 23, 32), 5, 1, "SAME", 1),     # 529 pixels: blocks of 256 and a short one
])
def test_filter_gradient_as_a_gemm_per_tap_matches_reference(dtype, x_shape, kernel, strides, padding, dilations):
    rng = np.random.default_rng(11)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cin, cout = x_shape[-1], 21
    geo = ConvGeometry("test", x_shape, (kh, kw, cin, cout), strides, padding, "NHWC", dilations)
    assert ConvPlan(geo, "filter_gradient", dtype, "im2col").kernel.slices == 1   # the GEMM, not slices
    x = rng.standard_normal(x_shape).astype(dtype)
    dy = rng.standard_normal(geo.output_shape).astype(dtype)
    expected = ref.conv2d_backprop_filter(x, (kh, kw, cin, cout), dy, geo.strides, padding, geo.dilations)
    got = fc.conv2d_backprop_filter(x, (kh, kw, cin, cout), dy, strides, padding, dilations=dilations,
                                    algorithm="im2col")
    assert_close(got, expected, dtype, magnitude=np.sqrt(dy[..., 0].size))
    direct = fc.conv2d_backprop_filter(x, (kh, kw, cin, cout), dy, strides, padding, dilations=dilations,
                                       algorithm="direct")
    assert_close(got, direct, dtype, magnitude=np.sqrt(dy[..., 0].size))


def test_1x1_filter_gradient_is_bitwise_identical_for_any_thread_count():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 11, 13, 300)).astype(np.float32)
    dy = rng.standard_normal((3, 11, 13, 40)).astype(np.float32)
    results = [fc.conv2d_backprop_filter(x, (1, 1, 300, 40), dy, 1, "VALID")]
    try:
        for n in (1, 3):
            fc.set_num_threads(n)
            results.append(fc.conv2d_backprop_filter(x, (1, 1, 300, 40), dy, 1, "VALID"))
    finally:
        fc.set_num_threads(None)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, strides, padding", [
    ((2, 9, 7, 20), 2, "VALID"),        # odd sizes: the last row and column are read
    ((2, 8, 8, 20), 2, "SAME"),         # SAME pads a 1x1 window by nothing
    ((1, 10, 11, 5), (3, 2), "VALID"),
    ((3, 7, 7, 130), 2, "SAME"),        # the stride-2 projection of ResNet50 at 112x112, smaller
    ((2, 6, 7, 20), (1, 2), [[0, 0], [2, 0], [2, 2], [0, 0]]),   # padded: not a subsampled x
])
def test_strided_1x1_filter_gradient_as_a_stride_1_gemm(dtype, x_shape, strides, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    x0 = x.copy()
    cin, cout = x_shape[-1], 33
    geo = ConvGeometry("test", x_shape, (1, 1, cin, cout), strides, padding, "NHWC", None)
    dy = rng.standard_normal(geo.output_shape).astype(dtype)
    pt, pb, pl, pr = geo.pads
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    expected = ref.conv2d_backprop_filter(padded, (1, 1, cin, cout), dy, geo.strides, "VALID")
    got = fc.conv2d_backprop_filter(x, (1, 1, cin, cout), dy, strides, padding)
    assert_close(got, expected, dtype, magnitude=np.sqrt(dy[..., 0].size))
    strided = fc.conv2d_backprop_filter(x, (1, 1, cin, cout), dy, strides, padding, algorithm="im2col")
    assert_close(got, strided, dtype, magnitude=np.sqrt(dy[..., 0].size))
    np.testing.assert_array_equal(x, x0)
