"""Convolution kernels: forward, input gradient and filter gradient, direct and im2col.

Private module: fastconv/conv.py validates every argument, normalises layouts to C-contiguous
NHWC, computes the output geometry and allocates the outputs; these kernels only compute, with
the GIL released, and trust the shapes they are given (bounds checks are off for that reason; a
``FASTCONV_DEBUG=1`` build turns them back on).

Every kernel is a loop of calls to one register-tiled micro-kernel (fastconv/_kernels/tile.h)::

    C[m x nc] (=|+=) sum over taps t, steps k of  A_t[r, k] * B_t[k, j]

and differs only in what A, B and C are:

=====================  ==================================  ====================  ===============
kernel                 rows r of C (broadcast from A)      columns j (from B)    reduction k
=====================  ==================================  ====================  ===============
direct (fwd, dX)       destination pixels of one row        output channels       taps x channels
im2col forward         pixels, from a packed patch matrix   output channels       kh * kw * Cin
im2col input grad      pixels of dY; then col2im            kh * kw * Cin         Cout
direct filter grad     input channels of one tap            output channels       pixels of a row
im2col filter grad     kh * kw * Cin (patch matrix)         output channels       pixels
=====================  ==================================  ====================  ===============

B is always a packed panel: ``nr`` columns contiguous per reduction step, padded with zeros to a
multiple of ``nr`` (see :func:`pack_panels`).  Work is split over OpenMP threads in blocks that do
not depend on the number of threads, and each output element is summed by one thread in a fixed
order, so results are bitwise identical for any thread count.

Geometry.  Along one spatial axis a destination index d and a tap t read the source index

    s = (d * up + off0 + t * tstep) / down,  valid when the division is exact and 0 <= s < src.

Forward convolution: up = stride, down = 1, off0 = -pad_before, tstep = dilation.
Input gradient (a transposed convolution, gathered): up = 1, down = stride, off0 = pad_before,
tstep = -dilation, i.e. dX[i] collects dY[o] for every o with o * stride + t * dilation - pad = i.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._omp cimport omp_get_thread_num
from fastconv._tile cimport fc_kernel, fc_select_kernel

# Working set of one packed patch block (im2col): a few hundred KiB, so that it stays in the L2
# cache of a core while every block of output channels is multiplied with it.
cdef enum:
    IM2COL_BLOCK_BYTES = 196608


cdef struct Axis:
    ptrdiff_t dst      # destination extent
    ptrdiff_t src      # source extent
    ptrdiff_t taps     # filter extent
    ptrdiff_t up       # see the module docstring: s = (d * up + off0 + t * tstep) / down
    ptrdiff_t down
    ptrdiff_t off0
    ptrdiff_t tstep


cdef inline ptrdiff_t floor_div(ptrdiff_t a, ptrdiff_t b) noexcept nogil:
    """Floor division for b > 0 and any sign of a (C division truncates toward zero)."""
    cdef ptrdiff_t q = a / b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) noexcept nogil:
    return -floor_div(-a, b)


def kernel_shape(int itemsize, int n_cols):
    """(mr, nr): tile rows and packed panel width of the micro-kernel used for ``n_cols`` columns."""
    cdef fc_kernel k = fc_select_kernel(itemsize, n_cols)
    return k.mr, k.nr


def pack_panels(const floating[:, :, :] src, floating[::1] out, int nr):
    """Pack ``src[t, k, j]`` (any strides) into panels ``out[jb, t, k, 0:nr]``, zero padded.

    ``out`` has ``ceil(J / nr) * T * K * nr`` elements; column ``j`` lands in panel ``j // nr``.
    """
    cdef ptrdiff_t T = src.shape[0], K = src.shape[1], J = src.shape[2]
    cdef ptrdiff_t nblocks = (J + nr - 1) // nr
    cdef ptrdiff_t jb, t, k, j, col
    cdef floating *dst
    with nogil:
        for jb in range(nblocks):
            for t in range(T):
                for k in range(K):
                    dst = &out[((jb * T + t) * K + k) * nr]
                    for j in range(nr):
                        col = jb * nr + j
                        dst[j] = src[t, k, col] if col < J else 0


cdef inline int vertical_taps(const Axis *ax, ptrdiff_t y, ptrdiff_t *tap, ptrdiff_t *srow) noexcept nogil:
    """The taps of ``ax`` that read a valid source index for destination ``y``; returns their count."""
    cdef ptrdiff_t t, num
    cdef int n = 0
    for t in range(ax.taps):
        num = y * ax.up + ax.off0 + t * ax.tstep
        if num >= 0 and num % ax.down == 0 and num / ax.down < ax.src:
            tap[n] = t
            srow[n] = num / ax.down
            n += 1
    return n


@cython.boundscheck(False)
@cython.wraparound(False)
def direct(const floating[:, :, :, ::1] src, const floating[::1] packed,
           floating[:, :, :, ::1] dst, tuple geom_h, tuple geom_w,
           const floating[::1] bias, bint relu, int n_threads):
    """Direct convolution of ``src`` (N, Hs, Ws, Cs) into ``dst`` (N, Hd, Wd, Cd), NHWC.

    ``packed`` holds the filters as panels ``[jb, th, tw, cs, 0:nr]`` (see :func:`pack_panels`),
    ``geom_h`` and ``geom_w`` the (up, down, off0, tstep) of each axis (module docstring).
    ``bias`` (padded to a multiple of nr, or None) and ``relu`` form the epilogue.

    Each destination row is one task.  In a row, the columns fall into ``down`` phase classes
    (one when down == 1); in a class, column x0 + j * down reads source column base_t + j * up
    for each valid tap t, so an interior run of j where every tap is in range is cut into tiles
    of ``mr`` pixels, and the few border columns are done one by one with only their valid taps
    (the padding contributes nothing; the summation order of the taps is the same everywhere).
    """
    cdef Axis ah, aw
    ah.dst, ah.src, ah.taps = dst.shape[1], src.shape[1], geom_h[0]
    ah.up, ah.down, ah.off0, ah.tstep = geom_h[1], geom_h[2], geom_h[3], geom_h[4]
    aw.dst, aw.src, aw.taps = dst.shape[2], src.shape[2], geom_w[0]
    aw.up, aw.down, aw.off0, aw.tstep = geom_w[1], geom_w[2], geom_w[3], geom_w[4]

    cdef ptrdiff_t N = src.shape[0], cs = src.shape[3], cd = dst.shape[3]
    cdef fc_kernel kern = fc_select_kernel(sizeof(floating), <int>cd)
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr
    cdef ptrdiff_t nblocks = (cd + nr - 1) // nr
    cdef ptrdiff_t block_size = ah.taps * aw.taps * cs * nr
    cdef ptrdiff_t ntaps_max = ah.taps * aw.taps
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef const floating *src_base = &src[0, 0, 0, 0]
    cdef floating *dst_base = &dst[0, 0, 0, 0]
    cdef const floating *wp = &packed[0]

    cdef ptrdiff_t row, n, y, x0, ncls, J, j, jlo, jhi, jb, i, h, m, nv, nh, nt, num0, base, lo, hi, s, kc
    cdef bint merged
    cdef ptrdiff_t *vtap
    cdef ptrdiff_t *vsrc
    cdef ptrdiff_t *htap
    cdef ptrdiff_t *hbase
    cdef ptrdiff_t *a_off
    cdef ptrdiff_t *b_off
    cdef const floating *src_img
    cdef floating *dst_row
    cdef const floating *bias_blk

    if N == 0 or ah.dst == 0 or aw.dst == 0 or cd == 0:
        return
    # Per-thread lists of taps: vertical, horizontal, and their products (offsets into A and B).
    cdef ptrdiff_t per_thread = 2 * ah.taps + 2 * aw.taps + 2 * ntaps_max
    cdef ptrdiff_t *scratch = <ptrdiff_t *> malloc(sizeof(ptrdiff_t) * per_thread * n_threads)
    if scratch == NULL:
        raise MemoryError("fastconv: no memory for the tap lists of the direct convolution")
    try:
        for row in prange(N * ah.dst, nogil=True, schedule="static", num_threads=n_threads):
            vtap = scratch + omp_get_thread_num() * per_thread
            vsrc = vtap + ah.taps
            htap = vsrc + ah.taps
            hbase = htap + aw.taps
            a_off = hbase + aw.taps
            b_off = a_off + ntaps_max
            n = row // ah.dst
            y = row % ah.dst
            src_img = src_base + n * ah.src * aw.src * cs
            dst_row = dst_base + row * aw.dst * cd
            nv = vertical_taps(&ah, y, vtap, vsrc)
            ncls = aw.down if aw.down < aw.dst else aw.dst
            for x0 in range(ncls):
                J = (aw.dst - x0 + aw.down - 1) // aw.down
                # Horizontal taps of this phase class and the interior run [jlo, jhi).
                nh = 0
                jlo = 0
                jhi = J
                for h in range(aw.taps):
                    num0 = x0 * aw.up + aw.off0 + h * aw.tstep
                    base = floor_div(num0, aw.down)
                    if base * aw.down != num0:
                        continue
                    htap[nh] = h
                    hbase[nh] = base
                    nh = nh + 1
                    lo = ceil_div(-base, aw.up)
                    hi = floor_div(aw.src - 1 - base, aw.up) + 1
                    if lo > jlo:
                        jlo = lo
                    if hi < jhi:
                        jhi = hi
                if jlo > J:
                    jlo = J
                if jhi < jlo:
                    jhi = jlo
                # Interior: all nv * nh taps, tiles of mr pixels.  When the horizontal taps are
                # all there and read consecutive source columns (dilation 1, forward), one
                # pixel's KW taps are one contiguous run of KW * cs values, like the packed
                # filters of a row of taps: they merge into one tap of KW * cs steps (same
                # summation order, far fewer, longer inner loops for thin inputs).
                merged = aw.tstep == 1 and aw.down == 1 and nh == aw.taps
                kc = aw.taps * cs if merged else cs
                nt = 0
                for i in range(nv):
                    for h in range(1 if merged else nh):
                        a_off[nt] = (vsrc[i] * aw.src + hbase[h]) * cs
                        b_off[nt] = (vtap[i] * aw.taps + htap[h]) * cs * nr
                        nt = nt + 1
                for jb in range(nblocks):
                    bias_blk = bias_ptr + jb * nr if bias_ptr != NULL else NULL
                    j = jlo
                    while j < jhi:
                        m = jhi - j if jhi - j < mr else mr
                        kern.fn(<int>m, <int>nt, a_off, b_off, <int>kc,
                                src_img + j * aw.up * cs, aw.up * cs, 1, wp + jb * block_size,
                                dst_row + (x0 + j * aw.down) * cd + jb * nr, aw.down * cd,
                                <int>(cd - jb * nr if cd - jb * nr < nr else nr), 0, bias_blk, relu)
                        j = j + m
                # Border columns, one by one, with the taps that stay inside the source.
                for j in range(J):
                    if j >= jlo and j < jhi:
                        continue
                    nt = 0
                    for i in range(nv):
                        for h in range(nh):
                            s = hbase[h] + j * aw.up
                            if s >= 0 and s < aw.src:
                                a_off[nt] = (vsrc[i] * aw.src + s) * cs
                                b_off[nt] = (vtap[i] * aw.taps + htap[h]) * cs * nr
                                nt = nt + 1
                    for jb in range(nblocks):
                        bias_blk = bias_ptr + jb * nr if bias_ptr != NULL else NULL
                        kern.fn(1, <int>nt, a_off, b_off, <int>cs, src_img, 0, 1, wp + jb * block_size,
                                dst_row + (x0 + j * aw.down) * cd + jb * nr, 0,
                                <int>(cd - jb * nr if cd - jb * nr < nr else nr), 0, bias_blk, relu)
    finally:
        free(scratch)


cdef struct Patches:
    # The patch (im2col) matrix of a forward convolution: row p = (n, oh, ow) of the output,
    # column k = (kh, kw, c) of the filter, value src[n, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, c]
    # or 0 where that falls in the padding.
    ptrdiff_t H, W, C, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl


cdef inline void pack_patch_rows(const Patches *g, const floating *src, ptrdiff_t p0, ptrdiff_t count,
                                 floating *buf) noexcept nogil:
    """Write rows p0 .. p0 + count - 1 of the patch matrix into ``buf`` (count x KH*KW*C)."""
    # Local copies: the compiler cannot tell that the stores to buf leave *g alone.
    cdef ptrdiff_t H = g.H, W = g.W, C = g.C, OH = g.OH, OW = g.OW, KH = g.KH, KW = g.KW
    cdef ptrdiff_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, pt = g.pt, pl = g.pl
    cdef ptrdiff_t row_len = KW * C
    cdef ptrdiff_t p, kh, kw, ih, iw, iw0, c
    cdef ptrdiff_t n = p0 // (OH * OW)
    cdef ptrdiff_t oh = (p0 - n * OH * OW) // OW
    cdef ptrdiff_t ow = p0 - (n * OH + oh) * OW
    cdef floating *seg = buf
    cdef const floating *srow
    for p in range(count):
        # seg walks the patch row of pixel (n, oh, ow): KH runs of KW * C values.
        iw0 = ow * sw - pl
        for kh in range(KH):
            ih = oh * sh + kh * dh - pt
            if ih < 0 or ih >= H:
                for c in range(row_len):
                    seg[c] = 0
            elif dw == 1 and iw0 >= 0 and iw0 + KW <= W:
                # Undilated window inside the image: the KW taps are one contiguous run.
                srow = src + ((n * H + ih) * W + iw0) * C
                for c in range(row_len):
                    seg[c] = srow[c]
            else:
                srow = src + (n * H + ih) * W * C
                for kw in range(KW):
                    iw = iw0 + kw * dw
                    if iw < 0 or iw >= W:
                        for c in range(C):
                            seg[kw * C + c] = 0
                    else:
                        for c in range(C):
                            seg[kw * C + c] = srow[iw * C + c]
            seg += row_len
        ow += 1
        if ow == OW:
            ow = 0
            oh += 1
            if oh == OH:
                oh = 0
                n += 1


cdef Patches make_patches(ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t OH, ptrdiff_t OW, tuple geom):
    """The patch matrix of an (H, W, C) image convolved to (OH, OW); geom = (KH, KW, sh, sw, dh, dw, pt, pl)."""
    cdef Patches g
    g.H, g.W, g.C, g.OH, g.OW = H, W, C, OH, OW
    g.KH, g.KW, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = geom
    return g


cdef inline ptrdiff_t patch_block_rows(ptrdiff_t K, ptrdiff_t mr, size_t itemsize) noexcept nogil:
    """Rows of the patch matrix per block: a multiple of mr within IM2COL_BLOCK_BYTES (at least mr)."""
    cdef ptrdiff_t rows = IM2COL_BLOCK_BYTES // (K * <ptrdiff_t>itemsize) if K > 0 else mr
    rows = (rows // mr) * mr
    return rows if rows > mr else mr


@cython.boundscheck(False)
@cython.wraparound(False)
def im2col_forward(const floating[:, :, :, ::1] src, const floating[::1] packed,
                   floating[:, :, :, ::1] dst, tuple geom, const floating[::1] bias, bint relu,
                   int n_threads):
    """Forward convolution as patch matrix x packed filters, one block of patch rows at a time.

    ``geom`` is (KH, KW, sh, sw, dh, dw, pt, pl); ``packed`` the filters as panels
    ``[jb, k, 0:nr]`` with k = (kh, kw, c).  The output pixels of the whole batch, flattened, are
    cut into blocks of ``rows`` pixels (a fixed size, not per thread); each block's patch rows
    are packed into a per-thread buffer (bounded by IM2COL_BLOCK_BYTES, whatever the batch) and
    multiplied with every panel of filters, tiles of mr pixels by nr channels.
    """
    cdef Patches g = make_patches(src.shape[1], src.shape[2], src.shape[3],
                                     dst.shape[1], dst.shape[2], geom)
    cdef ptrdiff_t N = src.shape[0], cd = dst.shape[3]
    cdef ptrdiff_t K = g.KH * g.KW * g.C
    cdef ptrdiff_t M = N * g.OH * g.OW
    cdef fc_kernel kern = fc_select_kernel(sizeof(floating), <int>cd)
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr
    cdef ptrdiff_t nblocks = (cd + nr - 1) // nr
    cdef ptrdiff_t rows = patch_block_rows(K, mr, sizeof(floating))
    cdef ptrdiff_t nchunks = (M + rows - 1) // rows
    cdef const floating *bias_ptr = &bias[0] if bias is not None else NULL
    cdef const floating *bias_blk
    cdef ptrdiff_t chunk, p0, count, jb, r0, m
    cdef ptrdiff_t zero_off = 0
    cdef floating *buf
    if M == 0 or cd == 0:
        return
    cdef floating *work = <floating *> malloc(sizeof(floating) * rows * K * n_threads)
    if work == NULL:
        raise MemoryError("fastconv: no memory for the im2col buffers")
    try:
        for chunk in prange(nchunks, nogil=True, schedule="static", num_threads=n_threads):
            buf = work + omp_get_thread_num() * rows * K
            p0 = chunk * rows
            count = M - p0 if M - p0 < rows else rows
            pack_patch_rows(&g, &src[0, 0, 0, 0], p0, count, buf)
            for jb in range(nblocks):
                bias_blk = bias_ptr + jb * nr if bias_ptr != NULL else NULL
                r0 = 0
                while r0 < count:
                    m = count - r0 if count - r0 < mr else mr
                    kern.fn(<int>m, 1, &zero_off, &zero_off, <int>K, buf + r0 * K, K, 1,
                            &packed[jb * K * nr], &dst[0, 0, 0, 0] + (p0 + r0) * cd + jb * nr, cd,
                            <int>(cd - jb * nr if cd - jb * nr < nr else nr), 0, bias_blk, relu)
                    r0 = r0 + m
    finally:
        free(work)


cdef inline void pack_dy_panel(const floating *dy, ptrdiff_t count, ptrdiff_t cout, ptrdiff_t j0,
                               ptrdiff_t nr, floating *panel) noexcept nogil:
    """panel[p, 0:nr] = dy[p, j0:j0 + nr] for count pixels (rows of cout), zero past cout."""
    cdef ptrdiff_t p, j
    cdef ptrdiff_t width = cout - j0 if cout - j0 < nr else nr
    for p in range(count):
        for j in range(width):
            panel[p * nr + j] = dy[p * cout + j0 + j]
        for j in range(width, nr):
            panel[p * nr + j] = 0


@cython.boundscheck(False)
@cython.wraparound(False)
def im2col_backprop_input(const floating[:, :, :, ::1] dy, const floating[::1] packed_t,
                          floating[:, :, :, ::1] dx, tuple geom, int n_threads):
    """Input gradient as (dY x W^T) then col2im, one image per task.

    ``packed_t`` holds W^T as panels ``[kb, cout, 0:nr]`` over the columns k = (kh, kw, cin).  For
    a block of pixels of dY, the tiles compute the rows of the patch-matrix gradient
    dCols[p, k] = sum_o dY[p, o] W[k, o] into a per-thread buffer, and col2im adds each row back
    onto the input pixels its window covered (skipping the padding).  Windows of neighbouring
    pixels overlap, so an image is one task: no two threads ever add into the same dX element.
    """
    cdef Patches g = make_patches(dx.shape[1], dx.shape[2], dx.shape[3], dy.shape[1], dy.shape[2], geom)
    cdef ptrdiff_t N = dx.shape[0], cout = dy.shape[3]
    cdef ptrdiff_t K = g.KH * g.KW * g.C
    cdef ptrdiff_t P = g.OH * g.OW
    cdef fc_kernel kern = fc_select_kernel(sizeof(floating), <int>K)
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr
    cdef ptrdiff_t nblocks = (K + nr - 1) // nr
    cdef ptrdiff_t rows = patch_block_rows(K, mr, sizeof(floating))
    cdef ptrdiff_t n, p0, count, kb, r0, m, p, oh, ow, kh, kw, ih, iw, c
    cdef ptrdiff_t zero_off = 0
    cdef floating *buf
    cdef floating *img
    cdef floating *col
    cdef const floating *dy_img
    if N == 0 or K == 0:
        return
    cdef floating *work = <floating *> malloc(sizeof(floating) * rows * K * n_threads)
    if work == NULL:
        raise MemoryError("fastconv: no memory for the col2im buffers")
    try:
        for n in prange(N, nogil=True, schedule="static", num_threads=n_threads):
            buf = work + omp_get_thread_num() * rows * K
            img = &dx[n, 0, 0, 0]
            dy_img = &dy[0, 0, 0, 0] + n * P * cout
            for p in range(g.H * g.W * g.C):
                img[p] = 0
            p0 = 0
            while p0 < P:
                count = P - p0 if P - p0 < rows else rows
                for kb in range(nblocks):
                    r0 = 0
                    while r0 < count:
                        m = count - r0 if count - r0 < mr else mr
                        kern.fn(<int>m, 1, &zero_off, &zero_off, <int>cout, dy_img + (p0 + r0) * cout, cout, 1,
                                &packed_t[kb * cout * nr], buf + r0 * K + kb * nr, K,
                                <int>(K - kb * nr if K - kb * nr < nr else nr), 0, NULL, 0)
                        r0 = r0 + m
                # col2im: the gradient of each patch value goes back to the input pixel it was read from.
                for p in range(count):
                    oh = (p0 + p) // g.OW
                    ow = (p0 + p) - oh * g.OW
                    col = buf + p * K
                    for kh in range(g.KH):
                        ih = oh * g.sh + kh * g.dh - g.pt
                        if ih < 0 or ih >= g.H:
                            continue
                        for kw in range(g.KW):
                            iw = ow * g.sw + kw * g.dw - g.pl
                            if iw < 0 or iw >= g.W:
                                continue
                            for c in range(g.C):
                                img[(ih * g.W + iw) * g.C + c] += col[(kh * g.KW + kw) * g.C + c]
                p0 = p0 + rows
    finally:
        free(work)


cdef enum:
    # Partial sums of the filter gradient: at most this many slices of the batch, each summed by
    # one thread into its own copy of dW, then added up in slice order.  Fixed, so the result
    # does not depend on the number of threads; bounded in memory by PARTIALS_BYTES.
    MAX_SLICES = 16
    PARTIALS_BYTES = 33554432


def filter_grad_slices(ptrdiff_t n_rows, ptrdiff_t filter_size, int itemsize):
    """How many partial sums the filter gradient uses for ``n_rows`` output rows."""
    cdef ptrdiff_t by_memory = PARTIALS_BYTES // (filter_size * itemsize) if filter_size > 0 else MAX_SLICES
    cdef ptrdiff_t g = MAX_SLICES if MAX_SLICES < n_rows else n_rows
    if by_memory < g:
        g = by_memory
    return g if g > 1 else 1


@cython.boundscheck(False)
@cython.wraparound(False)
def backprop_filter(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                    floating[:, ::1] partials, floating[::1] dw, tuple geom, bint use_im2col,
                    int n_threads):
    """Filter gradient dW[(kh, kw, c), o] = sum over pixels of patch[p, (kh, kw, c)] * dY[p, o].

    The output rows (n, oh) of the batch are cut into ``partials.shape[0]`` slices; each slice
    is one task that sums its rows into its own row of ``partials`` (K * Cout), and the slices
    are then added in order into ``dw``.  A tile is (rows of dW) x (a panel of nr output
    channels), reducing over pixels:

    direct   rows are mr input channels of one tap (kh, kw), read in place from x along a row
             of output pixels (the valid range of ow for that tap, stride sw * C);
    im2col   rows are mr consecutive columns of the packed patch matrix of a block of pixels,
             which makes thin inputs (C = 1 or 3) fill the tile rows.
    """
    cdef Patches g = make_patches(x.shape[1], x.shape[2], x.shape[3], dy.shape[1], dy.shape[2], geom)
    cdef ptrdiff_t N = x.shape[0], cout = dy.shape[3], C = g.C
    cdef ptrdiff_t K = g.KH * g.KW * C
    cdef ptrdiff_t R = N * g.OH
    cdef ptrdiff_t G = partials.shape[0]
    cdef ptrdiff_t size = K * cout
    cdef fc_kernel kern = fc_select_kernel(sizeof(floating), <int>cout)
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr
    cdef ptrdiff_t nblocks = (cout + nr - 1) // nr
    cdef ptrdiff_t rows = patch_block_rows(K, mr, sizeof(floating))
    # Per thread: a packed dY panel (rows or one output row of pixels) and, for im2col, patches.
    cdef ptrdiff_t panel_len = (rows if use_im2col else g.OW) * nr
    cdef ptrdiff_t per_thread = panel_len + (rows * K if use_im2col else 0)
    cdef ptrdiff_t s, row, row_end, n, oh, jb, kh, kw, ih, lo, hi, c0, m, k0, p0, p_end, count, i, e, nc
    cdef ptrdiff_t zero_off = 0
    cdef floating *part
    cdef floating *panel
    cdef floating *patches
    cdef const floating *x_base = &x[0, 0, 0, 0]
    cdef const floating *dy_base = &dy[0, 0, 0, 0]
    cdef floating total
    if size == 0:
        return
    cdef floating *work = <floating *> malloc(sizeof(floating) * per_thread * n_threads)
    if work == NULL:
        raise MemoryError("fastconv: no memory for the filter-gradient buffers")
    try:
        for s in prange(G, nogil=True, schedule="static", num_threads=n_threads):
            part = &partials[s, 0]
            panel = work + omp_get_thread_num() * per_thread
            patches = panel + panel_len
            for i in range(size):
                part[i] = 0
            row = s * R // G
            row_end = (s + 1) * R // G
            if use_im2col:
                p_end = row_end * g.OW
                p0 = row * g.OW
                while p0 < p_end:
                    count = p_end - p0 if p_end - p0 < rows else rows
                    pack_patch_rows(&g, x_base, p0, count, patches)
                    for jb in range(nblocks):
                        nc = cout - jb * nr if cout - jb * nr < nr else nr
                        pack_dy_panel(dy_base + p0 * cout, count, cout, jb * nr, nr, panel)
                        k0 = 0
                        while k0 < K:
                            m = K - k0 if K - k0 < mr else mr
                            kern.fn(<int>m, 1, &zero_off, &zero_off, <int>count, patches + k0, 1, K,
                                    panel, part + k0 * cout + jb * nr, cout, <int>nc, 1, NULL, 0)
                            k0 = k0 + m
                    p0 = p0 + rows
            else:
                while row < row_end:
                    n = row // g.OH
                    oh = row - n * g.OH
                    for jb in range(nblocks):
                        nc = cout - jb * nr if cout - jb * nr < nr else nr
                        pack_dy_panel(dy_base + row * g.OW * cout, g.OW, cout, jb * nr, nr, panel)
                        for kh in range(g.KH):
                            ih = oh * g.sh + kh * g.dh - g.pt
                            if ih < 0 or ih >= g.H:
                                continue
                            for kw in range(g.KW):
                                # Output columns whose input column ow*sw + kw*dw - pl is inside.
                                lo = ceil_div(g.pl - kw * g.dw, g.sw)
                                if lo < 0:
                                    lo = 0
                                hi = floor_div(g.W - 1 + g.pl - kw * g.dw, g.sw) + 1
                                if hi > g.OW:
                                    hi = g.OW
                                if lo >= hi:
                                    continue
                                c0 = 0
                                while c0 < C:
                                    m = C - c0 if C - c0 < mr else mr
                                    kern.fn(<int>m, 1, &zero_off, &zero_off, <int>(hi - lo),
                                            x_base + ((n * g.H + ih) * g.W + lo * g.sw + kw * g.dw - g.pl) * C + c0,
                                            1, g.sw * C, panel + lo * nr,
                                            part + ((kh * g.KW + kw) * C + c0) * cout + jb * nr, cout,
                                            <int>nc, 1, NULL, 0)
                                    c0 = c0 + m
                    row = row + 1
        # dW = the slices' partial sums, added in slice order (element ranges in parallel).
        for e in prange(size, nogil=True, schedule="static", num_threads=n_threads):
            total = partials[0, e]
            for s in range(1, G):
                total = total + partials[s, e]
            dw[e] = total
    finally:
        free(work)


cdef extern from "winograd.h" nogil:
    ctypedef struct fc_wino_transforms:
        int (*input_f)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,
                       float *, ptrdiff_t) noexcept nogil
        int (*input_d)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *,
                       double *, ptrdiff_t) noexcept nogil
        void (*output_f)(const float *, ptrdiff_t, ptrdiff_t, const float *, int, float *, ptrdiff_t, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, float *) noexcept nogil
        void (*output_d)(const double *, ptrdiff_t, ptrdiff_t, const double *, int, double *, ptrdiff_t,
                         ptrdiff_t, ptrdiff_t, ptrdiff_t, double *) noexcept nogil
    fc_wino_transforms fc_select_wino()

cdef enum:
    # Working set of one block of Winograd tiles (their 16 transformed inputs and 16 products):
    # about half the L2 cache of a core.
    WINOGRAD_BLOCK_BYTES = 262144


cdef inline void winograd_row(double g0, double g1, double g2, double *u) noexcept nogil:
    """u = G (g0, g1, g2): the rows of G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]."""
    u[0] = g0
    u[1] = 0.5 * (g0 + g1 + g2)
    u[2] = 0.5 * (g0 - g1 + g2)
    u[3] = g2


@cython.boundscheck(False)
@cython.wraparound(False)
def pack_winograd_filters(const floating[:, :, :, :] w, floating[::1] out, int nr):
    """The Winograd filter transform, packed for winograd_forward.

    For each filter g = w[:, :, c, k] (3x3, any strides), U = G g G^T (4x4, computed in double
    and rounded once) goes to the micro-kernel's panels ``out[jb, xi, c, 0:nr]`` with
    xi = 4 i + j and k = jb nr + column; ``out`` has ``ceil(K / nr) * 16 * C * nr`` elements and
    the columns past K are zero.
    """
    cdef ptrdiff_t C = w.shape[2], K = w.shape[3]
    cdef ptrdiff_t c, k, jb, col, a, i, j
    cdef double gt[3][4]    # gt[a] = G g[a, :]: the rows of g G^T
    cdef double col_in[3]
    cdef double u[4]
    with nogil:
        memset(&out[0], 0, out.shape[0] * sizeof(floating))
        for c in range(C):
            for k in range(K):
                jb = k // nr
                col = k - jb * nr
                for a in range(3):
                    winograd_row(w[a, 0, c, k], w[a, 1, c, k], w[a, 2, c, k], gt[a])
                for j in range(4):
                    winograd_row(gt[0][j], gt[1][j], gt[2][j], u)       # column j of G (g G^T)
                    for i in range(4):
                        out[((jb * 16 + 4 * i + j) * C + c) * nr + col] = <floating> u[i]


@cython.boundscheck(False)
@cython.wraparound(False)
def winograd_forward(const floating[:, :, :, ::1] src, const floating[::1] packed_u,
                     floating[:, :, :, ::1] dst, ptrdiff_t pt, ptrdiff_t pl, const floating[::1] bias,
                     bint relu, int n_threads):
    """3x3, stride 1 convolution by Winograd F(2x2, 3x3) (fastconv/_kernels/winograd_impl.h).

    The output is cut into 2x2 tiles (the last row and column of tiles may hang over the edge);
    tile (a, b) of image n reads the 4x4 input tile at rows 2a - pt.., columns 2b - pl...  The
    tiles of the batch, flattened, are processed in blocks of a fixed size: each block's inputs
    are transformed into V[xi, tile, cin] (16 positions xi), then for each xi the micro-kernel
    multiplies V[xi] (tiles x cin) by the transformed filters U[xi] (cin x cout, packed as panels
    ``[jb, xi, cin, 0:nr]``) into M[xi, tile, cout], and the output transform writes the 2x2
    outputs with bias and ReLU.  ``bias`` has cout values (zeros for none).

    Returns False, having written nothing reliable, when the input holds an infinity or NaN
    (the transform would mix it into NaNs that the direct convolution does not produce).
    """
    cdef ptrdiff_t N = src.shape[0], H = src.shape[1], W = src.shape[2], C = src.shape[3]
    cdef ptrdiff_t OH = dst.shape[1], OW = dst.shape[2], K = dst.shape[3]
    cdef ptrdiff_t TH = (OH + 1) // 2, TW = (OW + 1) // 2
    cdef ptrdiff_t tiles = N * TH * TW
    cdef fc_kernel kern = fc_select_kernel(sizeof(floating), <int>K)
    cdef fc_wino_transforms tr = fc_select_wino()
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr
    cdef ptrdiff_t nblocks = (K + nr - 1) // nr
    cdef ptrdiff_t tb = WINOGRAD_BLOCK_BYTES // (16 * (C + K) * <ptrdiff_t>sizeof(floating))
    tb = (tb // mr) * mr if tb >= mr else mr
    cdef ptrdiff_t nchunks = (tiles + tb - 1) // tb
    # per thread: V (16 tb C), M (16 tb K), a sink row for outputs past the edge (K)
    cdef ptrdiff_t per_thread = 16 * tb * (C + K) + K
    cdef ptrdiff_t chunk, t0, count, t, n, a, b, rem, xi, jb, r0, m
    cdef ptrdiff_t zero_off = 0
    cdef int bad = 0
    cdef floating *V
    cdef floating *M
    cdef floating *sink
    cdef const floating *img
    if tiles == 0 or K == 0:
        return True
    cdef floating *work = <floating *> malloc(sizeof(floating) * (per_thread * n_threads + C))
    if work == NULL:
        raise MemoryError("fastconv: no memory for the Winograd buffers")
    cdef floating *zeros = work + per_thread * n_threads
    memset(zeros, 0, sizeof(floating) * C)
    try:
        for chunk in prange(nchunks, nogil=True, schedule="static", num_threads=n_threads):
            V = work + omp_get_thread_num() * per_thread
            M = V + 16 * tb * C
            sink = M + 16 * tb * K
            t0 = chunk * tb
            count = tiles - t0 if tiles - t0 < tb else tb
            for t in range(count):
                n = (t0 + t) // (TH * TW)
                rem = (t0 + t) - n * TH * TW
                a = rem // TW
                b = rem - a * TW
                img = &src[n, 0, 0, 0]
                if floating is float:
                    bad |= tr.input_f(img, H, W, C, 2 * a - pt, 2 * b - pl, zeros, V + t * C, tb * C)
                else:
                    bad |= tr.input_d(img, H, W, C, 2 * a - pt, 2 * b - pl, zeros, V + t * C, tb * C)
            for xi in range(16):
                for jb in range(nblocks):
                    r0 = 0
                    while r0 < count:
                        m = count - r0 if count - r0 < mr else mr
                        kern.fn(<int>m, 1, &zero_off, &zero_off, <int>C, V + (xi * tb + r0) * C, C, 1,
                                &packed_u[(jb * 16 + xi) * C * nr], M + (xi * tb + r0) * K + jb * nr, K,
                                <int>(K - jb * nr if K - jb * nr < nr else nr), 0, NULL, 0)
                        r0 = r0 + m
            for t in range(count):
                n = (t0 + t) // (TH * TW)
                rem = (t0 + t) - n * TH * TW
                a = rem // TW
                b = rem - a * TW
                if floating is float:
                    tr.output_f(M + t * K, tb * K, K, &bias[0], relu, &dst[n, 0, 0, 0], OH, OW, 2 * a, 2 * b, sink)
                else:
                    tr.output_d(M + t * K, tb * K, K, &bias[0], relu, &dst[n, 0, 0, 0], OH, OW, 2 * a, 2 * b, sink)
    finally:
        free(work)
    return bad == 0
