"""The convolution plan: the one algorithm selection (each rule directly), the typed plan the
kernels take (buffer sizes checked against it), and a plan built once and run many times."""
import numpy as np
import pytest

import fastconv as fc
from fastconv import _conv
from fastconv.conv import ConvGeometry, ConvPlan, select_algorithm


def geometry(input_nhwc, kernel, strides=1, padding="SAME", dilations=None):
    """The geometry of conv2d of an input (N, H, W, Cin) with filters (kh, kw, Cout)."""
    kh, kw, cout = kernel
    return ConvGeometry("test", input_nhwc, (kh, kw, input_nhwc[3], cout), strides, padding, "NHWC", dilations)


# -- select_algorithm: every rule and override ---------------------------------------------------

@pytest.mark.parametrize("input_nhwc, kernel, strides, expected", [
    ((32, 56, 56, 64), (3, 3, 64), 1, "winograd"),     # wide 3x3, 25088 tiles
    ((4, 14, 14, 64), (3, 3, 64), 1, "winograd"),      # 196 tiles
    ((1, 5, 5, 64), (3, 3, 64), 1, "direct"),          # 9 tiles: fewer than 25
    ((16, 7, 7, 512), (3, 3, 512), 1, "winograd"),     # 256 tiles for 512^2 filter pairs: one per 1024
    ((2, 7, 7, 512), (3, 3, 512), 1, "direct"),        # 32 tiles: one per 8192 pairs
    ((32, 56, 56, 3), (3, 3, 32), 1, "direct"),        # thin input
    ((16, 56, 56, 64), (3, 3, 3), 1, "direct"),        # few output channels
    ((32, 56, 56, 64), (3, 3, 128), 2, "im2col"),      # strided, many input channels
    ((32, 56, 56, 16), (3, 3, 128), 2, "direct"),      # strided, few input channels
    ((32, 56, 56, 64), (5, 5, 64), 1, "direct"),       # not 3x3
])
def test_auto_forward(input_nhwc, kernel, strides, expected):
    algorithm, fallback = select_algorithm("forward", geometry(input_nhwc, kernel, strides))
    assert algorithm == expected
    assert fallback == ("direct" if expected == "winograd" else None)


def test_auto_input_gradient_swaps_the_channels_and_counts_the_input_tiles():
    # 64 -> 3 channels: the input gradient convolves 3 channels into 64, direct like its forward
    geo = geometry((16, 56, 56, 64), (3, 3, 3))
    assert select_algorithm("input_gradient", geo)[0] == "direct"
    # stride 2: the gradient's input channels are the forward's 128 output channels
    assert select_algorithm("input_gradient", geometry((32, 56, 56, 16), (3, 3, 128), 2))[0] == "im2col"
    assert select_algorithm("forward", geometry((32, 56, 56, 16), (3, 3, 128), 2))[0] == "direct"
    # VALID 3x3 of 512 channels on 16x16: 7x7 = 49 output tiles (too few), 8x8 = 64 input tiles (enough)
    geo = geometry((1, 16, 16, 512), (3, 3, 512), 1, "VALID")
    assert select_algorithm("forward", geo) == ("direct", None)
    assert select_algorithm("input_gradient", geo) == ("winograd", "direct")


def test_requested_algorithms_are_kept():
    geo = geometry((2, 9, 9, 8), (3, 3, 8))
    for requested in ("direct", "im2col"):
        for pass_ in ("forward", "input_gradient", "filter_gradient"):
            assert select_algorithm(pass_, geo, requested) == (requested, None)
    assert select_algorithm("forward", geo, "winograd") == ("winograd", "direct")
    assert select_algorithm("input_gradient", geo, "winograd") == ("winograd", "direct")


def test_non_finite_filters_force_im2col_forward_only():
    geo = geometry((32, 56, 56, 64), (3, 3, 64))
    for requested in ("auto", "direct", "winograd", "im2col"):
        assert select_algorithm("forward", geo, requested, finite_filters=False) == ("im2col", None)
    assert select_algorithm("input_gradient", geo, "direct", finite_filters=False) == ("direct", None)


