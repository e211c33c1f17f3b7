"""Pooling kernels: max and average, forward and backward, NHWC.

Private module: fastconv/pooling.py validates the arguments, builds the typed geometry of the
pooling (:class:`PoolPlan`, an ``fc_window`` of fastconv/_kernels/pool.h with the batch size and
the threads) and allocates the outputs; every kernel checks its buffers against the plan before it
releases the GIL.  The rows are computed by the C functions of fastconv/_kernels/pool_impl.h (vector
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


cdef class PoolPlan:
    """The geometry of one pooling: input (N, H, W, C), output (N, OH, OW, C), window (kh, kw),
    strides (sh, sw), padding (top, left), and the threads of every call."""
    cdef fc_window g
    cdef ptrdiff_t N
    cdef readonly int n_threads

    def __init__(self, input_nhwc, output_nhwc, ksize, strides, pads, int n_threads):
        cdef fc_window *g = &self.g
        self.N, g.H, g.W, g.C = input_nhwc
        n_out, g.OH, g.OW, c_out = output_nhwc
        g.kh, g.kw = ksize
        g.sh, g.sw = strides
        g.pt, g.pl = pads
        if (n_out != self.N or c_out != g.C or min(self.N, g.H, g.W, g.C, g.OH, g.OW) < 0
                or min(g.kh, g.kw, g.sh, g.sw) < 1 or g.pt < 0 or g.pl < 0 or g.pt >= g.kh or g.pl >= g.kw):
            raise ValueError(f"PoolPlan: no pooling has input {tuple(input_nhwc)}, output {tuple(output_nhwc)}, "
                             f"window {tuple(ksize)}, strides {tuple(strides)}, padding {tuple(pads)}")
        if n_threads < 1:
            raise ValueError(f"PoolPlan: n_threads must be positive. Received: n_threads={n_threads}")
        self.n_threads = n_threads

    @property
    def input_shape(self):
        return (self.N, self.g.H, self.g.W, self.g.C)

    @property
    def output_shape(self):
        return (self.N, self.g.OH, self.g.OW, self.g.C)


cdef int check_shape(str kernel, str name, const Py_ssize_t *shape, tuple expected) except -1:
    actual = tuple([shape[i] for i in range(4)])
    if actual != expected:
        raise ValueError(f"fastconv._pooling.{kernel}: {name} has shape {actual}; the plan needs {expected}")
    return 0


def max_pool(PoolPlan plan, const floating[:, :, :, ::1] x not None, floating[:, :, :, ::1] y not None,
             int32_t[:, :, :, ::1] argmax=None):
    """y = window maxima of x; argmax (or None) gets the flat index of each maximum in its image."""
    check_shape("max_pool", "x", x.shape, plan.input_shape)
    check_shape("max_pool", "y", y.shape, plan.output_shape)
    if argmax is not None:
        check_shape("max_pool", "argmax", argmax.shape, plan.output_shape)
    cdef fc_window g = plan.g
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = plan.N
    cdef int n_threads = plan.n_threads
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


def avg_pool(PoolPlan plan, const floating[:, :, :, ::1] x not None, floating[:, :, :, ::1] y not None):
    """y = mean of each window over its real (non-padded) elements."""
    check_shape("avg_pool", "x", x.shape, plan.input_shape)
    check_shape("avg_pool", "y", y.shape, plan.output_shape)
    cdef fc_window g = plan.g
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = plan.N
    cdef int n_threads = plan.n_threads
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


def pool_backward(PoolPlan plan, const floating[:, :, :, ::1] grad not None, const int32_t[:, :, :, ::1] argmax,
                  floating[:, :, :, ::1] dx not None):
    """Input gradient of pooling, one input row per task (a gather over the covering windows).

    With ``argmax`` (max pooling): dx = the sum of grad over the windows whose argmax is this
    element.  With ``argmax=None`` (average pooling): dx = the sum over the covering windows of
    grad / (real elements of the window).  Returns how many argmax entries named an element of
    their own window: all of them (grad.size) for a genuine argmax, fewer for a foreign one.
    """
    check_shape("pool_backward", "grad", grad.shape, plan.output_shape)
    check_shape("pool_backward", "dx", dx.shape, plan.input_shape)
    if argmax is not None:
        check_shape("pool_backward", "argmax", argmax.shape, plan.output_shape)
    cdef fc_window g = plan.g
    cdef fc_pool_rows rows = fc_select_pool_rows()
    cdef ptrdiff_t N = plan.N
    cdef int n_threads = plan.n_threads
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
