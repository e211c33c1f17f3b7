"""The convolution plan: the one algorithm selection (each rule directly), the typed plan the
kernels take (buffer sizes checked against it), and a plan built once and run many times."""
import numpy as np
import pytest

from fastconv.conv import ConvGeometry, select_algorithm


def geometry(input_nhwc, kernel, strides=1, padding="SAME", dilations=None):
    """The geometry of conv2d of an input (N, H, W, Cin) with filters (kh, kw, Cout)."""
    kh, kw, cout = kernel
    return ConvGeometry("test", input_nhwc, (kh, kw, input_nhwc[3], cout), strides, padding, "NHWC", dilations)


# -- select_algorithm: every rule and override ---------------------------------------------------

@pytest.mark.parametrize("input_nhwc, kernel, strides, expected", [
    ((32, 56, 56, 64), (3, 3, 64), 1, "winograd"),     # wide 3x3, 25088 tiles
    ((4, 14, 14, 64), (3, 3, 64), 1, "direct"),        # 196 tiles: fewer than 256
    ((16, 7, 7, 512), (3, 3, 512), 1, "direct"),       # 256 tiles for 512^2 filter pairs
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
    # VALID 3x3 on 32x32: 15x15 = 225 output tiles (too few), 16x16 = 256 input tiles (enough)
    geo = geometry((1, 32, 32, 64), (3, 3, 64), 1, "VALID")
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


@pytest.mark.parametrize("cin, strides, expected", [
    (64, 1, "direct"), (256, 1, "direct"),    # wide inputs
    (1, 1, "direct"), (7, 1, "direct"),       # thin inputs
    (8, 1, "im2col"), (32, 1, "im2col"),      # in between
    (64, 2, "im2col"), (1, (1, 2), "im2col"), # strided
])
def test_auto_filter_gradient(cin, strides, expected):
    geo = geometry((2, 16, 16, cin), (3, 3, 16), strides)
    assert select_algorithm("filter_gradient", geo) == (expected, None)
    assert select_algorithm("filter_gradient", geo, "winograd") == (expected, None)


def test_selection_refuses_unknown_passes_and_algorithms():
    geo = geometry((1, 5, 5, 2), (3, 3, 2))
    with pytest.raises(ValueError, match="pass_ must be one of"):
        select_algorithm("backward", geo)
    with pytest.raises(ValueError, match="requested must be one of"):
        select_algorithm("forward", geo, "fft")