def test_winograd_input_gradient_needs_padding_at_most_2():
    geo = geometry((1, 9, 9, 4), (3, 3, 4), 1, [[0, 0], [3, 0], [0, 0], [0, 0]])
    assert select_algorithm("input_gradient", geo, "winograd") == ("direct", None)
    assert select_algorithm("forward", geo, "winograd") == ("winograd", "direct")
    geo = geometry((1, 9, 9, 4), (3, 3, 4), 1, [[0, 0], [2, 2], [2, 2], [0, 0]])
    assert select_algorithm("input_gradient", geo, "winograd") == ("winograd", "direct")


@pytest.mark.parametrize("batch, cin, strides, expected", [
    (32, 64, 1, "direct"), (32, 128, 1, "direct"),   # wide inputs, large images: by slices of rows
    (32, 1, 1, "direct"), (32, 7, 1, "direct"),      # thin inputs
    (32, 8, 1, "im2col"), (32, 32, 1, "im2col"),     # in between
    (32, 64, 2, "im2col"), (32, 1, (1, 2), "im2col"),  # strided
    (2, 64, 1, "im2col"), (2, 64, 2, "im2col"),      # few pixels of many channels: one GEMM per tap
    (2, 7, 1, "direct"),                             # ... unless they are thin
])
def test_auto_filter_gradient(batch, cin, strides, expected):
    geo = geometry((batch, 56, 56, cin), (3, 3, 16), strides)
    assert select_algorithm("filter_gradient", geo) == (expected, None)
    assert select_algorithm("filter_gradient", geo, "winograd") == (expected, None)


def test_selection_refuses_unknown_passes_and_algorithms():
    geo = geometry((1, 5, 5, 2), (3, 3, 2))
    with pytest.raises(ValueError, match="pass_ must be one of"):
        select_algorithm("backward", geo)
    with pytest.raises(ValueError, match="requested must be one of"):
        select_algorithm("forward", geo, "fft")


# -- the plan: built once, run many times -------------------------------------------------------

def _arrays(geo, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    n, oh, ow, cout = geo.output_nhwc
    x = rng.standard_normal(geo.input_nhwc).astype(dtype)
    dy = rng.standard_normal((n, oh, ow, cout)).astype(dtype)
    return x, dy


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "winograd"])
def test_a_plan_and_its_packed_filters_serve_many_calls(algorithm):
    geo = geometry((2, 11, 13, 5), (3, 3, 19))
    w = np.random.default_rng(0).standard_normal(geo.filter_shape).astype(np.float32)
    b = np.random.default_rng(1).standard_normal(19).astype(np.float32)
    forward = ConvPlan(geo, "forward", np.float32, algorithm)
    backward = ConvPlan(geo, "input_gradient", np.float32, algorithm)
    packed_w, packed_wt = forward.pack(w), backward.pack(w)
    for seed in range(3):
        x, dy = _arrays(geo, seed + 2)
        y = np.empty(geo.output_nhwc, np.float32)
        assert forward.run(x, packed_w, y, b, relu=True)
        np.testing.assert_array_equal(y, fc.conv2d(x, w, 1, "SAME", algorithm=algorithm, bias=b, activation="relu"))
        dx = np.empty(geo.input_nhwc, np.float32)
        assert backward.run(dy, packed_wt, dx)
        np.testing.assert_array_equal(dx, fc.conv2d_backprop_input(x.shape, w, dy, 1, "SAME", algorithm=algorithm))


def test_a_filter_gradient_plan_serves_many_calls():
    geo = geometry((3, 9, 10, 4), (3, 2, 7), (2, 1))
    plan = ConvPlan(geo, "filter_gradient", np.float64, "im2col")
    for seed in range(3):
        x, dy = _arrays(geo, seed, np.float64)
        np.testing.assert_array_equal(plan.filter_gradient(x, dy),
                                      fc.conv2d_backprop_filter(x, geo.filter_shape, dy, (2, 1), "SAME", algorithm="im2col"))


