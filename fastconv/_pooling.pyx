"""Pooling kernels: max and average, forward and backward, NHWC.

Private module: fastconv/pooling.py validates the arguments, computes the geometry and allocates
the outputs (bounds checks are off here because of that; a FASTCONV_DEBUG=1 build turns them on).

Window of output pixel (oh, ow): input rows oh * sh - pt .. oh * sh - pt + kh - 1, clipped to the
image (padded positions are never read: max ignores them, average divides by the number of
real elements).  The innermost loops run over the contiguous channel axis (vectorised by the
compiler); rows of the output (forward) or of the input (backward) are the parallel tasks, so
every element is written by one thread and summed in a fixed order, whatever the thread count.

Max pooling follows TensorFlow: the maximum starts at the lowest finite value and is replaced
only by a strictly greater element, so NaN never wins, ties go to the first element in row-major
order, and a window without any element above the lowest value (all -inf or NaN) outputs the
lowest value with its gradient on the window's first element.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_MAX, FLT_MAX
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t


cdef struct Window:
    ptrdiff_t H, W, OH, OW, kh, kw, sh, sw, pt, pl


cdef Window make_window(ptrdiff_t H, ptrdiff_t W, ptrdiff_t OH, ptrdiff_t OW, tuple geom):
    """geom = (kh, kw, sh, sw, pt, pl)."""
    cdef Window g
    g.H, g.W, g.OH, g.OW = H, W, OH, OW
    g.kh, g.kw, g.sh, g.sw, g.pt, g.pl = geom
    return g


# The window bounds are returned by value: a prange body must assign its per-thread variables
# itself for Cython to make them private (writing them through a pointer would share them).

cdef inline ptrdiff_t clip_lo(ptrdiff_t start) noexcept nogil:
    """First real index of a window that starts at ``start`` (which may be in the padding)."""
    return start if start > 0 else 0


cdef inline ptrdiff_t clip_hi(ptrdiff_t start, ptrdiff_t size, ptrdiff_t extent) noexcept nogil:
    """One past the last real index of a window of ``size`` starting at ``start``."""
    return start + size if start + size < extent else extent


cdef inline ptrdiff_t covering_lo(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t k, ptrdiff_t s) noexcept nogil:
    """First output o whose window o*s - pad .. o*s - pad + k - 1 contains input i (i >= 0):
    the smallest o with o*s > i + pad - k."""
    cdef ptrdiff_t first = i + pad - k + 1
    return (first + s - 1) // s if first > 0 else 0


cdef inline ptrdiff_t covering_hi(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t s, ptrdiff_t n_out) noexcept nogil:
    """One past the last output o whose window contains input i: the largest o with o*s <= i + pad."""
    cdef ptrdiff_t hi = (i + pad) // s + 1
    return hi if hi < n_out else n_out


@cython.boundscheck(False)
@cython.wraparound(False)
def max_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, int64_t[:, :, :, ::1] argmax,
             tuple geom, int n_threads):
    """y = window maxima of x; argmax (or None) gets the flat index (ih * W + iw) * C + c of each."""
    cdef Window g = make_window(x.shape[1], x.shape[2], y.shape[1], y.shape[2], geom)
    cdef ptrdiff_t N = x.shape[0], C = x.shape[3]
    cdef bint want_arg = argmax is not None
    cdef floating lowest = -FLT_MAX if floating is float else -DBL_MAX
    cdef ptrdiff_t row, n, oh, ow, ih, iw, h0, h1, w0, w1, c, first
    cdef const floating *xin
    cdef floating *yout
    cdef int64_t *aout
    cdef floating v
    if y.size == 0 or C == 0:
        return
    for row in prange(N * g.OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.OH
        oh = row - n * g.OH
        h0 = clip_lo(oh * g.sh - g.pt)
        h1 = clip_hi(oh * g.sh - g.pt, g.kh, g.H)
        for ow in range(g.OW):
            w0 = clip_lo(ow * g.sw - g.pl)
            w1 = clip_hi(ow * g.sw - g.pl, g.kw, g.W)
            yout = &y[n, oh, ow, 0]
            for c in range(C):
                yout[c] = lowest
            if want_arg:
                aout = &argmax[n, oh, ow, 0]
                first = (h0 * g.W + w0) * C
                for c in range(C):
                    aout[c] = first + c
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        xin = &x[n, ih, iw, 0]
                        for c in range(C):
                            v = xin[c]
                            if v > yout[c]:
                                yout[c] = v
                                aout[c] = (ih * g.W + iw) * C + c
            else:
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        xin = &x[n, ih, iw, 0]
                        for c in range(C):
                            v = xin[c]
                            yout[c] = v if v > yout[c] else yout[c]


@cython.boundscheck(False)
@cython.wraparound(False)
def max_pool_backward(const int64_t[:, :, :, ::1] argmax, const floating[:, :, :, ::1] grad,
                      floating[:, :, :, ::1] dx, tuple geom, int n_threads):
    """dx[n, i, j, c] = sum of grad over the windows covering (i, j) whose argmax is (i, j, c).

    A gather over input rows: each thread owns whole rows of dx and looks only at the few
    windows that cover each pixel (ceil(k / s) per axis), so overlapping windows accumulate
    without races.
    """
    cdef Window g = make_window(dx.shape[1], dx.shape[2], grad.shape[1], grad.shape[2], geom)
    cdef ptrdiff_t N = dx.shape[0], C = dx.shape[3]
    cdef ptrdiff_t row, n, ih, iw, c, oh, ow, o_h0, o_h1, o_w0, o_w1, here
    cdef floating *dxo
    cdef const int64_t *arg
    cdef const floating *gin
    if dx.size == 0:
        return
    for row in prange(N * g.H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.H
        ih = row - n * g.H
        o_h0 = covering_lo(ih, g.pt, g.kh, g.sh)
        o_h1 = covering_hi(ih, g.pt, g.sh, g.OH)
        for iw in range(g.W):
            dxo = &dx[n, ih, iw, 0]
            for c in range(C):
                dxo[c] = 0
            o_w0 = covering_lo(iw, g.pl, g.kw, g.sw)
            o_w1 = covering_hi(iw, g.pl, g.sw, g.OW)
            here = (ih * g.W + iw) * C
            for oh in range(o_h0, o_h1):
                for ow in range(o_w0, o_w1):
                    arg = &argmax[n, oh, ow, 0]
                    gin = &grad[n, oh, ow, 0]
                    for c in range(C):
                        if arg[c] == here + c:
                            dxo[c] = dxo[c] + gin[c]


@cython.boundscheck(False)
@cython.wraparound(False)
def avg_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, tuple geom, int n_threads):
    """y = mean of each window over its real (non-padded) elements."""
    cdef Window g = make_window(x.shape[1], x.shape[2], y.shape[1], y.shape[2], geom)
    cdef ptrdiff_t N = x.shape[0], C = x.shape[3]
    cdef ptrdiff_t row, n, oh, ow, ih, iw, h0, h1, w0, w1, c
    cdef const floating *xin
    cdef floating *yout
    cdef floating scale
    if y.size == 0 or C == 0:
        return
    for row in prange(N * g.OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.OH
        oh = row - n * g.OH
        h0 = clip_lo(oh * g.sh - g.pt)
        h1 = clip_hi(oh * g.sh - g.pt, g.kh, g.H)
        for ow in range(g.OW):
            w0 = clip_lo(ow * g.sw - g.pl)
            w1 = clip_hi(ow * g.sw - g.pl, g.kw, g.W)
            yout = &y[n, oh, ow, 0]
            for c in range(C):
                yout[c] = 0
            for ih in range(h0, h1):
                for iw in range(w0, w1):
                    xin = &x[n, ih, iw, 0]
                    for c in range(C):
                        yout[c] = yout[c] + xin[c]
            scale = 1.0 / ((h1 - h0) * (w1 - w0))
            for c in range(C):
                yout[c] = yout[c] * scale


@cython.boundscheck(False)
@cython.wraparound(False)
def avg_pool_backward(const floating[:, :, :, ::1] grad, floating[:, :, :, ::1] dx, tuple geom,
                      int n_threads):
    """dx[n, i, j, c] = sum over the windows covering (i, j) of grad / (real elements of the window)."""
    cdef Window g = make_window(dx.shape[1], dx.shape[2], grad.shape[1], grad.shape[2], geom)
    cdef ptrdiff_t N = dx.shape[0], C = dx.shape[3]
    cdef ptrdiff_t row, n, ih, iw, c, oh, ow, o_h0, o_h1, o_w0, o_w1, h0, h1, w0, w1
    cdef floating *dxo
    cdef const floating *gin
    cdef floating scale
    if dx.size == 0:
        return
    for row in prange(N * g.H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.H
        ih = row - n * g.H
        o_h0 = covering_lo(ih, g.pt, g.kh, g.sh)
        o_h1 = covering_hi(ih, g.pt, g.sh, g.OH)
        for iw in range(g.W):
            dxo = &dx[n, ih, iw, 0]
            for c in range(C):
                dxo[c] = 0
            o_w0 = covering_lo(iw, g.pl, g.kw, g.sw)
            o_w1 = covering_hi(iw, g.pl, g.sw, g.OW)
            for oh in range(o_h0, o_h1):
                h0 = clip_lo(oh * g.sh - g.pt)
                h1 = clip_hi(oh * g.sh - g.pt, g.kh, g.H)
                for ow in range(o_w0, o_w1):
                    w0 = clip_lo(ow * g.sw - g.pl)
                    w1 = clip_hi(ow * g.sw - g.pl, g.kw, g.W)
                    scale = 1.0 / ((h1 - h0) * (w1 - w0))
                    gin = &grad[n, oh, ow, 0]
                    for c in range(C):
                        dxo[c] = dxo[c] + gin[c] * scale
