"""Helpers shared by the tests (importable because pyproject.toml puts tests/ on the path)."""
import numpy as np
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64)


def assert_close(actual, expected, dtype, magnitude=1.0):
    """Compare a kernel's result with a float64 reference: float32 to ~1e-5 of the magnitude of
    the sums involved, float64 to ~1e-12."""
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=tol * 10, atol=tol * magnitude)
    assert np.asarray(actual).dtype == np.dtype(dtype)


def tf_padding(padding, data_format="NHWC"):
    """fastconv.reference padding -> TensorFlow's argument form."""
    if isinstance(padding, str):
        return padding
    (t, b), (l, r) = padding
    return [[0, 0], [t, b], [l, r], [0, 0]] if data_format == "NHWC" else [[0, 0], [0, 0], [t, b], [l, r]]


@st.composite
def conv_problems(draw, max_size=9, max_channels=12, allow_dilation=True):
    """A random convolution whose filter fits: shapes, strides, dilations, padding."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    cin, cout = draw(st.integers(1, max_channels)), draw(st.integers(1, 2 * max_channels + 5))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if allow_dilation else (1, 1)
    padding = draw(st.one_of(
        st.sampled_from(["SAME", "VALID"]),
        st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))),
    ))
    pads = (0, 0, 0, 0) if padding in ("SAME", "VALID") else (*padding[0], *padding[1])
    eff_h, eff_w = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    if padding == "VALID" or not isinstance(padding, str):
        # make the filter fit the padded input
        h = max(h, eff_h - pads[0] - pads[1])
        w = max(w, eff_w - pads[2] - pads[3])
    return dict(x_shape=(n, h, w, cin), w_shape=(kh, kw, cin, cout), strides=strides,
                dilations=dilations, padding=padding)
