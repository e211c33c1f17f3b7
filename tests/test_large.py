"""Arrays past 2**31 elements index correctly (64-bit offsets everywhere).

About 20 GB of memory and a minute: opt in with FASTCONV_LARGE_TESTS=1.
"""
import os

import numpy as np
import pytest

import fastconv as fc

pytestmark = pytest.mark.skipif(os.environ.get("FASTCONV_LARGE_TESTS") != "1",
                                reason="needs ~20 GB: set FASTCONV_LARGE_TESTS=1 to run")


def test_input_and_output_past_2_31_elements():
    n, h, w, c = 2, 1 << 14, 1 << 14, 5       # 2.7e9 elements of float32, 10.7 GB
    x = np.zeros((n, h, w, c), np.float32)
    x[1, -1, -1, :] = 1.0                      # the very last pixel, at offset > 2**31
    x[1, -3, -2, 2] = 2.0
    wts = np.ones((3, 3, c, 1), np.float32)
    for algorithm in ("direct", "im2col"):
        y = fc.conv2d(x, wts, 1, "SAME", algorithm=algorithm)
        assert y.shape == (n, h, w, 1)
        assert y[1, -1, -1, 0] == 5.0
        assert y[1, -2, -1, 0] == 7.0
        assert y[0].sum() == 0
        del y
