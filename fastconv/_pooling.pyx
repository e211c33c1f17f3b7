"""Pooling kernels: max and average, forward and backward, NHWC.

Private module: fastconv/pooling.py validates the arguments, computes the geometry and allocates
the outputs; the rows are computed by the C functions of fastconv/_kernels/pool_impl.h (vector
selects over the channel axis, compiled for AVX2 and the baseline and chosen at run time).

Window of output pixel (oh, ow): input rows oh * sh - pt .. oh * sh - pt + kh - 1, clipped to the
image (padded positions are never read: max ignores them, average divides by the number of real
elements).  Rows of the output (forward) or of the input (backward, a gather over the windows
that cover each pixel) are the parallel tasks, so every element is written by one thread and
summed in a fixed order, whatever the thread count.

Max pooling follows TensorFlow: the maximum starts at the lowest finite value and is replaced
only by a strictly greater element, so NaN never wins, ties go to the first element in row-major
order, and a window without any element above the lowest value (all -inf or NaN) outputs the
lowest value with its gradient on the window's first element.  The argmax of a window is the
flat index (ih * W + iw) * C + c of its maximum inside the image, an int32 (the wrapper refuses
images of 2**31 elements or more for the argmax paths).
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.float cimport DBL_MAX, FLT_MAX
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int32_t

cdef extern from "pool.h" nogil:
    ctypedef struct fc_window:
        ptrdiff_t H, W, C, OH, OW, kh, kw, sh, sw, pt, pl
    ctypedef struct fc_pool_rows:
        void (*max_f)(const fc_window *, const float *, ptrdiff_t, float, float *, int32_t *) noexcept nogil
        void (*max_d)(const fc_window *, const double *, ptrdiff_t, double, double *, int32_t *) noexcept nogil
        void (*avg_f)(const fc_window *, const float *, ptrdiff_t, float *) noexcept nogil
        void (*avg_d)(const fc_window *, const double *, ptrdiff_t, double *) noexcept nogil
        ptrdiff_t (*grad_f)(const fc_window *, const float *, const int32_t *, ptrdiff_t, float *) noexcept nogil
        ptrdiff_t (*grad_d)(const fc_window *, const double *, const int32_t *, ptrdiff_t, double *) noexcept nogil
    fc_pool_rows fc_select_pool_rows()


cdef fc_window make_window(ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW, tuple geom):
    """geom = (kh, kw, sh, sw, pt, pl)."""
    cdef fc_window g
    g.H, g.W, g.C, g.OH, g.OW = H, W, C, OH, OW
    g.kh, g.kw, g.sh, g.sw, g.pt, g.pl = geom
    return g


@cython.boundscheck(False)
@cython.wraparound(False)
def max_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, int32_t[:, :, :, ::1] argmax,
             tuple geom, int n_threads):
    """y = window maxima of x; argmax (or None) gets the flat index of each maximum in its image."""
    cdef fc_window g = make_window(x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2], geom)
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = x.shape[0]
    cdef ptrdiff_t row, n, oh
    cdef int32_t *arg
    if y.size == 0 or g.C == 0:
        return
    for row in prange(N * g.OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.OH
        oh = row - n * g.OH
        arg = &argmax[n, oh, 0, 0] if argmax is not None else NULL
        if floating is float:
            rows.max_f(&g, &x[n, 0, 0, 0], oh, -FLT_MAX, &y[n, oh, 0, 0], arg)
        else:
            rows.max_d(&g, &x[n, 0, 0, 0], oh, -DBL_MAX, &y[n, oh, 0, 0], arg)


@cython.boundscheck(False)
@cython.wraparound(False)
def avg_pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y, tuple geom, int n_threads):
    """y = mean of each window over its real (non-padded) elements."""
    cdef fc_window g = make_window(x.shape[1], x.shape[2], x.shape[3], y.shape[1], y.shape[2], geom)
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = x.shape[0]
    cdef ptrdiff_t row, n, oh
    if y.size == 0 or g.C == 0:
        return
    for row in prange(N * g.OH, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.OH
        oh = row - n * g.OH
        if floating is float:
            rows.avg_f(&g, &x[n, 0, 0, 0], oh, &y[n, oh, 0, 0])
        else:
            rows.avg_d(&g, &x[n, 0, 0, 0], oh, &y[n, oh, 0, 0])


@cython.boundscheck(False)
@cython.wraparound(False)
def pool_backward(const floating[:, :, :, ::1] grad, const int32_t[:, :, :, ::1] argmax,
                  floating[:, :, :, ::1] dx, tuple geom, int n_threads):
    """Input gradient of pooling, one input row per task (a gather over the covering windows).

    With ``argmax`` (max pooling): dx = the sum of grad over the windows whose argmax is this
    element.  With ``argmax=None`` (average pooling): dx = the sum over the covering windows of
    grad / (real elements of the window).  Returns how many argmax entries named an element of
    their own window: all of them (grad.size) for a genuine argmax, fewer for a foreign one.
    """
    cdef fc_window g = make_window(dx.shape[1], dx.shape[2], dx.shape[3], grad.shape[1], grad.shape[2], geom)
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = dx.shape[0]
    cdef ptrdiff_t row, n, ih
    cdef ptrdiff_t matched = 0
    cdef const int32_t *arg
    if dx.size == 0:
        return 0
    if grad.size == 0:
        dx[...] = 0
        return 0
    for row in prange(N * g.H, nogil=True, schedule="static", num_threads=n_threads):
        n = row // g.H
        ih = row - n * g.H
        arg = &argmax[n, 0, 0, 0] if argmax is not None else NULL
        if floating is float:
            matched += rows.grad_f(&g, &grad[n, 0, 0, 0], arg, ih, &dx[n, ih, 0, 0])
        else:
            matched += rows.grad_d(&g, &grad[n, 0, 0, 0], arg, ih, &dx[n, ih, 0, 0])
    return matched
