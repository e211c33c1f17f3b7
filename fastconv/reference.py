"""Slow, obvious NumPy versions of fastconv's kernels.

They are the definitions the compiled kernels are tested against, and a place to read what each
operation computes: every function is a few lines of explicit padding, slicing and summing, in
float64, NHWC only, with the spatial arguments as plain pairs::

    strides=(sh, sw), dilations=(dh, dw), padding="SAME" | "VALID" | ((top, bottom), (left, right))

Nothing here is fast and nothing here validates its arguments.
"""
import numpy as np


def pads_for(size, window, stride, dilation, padding, axis):
    """(out, before, after) of one axis, from TensorFlow's definitions of SAME and VALID."""
    eff = (window - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + eff - size, 0)
        return out, total // 2, total - total // 2
    before, after = (0, 0) if padding == "VALID" else padding[axis]
    return (size + before + after - eff) // stride + 1, before, after


def _geometry(x_shape, window, strides, padding, dilations):
    _, h, w, _ = x_shape
    oh, pt, pb = pads_for(h, window[0], strides[0], dilations[0], padding, 0)
    ow, pl, pr = pads_for(w, window[1], strides[1], dilations[1], padding, 1)
    return oh, ow, ((0, 0), (pt, pb), (pl, pr), (0, 0))


def _window(xp, kh, kw, oh, ow, strides, dilations):
    """The input values that tap (kh, kw) of the filter sees, for every output pixel."""
    sh, sw = strides
    dh, dw = dilations
    return xp[:, kh * dh: kh * dh + (oh - 1) * sh + 1: sh, kw * dw: kw * dw + (ow - 1) * sw + 1: sw, :]