def test_winograd_plan_refuses_non_finite_input_and_its_fallback_computes_it():
    geo = geometry((1, 6, 6, 2), (3, 3, 3))
    w = np.ones(geo.filter_shape, np.float32)
    plan = ConvPlan(geo, "forward", np.float32, "winograd")
    assert plan.fallback.algorithm == "direct"
    x = np.ones(geo.input_nhwc, np.float32)
    x[0, 2, 2, 0] = np.inf
    y = np.empty(geo.output_nhwc, np.float32)
    assert not plan.run(x, plan.pack(w), y)
    assert plan.fallback.run(x, plan.fallback.pack(w), y)
    np.testing.assert_array_equal(y, fc.conv2d(x, w, 1, "SAME", algorithm="direct"))


def test_panel_width_and_sizes_come_from_the_one_kernel_table():
    """nr is the micro-kernel's (narrow for few columns, wide for many), and every size follows."""
    narrow = ConvPlan(geometry((1, 8, 8, 5), (3, 3, 2)), "forward", np.float32, "direct").kernel
    wide = ConvPlan(geometry((1, 8, 8, 5), (3, 3, 40)), "forward", np.float32, "direct").kernel
    assert narrow.nr < wide.nr and narrow.mr > wide.mr
    for plan, cout in ((narrow, 2), (wide, 40)):
        panels = -(-cout // plan.nr)
        assert plan.packed_size == panels * 9 * 5 * plan.nr
        assert plan.bias_size == panels * plan.nr
        assert plan.workspace_bytes % 64 == 0
    # the input gradient's columns are the input channels (direct) or the patch columns (im2col)
    geo = geometry((1, 8, 8, 40), (3, 3, 2))
    assert ConvPlan(geo, "input_gradient", np.float32, "direct").kernel.nr == wide.nr
    im2col = ConvPlan(geo, "input_gradient", np.float32, "im2col").kernel
    assert im2col.packed_size == -(-9 * 40 // im2col.nr) * 2 * im2col.nr


# -- the kernels check every buffer against the plan ----------------------------------------------

def _forward_buffers(algorithm="direct", dtype=np.float32):
    geo = geometry((2, 7, 8, 3), (3, 3, 5))
    plan = ConvPlan(geo, "forward", dtype, algorithm)
    w = np.ones(geo.filter_shape, dtype)
    x = np.ones(geo.input_nhwc, dtype)
    y = np.empty(geo.output_nhwc, dtype)
    return plan, plan.pack(w), x, y


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "winograd"])
def test_convolve_refuses_buffers_that_do_not_fit_the_plan(algorithm):
    plan, packed, x, y = _forward_buffers(algorithm)
    kernel = plan.kernel
    with pytest.raises(ValueError, match=r"convolve: src has shape \(2, 7, 9, 3\); the plan needs \(2, 7, 8, 3\)"):
        _conv.convolve(kernel, np.ones((2, 7, 9, 3), np.float32), packed, y)
    with pytest.raises(ValueError, match=r"convolve: dst has shape \(2, 7, 8, 4\); the plan needs \(2, 7, 8, 5\)"):
        _conv.convolve(kernel, x, packed, np.empty((2, 7, 8, 4), np.float32))
    with pytest.raises(ValueError, match=rf"convolve: packed has shape \({packed.size - 1},\); the plan needs \({packed.size},\)"):
        _conv.convolve(kernel, x, packed[:-1], y)
    with pytest.raises(ValueError, match=rf"convolve: bias has shape \(5,\); the plan needs \({kernel.bias_size},\)"):
        _conv.convolve(kernel, x, packed, y, np.zeros(5, np.float32))
    with pytest.raises(TypeError, match="buffers of float64 for a plan of float32"):
        _conv.convolve(kernel, x.astype(np.float64), packed.astype(np.float64), y.astype(np.float64))
    with pytest.raises(ValueError, match="the plan is for the forward"):
        _conv.filter_gradient(kernel, x, y, np.empty((1, 1), np.float32), np.empty(1, np.float32))


