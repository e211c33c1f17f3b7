"""Affine warp of NHWC images: nearest or bilinear interpolation, four fill modes.

Private module: fastconv/image.py validates the arguments (finite matrices, order 0 or 1, a known
fill mode), makes the arrays contiguous and allocates the output; bounds checks are off here
because of that (a FASTCONV_DEBUG=1 build turns them on).

Output pixel (i, j) of image n reads the input at the position (the inverse map, "pull", as
scipy.ndimage.affine_transform does)

    r = m[n, 0, 0] * i + m[n, 0, 1] * j + m[n, 0, 2]      (row)
    c = m[n, 1, 0] * i + m[n, 1, 1] * j + m[n, 1, 2]      (column)

Positions outside the image follow SciPy's fill modes, which are what Keras's ImageDataGenerator
uses (it calls scipy.ndimage.affine_transform), one axis of length n at a time:

    constant  a position outside [0, n - 1] on either axis gives cval (no blending at the border)
    nearest   the position is clamped to [0, n - 1]
    reflect   the image is extended by half-sample symmetry (d c b a | a b c d | d c b a),
              period 2n; the position is mirrored into (-1, n) before it is rounded
    wrap      SciPy's 'wrap': the position is wrapped with period n - 1, so that the first and
              the last pixel coincide (not the period-n 'grid-wrap')

Bilinear interpolation (order 1) weighs the four neighbours of (r, c) by (1 - fr, fr) x (1 - fc, fc)
and sums in double precision, as SciPy does; order 0 takes the pixel at floor(position + 0.5).  The positions
are reduced into range before they are floored (fmod for reflect and wrap, clamping for nearest),
so no float-to-integer conversion can overflow, whatever the matrix.

Each output row of each image is one task of the OpenMP loop: every output pixel is written by one
thread from read-only input, so the result does not depend on the number of threads.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fmod
from libc.stddef cimport ptrdiff_t

# Fill modes, in the codes fastconv/image.py passes.
cdef enum:
    FILL_CONSTANT = 0
    FILL_NEAREST = 1
    FILL_REFLECT = 2
    FILL_WRAP = 3


cdef struct Taps:
    ptrdiff_t lo, hi    # the two input indices along one axis (hi == lo for order 0)
    double w_hi         # weight of hi; lo weighs 1 - w_hi
    bint outside        # constant mode: the position lies outside the image


cdef inline ptrdiff_t clamp_index(ptrdiff_t k, ptrdiff_t n) noexcept nogil:
    return 0 if k < 0 else (n - 1 if k > n - 1 else k)


cdef inline ptrdiff_t floor_index(double p) noexcept nogil:
    """floor(p) for |p| well inside the range of ptrdiff_t, without a call to libm's floor (which
    baseline x86-64 cannot inline)."""
    cdef ptrdiff_t k = <ptrdiff_t>p
    return k - 1 if p < <double>k else k


cdef inline Taps axis_taps(double p, ptrdiff_t n, int mode, int order) noexcept nogil:
    """Where position p of an axis of length n reads, and with which weights (returned by value:
    a prange body must assign its per-thread variables itself)."""
    cdef Taps t
    cdef double last = <double>(n - 1)
    cdef double period
    cdef ptrdiff_t k
    t.outside = False
    t.w_hi = 0.0
    if mode == FILL_CONSTANT:
        if p < 0.0 or p > last:
            t.outside = True
            t.lo = 0
            t.hi = 0
            return t
    elif mode == FILL_NEAREST:
        p = 0.0 if p < 0.0 else (last if p > last else p)
    elif mode == FILL_WRAP:
        if n == 1:
            p = 0.0
        elif p < 0.0:
            p = last - fmod(-p, last)
        elif p > last:
            p = fmod(p, last)
    else:
        # FILL_REFLECT: reduce into [0, 2n), then mirror about n - 1/2 into (-1, n), as SciPy
        # does before it rounds (so an order-0 tie goes the way SciPy's does).  The neighbours
        # -1 and n that remain are the mirror images of 0 and n - 1: clamping finds them.
        period = 2.0 * n
        if p < 0.0 or p >= period:
            p = fmod(p, period)
            if p < 0.0:
                p = p + period
        if p >= n:
            p = period - 1.0 - p
    # Here p lies in (-1, n): any neighbour outside [0, n - 1] is a clamped one (nearest,
    # reflect) or has weight 0 (constant, wrap).
    if order == 0:
        t.lo = clamp_index(floor_index(p + 0.5), n)
        t.hi = t.lo
        return t
    k = floor_index(p)
    t.w_hi = p - <double>k
    t.lo = clamp_index(k, n)
    t.hi = clamp_index(k + 1, n)
    return t


@cython.boundscheck(False)
@cython.wraparound(False)
def affine_warp(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out, const double[:, :, ::1] m,
                int order, int mode, double cval, int n_threads):
    """out[n, i, j, :] = x[n] interpolated at m[n] @ (i, j, 1); see the module docstring."""
    cdef ptrdiff_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef ptrdiff_t OH = out.shape[1], OW = out.shape[2]
    cdef ptrdiff_t task, n, i, j, ch
    cdef double a00, a01, a02, a10, a11, a12
    cdef Taps tr, tc
    cdef double w00, w01, w10, w11
    cdef const floating *img
    cdef const floating *p00
    cdef const floating *p01
    cdef const floating *p10
    cdef const floating *p11
    cdef floating *o
    cdef floating fill = <floating>cval
    if out.size == 0:
        return
    if H == 0 or W == 0 or out.shape[0] != N or out.shape[3] != C or m.shape[0] != N:
        raise ValueError(f"affine_warp: buffers do not fit: input {tuple(x.shape)[:4]}, output "
                         f"{tuple(out.shape)[:4]}, {m.shape[0]} matrices")
    for task in prange(N * OH, nogil=True, schedule="static", num_threads=n_threads):
        n = task // OH
        i = task - n * OH
        a00 = m[n, 0, 0]
        a01 = m[n, 0, 1]
        a02 = m[n, 0, 2]
        a10 = m[n, 1, 0]
        a11 = m[n, 1, 1]
        a12 = m[n, 1, 2]
        img = &x[n, 0, 0, 0]
        for j in range(OW):
            # The position in SciPy's order of operations, so that it rounds as SciPy's does.
            tr = axis_taps(a00 * i + a01 * j + a02, H, mode, order)
            tc = axis_taps(a10 * i + a11 * j + a12, W, mode, order)
            o = &out[n, i, j, 0]
            if tr.outside or tc.outside:
                for ch in range(C):
                    o[ch] = fill
            elif order == 0:
                p00 = img + (tr.lo * W + tc.lo) * C
                for ch in range(C):
                    o[ch] = p00[ch]
            else:
                w00 = (1.0 - tr.w_hi) * (1.0 - tc.w_hi)
                w01 = (1.0 - tr.w_hi) * tc.w_hi
                w10 = tr.w_hi * (1.0 - tc.w_hi)
                w11 = tr.w_hi * tc.w_hi
                p00 = img + (tr.lo * W + tc.lo) * C
                p01 = img + (tr.lo * W + tc.hi) * C
                p10 = img + (tr.hi * W + tc.lo) * C
                p11 = img + (tr.hi * W + tc.hi) * C
                for ch in range(C):
                    o[ch] = <floating>(p00[ch] * w00 + p01[ch] * w01 + p10[ch] * w10 + p11[ch] * w11)