def conv2d(x, w, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """y[n, i, j, o] = sum_{a, b, c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a, b, c, o]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    oh, ow, pads = _geometry(x.shape, w.shape[:2], strides, padding, dilations)
    xp = np.pad(x, pads)
    y = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            y += np.einsum("nhwc,co->nhwo", _window(xp, a, b, oh, ow, strides, dilations), w[a, b])
    return y


def conv2d_backprop_input(input_shape, w, dy, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """dx = d(sum(conv2d(x, w) * dy)) / dx: every output pixel sends dy . w back to its window."""
    w = np.asarray(w, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    oh, ow, pads = _geometry(input_shape, w.shape[:2], strides, padding, dilations)
    n, h, wd, c = input_shape
    dxp = np.zeros((n, h + pads[1][0] + pads[1][1], wd + pads[2][0] + pads[2][1], c))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            _window(dxp, a, b, oh, ow, strides, dilations)[...] += np.einsum("nhwo,co->nhwc", dy, w[a, b])
    return dxp[:, pads[1][0]: pads[1][0] + h, pads[2][0]: pads[2][0] + wd, :]


def conv2d_backprop_filter(x, filter_shape, dy, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """dw[a, b, c, o] = sum over n, i, j of xpad[n, i*sh + a*dh, j*sw + b*dw, c] * dy[n, i, j, o]."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    oh, ow, pads = _geometry(x.shape, filter_shape[:2], strides, padding, dilations)
    xp = np.pad(x, pads)
    dw = np.zeros(filter_shape)
    for a in range(filter_shape[0]):
        for b in range(filter_shape[1]):
            dw[a, b] = np.einsum("nhwc,nhwo->co", _window(xp, a, b, oh, ow, strides, dilations), dy)
    return dw


def _pool_windows(shape, ksize, strides, padding):
    """For each output pixel, the slices of the input rows and columns its window covers."""
    _, h, w, _ = shape
    oh, pt, _ = pads_for(h, ksize[0], strides[0], 1, padding, 0)
    ow, pl, _ = pads_for(w, ksize[1], strides[1], 1, padding, 1)
    for i in range(oh):
        rows = slice(max(i * strides[0] - pt, 0), min(i * strides[0] - pt + ksize[0], h))
        for j in range(ow):
            cols = slice(max(j * strides[1] - pl, 0), min(j * strides[1] - pl + ksize[1], w))
            yield i, j, rows, cols


def _pool_shape(shape, ksize, strides, padding):
    oh = pads_for(shape[1], ksize[0], strides[0], 1, padding, 0)[0]
    ow = pads_for(shape[2], ksize[1], strides[1], 1, padding, 1)[0]
    return (shape[0], oh, ow, shape[3])


def _first_argmax(window):
    """Row-major index of the first strictly-greatest element per (n, c), starting from the
    lowest finite float (TensorFlow's rule: NaN and -inf never win; then the first element)."""
    n, kh, kw, c = window.shape
    flat = window.reshape(n, kh * kw, c)
    best = np.full((n, c), np.finfo(np.float64).min)
    arg = np.zeros((n, c), dtype=np.int64)
    for k in range(kh * kw):
        better = flat[:, k, :] > best
        best = np.where(better, flat[:, k, :], best)
        arg = np.where(better, k, arg)
    return best, arg


def max_pool2d(x, ksize, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(_pool_shape(x.shape, ksize, strides, padding))
    for i, j, rows, cols in _pool_windows(x.shape, ksize, strides, padding):
        y[:, i, j, :] = _first_argmax(x[:, rows, cols, :])[0]
    return y


def avg_pool2d(x, ksize, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(_pool_shape(x.shape, ksize, strides, padding))
    for i, j, rows, cols in _pool_windows(x.shape, ksize, strides, padding):
        y[:, i, j, :] = x[:, rows, cols, :].mean(axis=(1, 2))
    return y


def max_pool2d_grad(x, dy, ksize, strides, padding):
    """Each output's gradient goes to the first maximal element of its window; overlaps add up."""
    x = np.asarray(x, dtype=np.float64)
    dx = np.zeros_like(x)
    n_idx = np.arange(x.shape[0])[:, None]
    c_idx = np.arange(x.shape[3])[None, :]
    for i, j, rows, cols in _pool_windows(x.shape, ksize, strides, padding):
        _, arg = _first_argmax(x[:, rows, cols, :])
        width = cols.stop - cols.start
        np.add.at(dx, (n_idx, rows.start + arg // width, cols.start + arg % width, c_idx), dy[:, i, j, :])
    return dx


def avg_pool2d_grad(shape, dy, ksize, strides, padding):
    """Each output's gradient is spread evenly over the real elements of its window."""
    dx = np.zeros(shape)
    for i, j, rows, cols in _pool_windows(shape, ksize, strides, padding):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, rows, cols, :] += dy[:, i, j, None, None, :] / count
    return dx


def _fill_index(k, n, fill_mode):
    """Integer positions k along an axis of length n -> indices into the axis."""
    if fill_mode == "reflect":  # half-sample symmetric: d c b a | a b c d | d c b a
        m = np.mod(k, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    return np.clip(k, 0, n - 1)  # the other modes bring the position into [0, n - 1] first


def _fill_position(p, n, fill_mode):
    """A position along an axis of length n, brought into the image as the fill mode says."""
    last = n - 1
    if fill_mode in ("nearest", "constant"):  # constant: the caller puts cval where p was outside
        return np.clip(p, 0, last)
    if fill_mode == "wrap":  # SciPy's wrap: period n - 1, the first and last pixel coincide
        if n == 1:
            return np.zeros_like(p)
        return np.where(p < 0, last - np.fmod(-p, last), np.where(p > last, np.fmod(p, last), p))
    # reflect: mirror about n - 1/2 into (-1, n) (SciPy rounds there); _fill_index maps -1 and n
    p = np.mod(p, 2 * n)
    return np.where(p >= n, 2 * n - 1 - p, p)


def affine_transform(x, matrices, order=1, fill_mode="nearest", cval=0.0):
    """out[n, i, j] = x[n] at position (row, col) = matrices[n] @ (i, j, 1), per channel.

    x is (N, H, W, C), matrices (N, 2, 3); order 0 takes the pixel at floor(position + 0.5),
    order 1 interpolates the four neighbours bilinearly; positions outside the image as
    scipy.ndimage.affine_transform fills them ('constant': cval outside [0, H-1] x [0, W-1]).
    """
    x = np.asarray(x, dtype=np.float64)
    n_img, h, w, _ = x.shape
    i, j = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.empty_like(x)
    for n, m in enumerate(np.asarray(matrices, dtype=np.float64)):
        r = m[0, 0] * i + m[0, 1] * j + m[0, 2]
        c = m[1, 0] * i + m[1, 1] * j + m[1, 2]
        outside = (r < 0) | (r > h - 1) | (c < 0) | (c > w - 1)
        r, c = _fill_position(r, h, fill_mode), _fill_position(c, w, fill_mode)
        if order == 0:
            rows = _fill_index(np.floor(r + 0.5).astype(np.int64), h, fill_mode)
            cols = _fill_index(np.floor(c + 0.5).astype(np.int64), w, fill_mode)
            out[n] = x[n, rows, cols]
        else:
            r0, c0 = np.floor(r), np.floor(c)
            fr, fc = (r - r0)[..., None], (c - c0)[..., None]
            r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
            rows = [_fill_index(r0, h, fill_mode), _fill_index(r0 + 1, h, fill_mode)]
            cols = [_fill_index(c0, w, fill_mode), _fill_index(c0 + 1, w, fill_mode)]
            out[n] = ((1 - fr) * (1 - fc) * x[n, rows[0], cols[0]] + (1 - fr) * fc * x[n, rows[0], cols[1]]
                      + fr * (1 - fc) * x[n, rows[1], cols[0]] + fr * fc * x[n, rows[1], cols[1]])
        if fill_mode == "constant":
            out[n][outside] = cval
    return out


def depthwise_conv2d(x, w, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """y[n, i, j, c*M + m] = sum_{a, b} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a, b, c, m]
    for filters w[kh, kw, C, M]: each input channel convolved with its own M filters."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    oh, ow, pads = _geometry(x.shape, w.shape[:2], strides, padding, dilations)
    xp = np.pad(x, pads)
    n, _, _, c = x.shape
    y = np.zeros((n, oh, ow, c, w.shape[3]))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            y += _window(xp, a, b, oh, ow, strides, dilations)[..., None] * w[a, b]
    return y.reshape(n, oh, ow, c * w.shape[3])


def depthwise_conv2d_backprop_input(input_shape, w, dy, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """dx = d(sum(depthwise_conv2d(x, w) * dy)) / dx: each output sends dy * w back to its window."""
    w = np.asarray(w, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    oh, ow, pads = _geometry(input_shape, w.shape[:2], strides, padding, dilations)
    n, h, wd, c = input_shape
    dy = dy.reshape(n, oh, ow, c, w.shape[3])
    dxp = np.zeros((n, h + pads[1][0] + pads[1][1], wd + pads[2][0] + pads[2][1], c))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            _window(dxp, a, b, oh, ow, strides, dilations)[...] += (dy * w[a, b]).sum(axis=-1)
    return dxp[:, pads[1][0]: pads[1][0] + h, pads[2][0]: pads[2][0] + wd, :]


def depthwise_conv2d_backprop_filter(x, filter_shape, dy, strides=(1, 1), padding="VALID", dilations=(1, 1)):
    """dw[a, b, c, m] = sum over n, i, j of xpad[n, i*sh + a*dh, j*sw + b*dw, c] * dy[n, i, j, c*M + m]."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    oh, ow, pads = _geometry(x.shape, filter_shape[:2], strides, padding, dilations)
    xp = np.pad(x, pads)
    dy = dy.reshape(*dy.shape[:3], *filter_shape[2:])
    dw = np.zeros(filter_shape)
    for a in range(filter_shape[0]):
        for b in range(filter_shape[1]):
            dw[a, b] = np.einsum("nhwc,nhwcm->cm", _window(xp, a, b, oh, ow, strides, dilations), dy)
    return dw