def test_packing_refuses_filters_that_do_not_fit_the_plan():
    plan, packed, _, _ = _forward_buffers("direct")
    with pytest.raises(ValueError, match=r"pack_panels: src has shape \(1, 27, 4\); the plan needs \(1, 27, 5\)"):
        _conv.pack_panels(plan.kernel, np.ones((1, 27, 4), np.float32), packed)
    with pytest.raises(ValueError, match=r"pack_panels: out has shape"):
        _conv.pack_panels(plan.kernel, np.ones((1, 27, 5), np.float32), packed[1:])
    with pytest.raises(ValueError, match="not a Winograd plan"):
        _conv.pack_winograd_filters(plan.kernel, np.ones((3, 3, 3, 5), np.float32), packed)
    winograd, packed, _, _ = _forward_buffers("winograd")
    with pytest.raises(ValueError, match=r"pack_winograd_filters: w has shape \(3, 3, 5, 3\); the plan needs \(3, 3, 3, 5\)"):
        _conv.pack_winograd_filters(winograd.kernel, np.ones((3, 3, 5, 3), np.float32), packed)
    with pytest.raises(ValueError, match="packs with pack_winograd_filters"):
        _conv.pack_panels(winograd.kernel, np.ones((1, 27, 5), np.float32), packed)


def test_input_gradient_and_filter_gradient_buffers_are_checked():
    geo = geometry((2, 7, 8, 3), (3, 3, 5), 2)
    backward = ConvPlan(geo, "input_gradient", np.float32, "im2col")
    packed = backward.pack(np.ones(geo.filter_shape, np.float32))
    dy = np.ones(geo.output_nhwc, np.float32)
    with pytest.raises(ValueError, match=r"convolve: dst has shape \(2, 4, 4, 5\); the plan needs \(2, 7, 8, 3\)"):
        _conv.convolve(backward.kernel, dy, packed, np.empty(geo.output_nhwc, np.float32))
    with pytest.raises(ValueError, match="the input gradient takes no bias"):
        _conv.convolve(backward.kernel, dy, packed, np.empty(geo.input_nhwc, np.float32), np.zeros(8, np.float32))
    grad = ConvPlan(geo, "filter_gradient", np.float32)
    x = np.ones(geo.input_nhwc, np.float32)
    size = 3 * 3 * 3 * 5
    with pytest.raises(ValueError, match=rf"filter_gradient: partials has shape \(1, {size}\); the plan needs \({grad.kernel.slices}, {size}\)"):
        _conv.filter_gradient(grad.kernel, x, dy, np.empty((1, size), np.float32), np.empty(size, np.float32))
    with pytest.raises(ValueError, match=r"filter_gradient: dy has shape \(2, 4, 4, 4\)"):
        _conv.filter_gradient(grad.kernel, x, dy[..., :4].copy(), np.empty((grad.kernel.slices, size), np.float32),
                              np.empty(size, np.float32))
    with pytest.raises(ValueError, match="the filter gradient reads no filters"):
        grad.pack(np.ones(geo.filter_shape, np.float32))


def test_kernel_plan_refuses_what_no_kernel_computes():
    with pytest.raises(ValueError, match="Winograd computes the forward pass and the input gradient"):
        _conv.KernelPlan("forward", "winograd", 4, (1, 8, 8, 2), (1, 4, 4, 2), (3, 3), (2, 2), (1, 1), (0, 0), 1)
    with pytest.raises(ValueError, match="Winograd computes"):
        _conv.KernelPlan("filter_gradient", "winograd", 4, (1, 8, 8, 2), (1, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="pass_ must be one of"):
        _conv.KernelPlan("backward", "direct", 4, (1, 8, 8, 2), (1, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="itemsize must be 4 or 8"):
        _conv.KernelPlan("forward", "direct", 2, (1, 8, 8, 2), (1, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 1)
    with pytest.raises(ValueError, match="n_threads must be positive"):
        _conv.KernelPlan("forward", "direct", 4, (1, 8, 8, 2), (1, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 0)
    with pytest.raises(ValueError, match="no convolution has input"):
        _conv.KernelPlan("forward", "direct", 4, (1, 8, 8, 2), (2, 8, 8, 2), (3, 3), (1, 1), (1, 1), (1, 1), 1)


def test_plan_run_refuses_a_bias_of_the_wrong_length():
    plan, packed, x, y = _forward_buffers()
    with pytest.raises(ValueError, match=r"ConvPlan.run: bias must have shape \(5,\); received shape \(4,\)"):
        plan.run(x, packed, y, np.zeros(4, np.float32))
