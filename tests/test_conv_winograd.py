"""Winograd's two tiles, F(2x2, 3x3) and F(4x4, 3x3): the plan's choice, each tile against the
float64 reference (forward with bias and ReLU, input gradient, tiles over the edge, padding),
their accuracy in float32, thread counts, the blocks of tiles and the refusal of non-finite input."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import _conv
from fastconv import reference as ref
from fastconv.conv import ConvGeometry, ConvPlan
from _helpers import assert_close

TILES = (2, 4)


def geometry(x_shape, cout, padding="SAME"):
    return ConvGeometry("test", x_shape, (3, 3, x_shape[3], cout), 1, padding, "NHWC", None)


def run_forward(geo, x, w, tile, bias=None, relu=False, n_threads=None):
    plan = ConvPlan(geo, "forward", x.dtype, "winograd", n_threads=n_threads, winograd_tile=tile)
    assert plan.kernel.winograd_tile == tile
    y = np.empty(geo.output_nhwc, x.dtype)
    assert plan.run(x, plan.pack(w), y, bias, relu)
    return y


def run_input_gradient(geo, w, dy, tile):
    plan = ConvPlan(geo, "input_gradient", dy.dtype, "winograd", winograd_tile=tile)
    assert plan.kernel.winograd_tile == tile
    dx = np.empty(geo.input_nhwc, dy.dtype)
    assert plan.run(dy, plan.pack(w), dx)
    return dx


@pytest.mark.parametrize("x_shape, cout, pass_, expected", [
    ((32, 56, 56, 64), 64, "forward", 4),     # 6272 4x4 tiles: 36 x 6272 < 16 x 25088 products
    ((1, 28, 28, 128), 128, "forward", 4),    # 49 tiles
    ((2, 14, 14, 256), 256, "forward", 4),    # 32 tiles: the least F(4x4, 3x3) takes
    ((1, 14, 14, 256), 256, "forward", 2),    # 16 tiles: each block would read all of U for few tiles
    ((64, 2, 2, 16), 16, "forward", 2),       # 2x2 images: one 4x4 tile (36) against one 2x2 (16)
    ((64, 6, 6, 16), 16, "forward", 2),       # 4 x 36 = 144 against 9 x 16 = 144: not fewer
    ((64, 7, 7, 16), 16, "forward", 4),       # 4 x 36 = 144 against 16 x 16 = 256
    ((8, 7, 7, 16), 16, "input_gradient", 4),  # the input gradient's tiles are of dX (7x7 here too)
])
def test_the_plan_takes_the_tile_with_fewer_products(x_shape, cout, pass_, expected):
    plan = ConvPlan(geometry(x_shape, cout), pass_, np.float32, "winograd")
    assert plan.kernel.winograd_tile == expected
    assert f"F({expected}x{expected}, 3x3)" in repr(plan)
    assert ConvPlan(geometry(x_shape, cout), pass_, np.float32, "direct").kernel.winograd_tile == 0


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, cout, padding", [
    ((1, 1, 1, 3), 5, "SAME"),             # one output: a tile almost all over the edge
    ((2, 13, 11, 7), 19, "SAME"),          # odd sizes: the last row and column of tiles hang over
    ((3, 9, 10, 16), 40, "VALID"),         # 7x8 outputs; partial panels of output channels
    ((1, 8, 8, 33), 17, [[0, 0], [2, 0], [0, 1], [0, 0]]),   # uneven explicit padding
    ((2, 6, 5, 24), 8, [[0, 0], [1, 2], [2, 1], [0, 0]]),
])
def test_each_tile_matches_the_reference(tile, dtype, x_shape, cout, padding):
    rng = np.random.default_rng(x_shape[1] * 100 + cout)
    geo = geometry(x_shape, cout, padding)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(geo.filter_shape).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    ref_padding = padding if isinstance(padding, str) else [tuple(padding[1]), tuple(padding[2])]
    expected = ref.conv2d(x.astype(np.float64), w.astype(np.float64), (1, 1), ref_padding)
    magnitude = np.sqrt(9 * x_shape[3])
    assert_close(run_forward(geo, x, w, tile), expected, dtype, magnitude)
    with_epilogue = run_forward(geo, x, w, tile, bias=b, relu=True)
    assert_close(with_epilogue, np.maximum(expected + b, 0), dtype, magnitude)
    dy = rng.standard_normal(geo.output_nhwc).astype(dtype)
    dx = run_input_gradient(geo, w, dy, tile)
    expected_dx = ref.conv2d_backprop_input(x.shape, w.astype(np.float64), dy.astype(np.float64), (1, 1),
                                            ref_padding)
    assert_close(dx, expected_dx, dtype, np.sqrt(9 * cout))
    assert np.isfinite(dx).all() and not np.shares_memory(dx, dy)


@pytest.mark.parametrize("tile, bound", [(2, 1e-6), (4, 1e-5)])
def test_float32_error_against_float64(tile, bound):
    """The figures of conv2d's docstring and the README: the float32 result against the same layer
    in float64, relative to the largest output (measured here: F(2x2, 3x3) 4.2e-7 forward,
    F(4x4, 3x3) 2.5e-6; the direct kernel's own rounding is 8.6e-7 on this layer)."""
    rng = np.random.default_rng(18)
    geo = geometry((8, 56, 56, 64), 64)
    x = rng.standard_normal(geo.input_nhwc).astype(np.float32)
    w = rng.standard_normal(geo.filter_shape).astype(np.float32)
    exact = fc.conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME", algorithm="direct")
    assert np.max(np.abs(run_forward(geo, x, w, tile) - exact)) / np.max(np.abs(exact)) < bound
    dy = rng.standard_normal(exact.shape).astype(np.float32)
    dx_exact = fc.conv2d_backprop_input(x.shape, w.astype(np.float64), dy.astype(np.float64), 1, "SAME",
                                        algorithm="direct")
    dx = run_input_gradient(geo, w, dy, tile)
    assert np.max(np.abs(dx - dx_exact)) / np.max(np.abs(dx_exact)) < bound


def test_f4x4_on_a_wide_layer_is_within_1e5_of_float64():
    """512 channels: the longest sums of ResNet50 (measured 5.9e-6 of the largest output)."""
    rng = np.random.default_rng(4)
    geo = geometry((4, 7, 7, 512), 512)
    x = rng.standard_normal(geo.input_nhwc).astype(np.float32)
    w = (rng.standard_normal(geo.filter_shape) / np.sqrt(9 * 512)).astype(np.float32)
    exact = fc.conv2d(x.astype(np.float64), w.astype(np.float64), 1, "SAME", algorithm="direct")
    assert np.max(np.abs(run_forward(geo, x, w, 4) - exact)) / np.max(np.abs(exact)) < 1e-5


@pytest.mark.parametrize("tile", TILES)
def test_each_tile_is_bitwise_identical_for_any_thread_count(tile):
    rng = np.random.default_rng(19)
    geo = geometry((3, 37, 41, 24), 40)
    x = rng.standard_normal(geo.input_nhwc).astype(np.float32)
    w = rng.standard_normal(geo.filter_shape).astype(np.float32)
    results = [run_forward(geo, x, w, tile, n_threads=n) for n in (1, 2, 5)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("x_shape, cout, tile, tasks", [
    # wide: U (36 x 256 x 256) is 9.4 MiB, so a block is one position's V and M in 128 KiB
    # (64 tiles), capped at 512 tiles / 16 tasks rounded up to a multiple of 6 (36): 15 blocks
    ((32, 14, 14, 256), 256, 4, 15),
    # thin: the whole block's V and M within 256 KiB: 14 -> 12 tiles, 6272 / 12 -> 523 blocks
    ((32, 56, 56, 64), 64, 4, 523),
    ((32, 56, 56, 64), 64, 2, 837),           # 16 positions: 32 -> 30 tiles of 25088
])
def test_blocks_of_tiles_follow_the_reuse_of_the_filters(x_shape, cout, tile, tasks):
    plan = ConvPlan(geometry(x_shape, cout), "forward", np.float32, "winograd", winograd_tile=tile)
    assert plan.kernel.n_tasks == tasks


@pytest.mark.parametrize("tile", TILES)
def test_each_tile_refuses_non_finite_input_and_the_fallback_computes_it(tile):
    geo = geometry((1, 10, 10, 2), 3)
    w = np.ones(geo.filter_shape, np.float32)
    x = np.ones(geo.input_nhwc, np.float32)
    x[0, 5, 4, 1] = np.inf
    plan = ConvPlan(geo, "forward", np.float32, "winograd", winograd_tile=tile)
    y = np.empty(geo.output_nhwc, np.float32)
    assert not plan.run(x, plan.pack(w), y)
    plan.fallback.run(x, plan.fallback.pack(w), y)
    np.testing.assert_array_equal(y, fc.conv2d(x, w, 1, "SAME", algorithm="direct"))
    assert np.isinf(y[0, 5, 4]).all() and np.isfinite(y[0, 0, 0]).all()


@pytest.mark.parametrize("algorithm, tile", [("winograd", 3), ("winograd", -1), ("direct", 4), ("im2col", 2)])
def test_a_bad_tile_is_refused(algorithm, tile):
    with pytest.raises(ValueError, match=r"winograd_tile must be 0, 2 or 4, and 0 unless algorithm='winograd'"):
        _conv.KernelPlan("forward", algorithm, 4, (1, 8, 8, 2), (1, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 1,
                         winograd_tile=tile)
