"""Depthwise convolution kernels: forward, input gradient and filter gradient, NHWC.

Private module: fastconv/depthwise.py validates the arguments, normalises layouts to C-contiguous
NHWC, computes the geometry and allocates the outputs; these kernels compute, with the GIL
released, after checking that the buffers they are given agree with each other (a wrong call
raises instead of reading or writing out of bounds; every source index is also checked against
the source's extent, so any output size is safe).

With C input channels and depth multiplier M, output channel j = c * M + m is input channel c
convolved with its own filter w[:, :, c, m]: the filters, read flat as w[kh, kw, C * M], share the
output's channel index.  The rows are computed by the C functions of
fastconv/_kernels/depthwise_impl.h, vectorised along that contiguous channel axis (AVX-512,
AVX2+FMA or the baseline, chosen at run time); for M > 1 each thread first expands the input rows
it reads (channel c repeated M times, a row of C * M channels), and the input gradient sums the
M channels of each input channel back.

Geometry (fc_dw_axis in depthwise.h): destination d and tap t read source
s = (d * up + off0 + t * tstep) / down when the division is exact and 0 <= s < src.

Parallel tasks are rows: output rows (forward), input rows (input gradient: a gather, so every
element is written by one thread), and for the filter gradient a fixed number of slices of the
output rows, each summed into its own partial filter, then added in order.  None of these
depend on the thread count, so results are bitwise identical for any number of threads.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport free, malloc

from fastconv._omp cimport omp_get_thread_num
from fastconv._slices cimport MAX_SLICES, PARTIALS_BYTES

cdef extern from "depthwise.h" nogil:
    ctypedef struct fc_dw_axis:
        ptrdiff_t dst, src, taps, up, down, off0, tstep
    ptrdiff_t fc_dw_taps(const fc_dw_axis *ax, ptrdiff_t d, ptrdiff_t *tap, ptrdiff_t *src)
    ctypedef struct fc_dw_kernels:
        void (*row_f)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const float **, const float *,
                      ptrdiff_t, const float *, int, float *, ptrdiff_t *) noexcept nogil
        void (*row_d)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const double **, const double *,
                      ptrdiff_t, const double *, int, double *, ptrdiff_t *) noexcept nogil
        void (*filter_f)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const float **, const float *,
                         ptrdiff_t, float *) noexcept nogil
        void (*filter_d)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const double **, const double *,
                         ptrdiff_t, double *) noexcept nogil
    fc_dw_kernels fc_select_dw()
    int FC_DW_LINEAR, FC_DW_RELU, FC_DW_RELU6

ACTIVATIONS = {None: FC_DW_LINEAR, "relu": FC_DW_RELU, "relu6": FC_DW_RELU6}


cdef int check_buffers(str kernel, tuple geom, ptrdiff_t C, ptrdiff_t M, ptrdiff_t CM, ptrdiff_t filter_size,
                       ptrdiff_t bias_size, int n_threads) except -1:
    """The buffers of one call agree: CM = C * M channels, a filter of kh * kw * CM values, a bias
    of CM (or none: -1), positive window sizes, strides and dilations, and at least one thread."""
    if len(geom) != 8:
        raise ValueError(f"fastconv._depthwise.{kernel}: geom must be (kh, kw, sh, sw, dh, dw, pt, pl); got {geom}")
    kh, kw, sh, sw, dh, dw = geom[:6]
    if min(kh, kw, sh, sw, dh, dw, M, n_threads) < 1:
        raise ValueError(f"fastconv._depthwise.{kernel}: window, strides, dilations, depth multiplier and threads "
                         f"must be positive; got geom {geom}, M={M}, n_threads={n_threads}")
    if CM != C * M or filter_size != kh * kw * CM or (bias_size >= 0 and bias_size != CM):
        raise ValueError(f"fastconv._depthwise.{kernel}: {C} input channels x depth multiplier {M} do not match "
                         f"{CM} output channels, a filter of {filter_size} values for a {kh}x{kw} window or a bias "
                         f"of {bias_size}")
    return 0


cdef fc_dw_axis make_axis(ptrdiff_t dst, ptrdiff_t src, ptrdiff_t taps, ptrdiff_t up, ptrdiff_t down,
                          ptrdiff_t off0, ptrdiff_t tstep):
    cdef fc_dw_axis a
    a.dst, a.src, a.taps, a.up, a.down, a.off0, a.tstep = dst, src, taps, up, down, off0, tstep
    return a


cdef struct Scratch:
    # Per-thread lists of one row: vertical taps, their source rows, filter row offsets and row
    # pointers, the row kernel's horizontal lists, and (M > 1) the expanded rows.
    ptrdiff_t *vtap
    ptrdiff_t *vsrc
    ptrdiff_t *wrow
    void **rows
    ptrdiff_t *hscratch
    void *buffer


cdef struct Buffers:
    ptrdiff_t *lists     # scratch_words(kh, kw) per thread
    char *rows           # row_bytes per thread (M > 1), else NULL
    ptrdiff_t row_bytes


cdef class Workspace:
    """Per-thread tap lists and row buffers, freed with the object."""
    cdef Buffers b

    def __cinit__(self, int n_threads, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t row_bytes):
        self.b.row_bytes = row_bytes
        self.b.lists = <ptrdiff_t *>malloc(sizeof(ptrdiff_t) * scratch_words(kh, kw) * n_threads)
        self.b.rows = <char *>malloc(row_bytes * n_threads) if row_bytes > 0 else NULL
        if self.b.lists == NULL or (row_bytes > 0 and self.b.rows == NULL):
            raise MemoryError("fastconv: no memory for the depthwise convolution's row buffers")

    def __dealloc__(self):
        free(self.b.lists)
        free(self.b.rows)


cdef inline ptrdiff_t scratch_words(ptrdiff_t kh, ptrdiff_t kw) noexcept nogil:
    return 4 * kh + 4 * kw


cdef inline Scratch thread_scratch(Buffers b, ptrdiff_t kh, ptrdiff_t kw) noexcept nogil:
    cdef int t = omp_get_thread_num()
    cdef Scratch s
    s.vtap = b.lists + t * scratch_words(kh, kw)
    s.vsrc = s.vtap + kh
    s.wrow = s.vsrc + kh
    s.rows = <void **>(s.wrow + kh)
    s.hscratch = s.wrow + 2 * kh
    s.buffer = b.rows + t * b.row_bytes if b.rows != NULL else NULL
    return s


cdef inline void expand_row(const floating *src, ptrdiff_t W, ptrdiff_t C, ptrdiff_t M,
                            floating *dst) noexcept nogil:
    """dst[iw, c * M + m] = src[iw, c]: an input row with each channel repeated M times."""
    cdef ptrdiff_t i, m
    for i in range(W * C):
        for m in range(M):
            dst[i * M + m] = src[i]


cdef inline void source_rows(Scratch *s, ptrdiff_t nv, const floating *img, ptrdiff_t W, ptrdiff_t C,
                             ptrdiff_t M, ptrdiff_t kw) noexcept nogil:
    """Row pointers (expanded when M > 1) and filter row offsets of the nv vertical taps."""
    cdef ptrdiff_t i
    cdef floating *buf = <floating *>s.buffer
    for i in range(nv):
        s.wrow[i] = s.vtap[i] * kw * C * M
        if M == 1:
            s.rows[i] = <void *>(img + s.vsrc[i] * W * C)
        else:
            expand_row(img + s.vsrc[i] * W * C, W, C, M, buf + i * W * C * M)
            s.rows[i] = <void *>(buf + i * W * C * M)


@cython.boundscheck(False)
@cython.wraparound(False)
def forward(const floating[:, :, :, ::1] x, const floating[::1] w, const floating[::1] bias,
            floating[:, :, :, ::1] y, tuple geom, ptrdiff_t M, int act, int n_threads):
    """y[n, oh, ow, c * M + m] = act(bias + sum over taps of x[n, ih, iw, c] * w[a, b, c, m]).

    ``w`` is the filter [kh, kw, C, M] flat, ``bias`` None or C * M values, ``act`` a value of
    ACTIVATIONS, ``geom`` = (kh, kw, sh, sw, dh, dw, pt, pl).
    """
    cdef ptrdiff_t kh, kw, sh, sw, dh, dw, pt, pl
    cdef ptrdiff_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef ptrdiff_t OH = y.shape[1], OW = y.shape[2], CM = y.shape[3]
    check_buffers("forward", geom, C, M, CM, w.shape[0], bias.shape[0] if bias is not None else -1, n_threads)
    kh, kw, sh, sw, dh, dw, pt, pl = geom
    if y.shape[0] != N:
        raise ValueError(f"fastconv._depthwise.forward: batch of {N} inputs, {y.shape[0]} outputs")
    cdef fc_dw_axis ah = make_axis(OH, H, kh, sh, 1, -pt, dh)
    cdef fc_dw_axis aw = make_axis(OW, W, kw, sw, 1, -pl, dw)
    cdef fc_dw_kernels k = fc_select_dw()
    cdef Workspace ws = Workspace(n_threads, kh, kw, kh * W * CM * sizeof(floating) if M > 1 else 0)
    cdef Buffers buf = ws.b
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef ptrdiff_t row, n, oh, nv
    cdef Scratch s
    if y.size == 0:
        return
    for row in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        s = thread_scratch(buf, kh, kw)
        n = row // OH
        oh = row - n * OH
        nv = fc_dw_taps(&ah, oh, s.vtap, s.vsrc)
        source_rows(&s, nv, &x[n, 0, 0, 0], W, C, M, kw)
        if floating is float:
            k.row_f(&aw, nv, s.wrow, <const float **>s.rows, &w[0], CM, bias_ptr, act, &y[n, oh, 0, 0], s.hscratch)
        else:
            k.row_d(&aw, nv, s.wrow, <const double **>s.rows, &w[0], CM, bias_ptr, act, &y[n, oh, 0, 0], s.hscratch)


@cython.boundscheck(False)
@cython.wraparound(False)
def backprop_input(const floating[:, :, :, ::1] dy, const floating[::1] w, floating[:, :, :, ::1] dx,
                   tuple geom, ptrdiff_t M, int n_threads):
    """dx[n, ih, iw, c] = sum over m and over the outputs (oh, ow) whose tap (a, b) reads
    (ih, iw) of dy[n, oh, ow, c * M + m] * w[a, b, c, m]: one input row per task, gathered."""
    cdef ptrdiff_t kh, kw, sh, sw, dh, dw, pt, pl
    cdef ptrdiff_t N = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef ptrdiff_t OH = dy.shape[1], OW = dy.shape[2], CM = dy.shape[3]
    check_buffers("backprop_input", geom, C, M, CM, w.shape[0], -1, n_threads)
    kh, kw, sh, sw, dh, dw, pt, pl = geom
    if dy.shape[0] != N:
        raise ValueError(f"fastconv._depthwise.backprop_input: batch of {dy.shape[0]} gradients, {N} inputs")
    cdef fc_dw_axis ah = make_axis(H, OH, kh, 1, sh, pt, -dh)
    cdef fc_dw_axis aw = make_axis(W, OW, kw, 1, sw, pl, -dw)
    cdef fc_dw_kernels k = fc_select_dw()
    cdef Workspace ws = Workspace(n_threads, kh, kw, W * CM * sizeof(floating) if M > 1 else 0)
    cdef Buffers buf = ws.b
    cdef ptrdiff_t row, n, ih, nv, i, m
    cdef floating acc
    cdef floating *dst
    cdef floating *dx_row
    cdef const floating *dy_img
    cdef Scratch s
    if dx.size == 0:
        return
    for row in prange(N * H, nogil=True, schedule="static", num_threads=n_threads):
        s = thread_scratch(buf, kh, kw)
        n = row // H
        ih = row - n * H
        nv = fc_dw_taps(&ah, ih, s.vtap, s.vsrc)
        dy_img = &dy[n, 0, 0, 0]
        for i in range(nv):
            s.wrow[i] = s.vtap[i] * kw * CM
            s.rows[i] = <void *>(dy_img + s.vsrc[i] * OW * CM)
        dx_row = &dx[n, ih, 0, 0]
        dst = dx_row if M == 1 else <floating *>s.buffer
        if floating is float:
            k.row_f(&aw, nv, s.wrow, <const float **>s.rows, &w[0], CM, NULL, FC_DW_LINEAR, dst, s.hscratch)
        else:
            k.row_d(&aw, nv, s.wrow, <const double **>s.rows, &w[0], CM, NULL, FC_DW_LINEAR, dst, s.hscratch)
        if M > 1:
            for i in range(W * C):
                acc = dst[i * M]
                for m in range(1, M):
                    acc = acc + dst[i * M + m]
                dx_row[i] = acc


def filter_grad_slices(ptrdiff_t n_rows, ptrdiff_t filter_size, int itemsize):
    """How many partial filters the filter gradient sums ``n_rows`` output rows into."""
    cdef ptrdiff_t by_memory = PARTIALS_BYTES // (filter_size * itemsize) if filter_size > 0 else MAX_SLICES
    cdef ptrdiff_t g = MAX_SLICES if MAX_SLICES < n_rows else n_rows
    if by_memory < g:
        g = by_memory
    return g if g > 1 else 1


@cython.boundscheck(False)
@cython.wraparound(False)
def backprop_filter(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    floating[:, ::1] partials, floating[::1] dw, tuple geom, ptrdiff_t M, int n_threads):
    """dw[a, b, c, m] (flat) = sum over n, oh, ow of x[n, ih, iw, c] * dy[n, oh, ow, c * M + m].

    The N * OH output rows are cut into ``partials.shape[0]`` slices; each slice sums its rows
    into its own row of ``partials``, and the slices are then added in order into ``dw``.
    """
    cdef ptrdiff_t kh, kw, sh, sw, dh, dwl, pt, pl
    cdef ptrdiff_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef ptrdiff_t OH = dy.shape[1], OW = dy.shape[2], CM = dy.shape[3]
    cdef ptrdiff_t G = partials.shape[0], K = partials.shape[1]
    check_buffers("backprop_filter", geom, C, M, CM, K, -1, n_threads)
    kh, kw, sh, sw, dh, dwl, pt, pl = geom
    if dy.shape[0] != N or dw.shape[0] != K or G < 1:
        raise ValueError(f"fastconv._depthwise.backprop_filter: batch of {N} inputs and {dy.shape[0]} gradients, "
                         f"a filter of {dw.shape[0]} values for partials of {K}, {G} slices")
    cdef fc_dw_axis ah = make_axis(OH, H, kh, sh, 1, -pt, dh)
    cdef fc_dw_axis aw = make_axis(OW, W, kw, sw, 1, -pl, dwl)
    cdef fc_dw_kernels k = fc_select_dw()
    cdef Workspace ws = Workspace(n_threads, kh, kw, kh * W * CM * sizeof(floating) if M > 1 else 0)
    cdef Buffers buf = ws.b
    cdef ptrdiff_t rows = N * OH
    cdef ptrdiff_t g, slice_, row, n, oh, nv, i
    cdef floating *part
    cdef Scratch s
    for g in prange(G, nogil=True, schedule="static", num_threads=n_threads):
        s = thread_scratch(buf, kh, kw)
        part = &partials[g, 0]
        for i in range(K):
            part[i] = 0
        for row in range(g * rows // G, (g + 1) * rows // G):
            n = row // OH
            oh = row - n * OH
            nv = fc_dw_taps(&ah, oh, s.vtap, s.vsrc)
            source_rows(&s, nv, &x[n, 0, 0, 0], W, C, M, kw)
            if floating is float:
                k.filter_f(&aw, nv, s.wrow, <const float **>s.rows, &dy[n, oh, 0, 0], CM, part)
            else:
                k.filter_d(&aw, nv, s.wrow, <const double **>s.rows, &dy[n, oh, 0, 0], CM, part)
    # The slices in order, on this thread: K * G additions, less than waking the others costs.
    with nogil:
        for i in range(K):
            dw[i] = partials[0, i]
        for slice_ in range(1, G):
            for i in range(K):
                dw[i] = dw[i] + partials[slice_, i]
