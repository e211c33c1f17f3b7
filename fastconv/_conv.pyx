"""Convolution kernels: forward, input gradient and filter gradient; direct, im2col and Winograd.

Private module: fastconv/conv.py validates every argument, normalises layouts to C-contiguous
NHWC, chooses the algorithm and builds a :class:`KernelPlan` (the typed ``conv_plan`` of
fastconv/_conv.pxd: geometry, algorithm, micro-kernel, buffer sizes, threads).  The kernels take
the plan, check the shape of every buffer against it (a ``ValueError`` otherwise) and then only
compute, with the GIL released, without bounds checks (a ``FASTCONV_DEBUG=1`` build turns them
back on).  A plan is built once and used for any number of calls: the packing of the filters
(:func:`pack_panels`, :func:`pack_winograd_filters`) is a step of its own.

Every kernel is a loop of calls to one register-tiled micro-kernel (fastconv/_kernels/tile.h)::

    C[m x nc] (=|+=) sum over taps t, steps k of  A_t[r, k] * B_t[k, j]

and differs only in what A, B and C are:

=====================  ==================================  ====================  ===============
kernel                 rows r of C (broadcast from A)      columns j (from B)    reduction k
=====================  ==================================  ====================  ===============
direct (fwd, dX)       destination pixels of one row        output channels       taps x channels
im2col forward         pixels, from a packed patch matrix   output channels       kh * kw * Cin
                       (1x1 at stride 1: x itself, in place)
im2col input grad      pixels of dY; then col2im            kh * kw * Cin         Cout
Winograd (fwd, dX)     tiles, per position xi (16 or 36)    output channels       channels
direct filter grad     input channels of one tap            output channels       pixels of a row
im2col filter grad     kh * kw * Cin (patch matrix)         output channels       pixels
=====================  ==================================  ====================  ===============

B is always a packed panel: ``nr`` columns contiguous per reduction step, padded with zeros to a
multiple of ``nr``; ``nr`` comes from one table, ``fc_select_kernel`` (tile.h), called once when
the plan is built.  Work is split into the plan's tasks, which do not depend on the number of
threads, by one skeleton (:func:`run_tasks`: per-thread workspace, ``prange``), and each output
element is summed by one thread in a fixed order, so results are bitwise identical for any
thread count.

Geometry of the direct kernel.  Along one spatial axis a destination index d and a tap t read
the source index

    s = (d * up + off0 + t * tstep) / down,  valid when the division is exact and 0 <= s < src.

Forward convolution: up = stride, down = 1, off0 = -pad_before, tstep = dilation.
Input gradient (a transposed convolution, gathered): up = 1, down = stride, off0 = pad_before,
tstep = -dilation, i.e. dX[i] collects dY[o] for every o with o * stride + t * dilation - pad = i.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._omp cimport omp_get_thread_num
from fastconv._slices cimport MAX_SLICES, PARTIALS_BYTES
from fastconv._tile cimport fc_kernel, fc_select_kernel

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
    fc_wino_transforms fc_select_wino(int tile)

cdef enum:
    # Working set of one packed patch block (im2col): a few hundred KiB, so that it stays in the L2
    # cache of a core while every block of output channels is multiplied with it.
    IM2COL_BLOCK_BYTES = 196608
    # Working set of one block of Winograd tiles (all their transformed inputs and products), for
    # thin layers: about half the L2 cache of a core; and of one position's (see winograd_block_tiles).
    WINOGRAD_BLOCK_BYTES = 262144
    WINOGRAD_POSITION_BYTES = 131072
    # Tiles that F(4x4, 3x3) needs (see winograd_tile_for).
    WINOGRAD_4X4_MIN_TILES = 32
    # Each thread's workspace starts on its own cache line (no false sharing between threads).
    CACHE_LINE = 64
    # im2col forward of a 1x1, stride 1 layer, read in place: output pixels per block.  Measured on
    # the 1x1 layers of ResNet50 at batch 32 (56x56 64 -> 256 ... 7x7 2048 -> 512), 2 threads, against
    # the direct kernel (one output row per task): 48 rows took 0.66 s for the nine layers, 96 0.69,
    # 192 0.68, blocks of 32 or 64 KiB of input 0.67-0.69, direct 0.78.  Small blocks keep the rows in
    # the L1/L2 cache while every panel of filters passes over them, and make every tile but the
    # batch's last a full one (the direct kernel's rows of 7 or 14 pixels end in a partial tile).
    IN_PLACE_BLOCK_ROWS = 48
    # The slice of a packed panel that one micro-kernel call reads: 16 KiB stays in the L1 cache
    # while the tiles of a block pass over it (a whole panel of 512-2048 channels is 32-128 KiB).
    # The nine 1x1 layers of ResNet50 at batch 32 took 0.40 s with it, 0.42 s in one pass over the
    # reduction (2 threads, a loaded machine: within the noise of a single measurement).
    REDUCTION_BLOCK_BYTES = 16384
    # Tasks that a call of the im2col forward kernel should have at least (so that a batch of one
    # small image keeps more than one thread busy); a constant, so results do not depend on the threads.
    MIN_TASKS = 16
    # Filter gradient as one GEMM per tap: pixels per reduction block (one packed panel of dY,
    # 16 KiB in float32, stays in the L1 cache while the tiles of a task's input channels pass
    # over it), input channels per task (their values for a block of pixels, 96 KiB, stay in L2),
    # and the input channels it needs (fewer leave the tiles of a tap's chunk partly empty: thin
    # inputs go through whole patch rows, whose columns span the taps).
    GEMM_GRAD_PIXELS = 256
    GEMM_GRAD_CHANNELS = 96
    GEMM_GRAD_MIN_CHANNELS = 32
    # Direct forward: the packed filters a group of tasks reads, about half the L2 cache of a core.
    # Without the groups every output row streams all the filters: a 3x3 layer of 512 channels on
    # a 7x7 image (batch 1) reads 9.4 MiB of filters for 7 pixels.
    DIRECT_PANELS_BYTES = 524288
    # Packed filters large enough to pack on all the plan's threads (1 Mi elements: the 3x3 layers
    # of 256 and 512 channels; a Winograd 3x3x512x512 packing took 16.3 ms on one thread, 9.9 on two).
    PARALLEL_PACK_ELEMENTS = 1048576
    # The widest panel of any micro-kernel (tile.h: 2 vectors of 16 floats with AVX-512).
    MAX_NR = 32

PASSES = {"forward": PASS_FORWARD, "input_gradient": PASS_INPUT_GRADIENT,
          "filter_gradient": PASS_FILTER_GRADIENT}
ALGORITHMS = {"direct": ALGORITHM_DIRECT, "im2col": ALGORITHM_IM2COL, "winograd": ALGORITHM_WINOGRAD}


# -- small arithmetic --------------------------------------------------------------------------------

cdef inline ptrdiff_t floor_div(ptrdiff_t a, ptrdiff_t b) noexcept nogil:
    """Floor division for b > 0 and any sign of a (C division truncates toward zero)."""
    cdef ptrdiff_t q = a / b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) noexcept nogil:
    return -floor_div(-a, b)


cdef inline ptrdiff_t smaller(ptrdiff_t a, ptrdiff_t b) noexcept nogil:
    return a if a < b else b


cdef inline int panel_cols(ptrdiff_t n_cols, ptrdiff_t panel, ptrdiff_t nr) noexcept nogil:
    """The columns of panel ``panel`` that are real (the last panel may be partial)."""
    return <int>smaller(n_cols - panel * nr, nr)


cdef inline ptrdiff_t rows_within(ptrdiff_t budget, ptrdiff_t K, ptrdiff_t mr, size_t itemsize) noexcept nogil:
    """Rows of K values per block: a multiple of mr within ``budget`` bytes (at least mr)."""
    cdef ptrdiff_t rows = budget // (K * <ptrdiff_t>itemsize) if K > 0 else mr
    rows = (rows // mr) * mr
    return rows if rows > mr else mr


cdef inline ptrdiff_t patch_block_rows(ptrdiff_t K, ptrdiff_t mr, size_t itemsize) noexcept nogil:
    """Rows of the patch matrix per block: a multiple of mr within IM2COL_BLOCK_BYTES (at least mr)."""
    return rows_within(IM2COL_BLOCK_BYTES, K, mr, itemsize)


cdef inline ptrdiff_t reduction_block(ptrdiff_t K, ptrdiff_t nr, size_t itemsize) noexcept nogil:
    """Reduction steps per micro-kernel call: the whole reduction, or blocks whose slice of a
    packed panel (steps x nr) fits REDUCTION_BLOCK_BYTES (the last block may be up to 1.5x)."""
    cdef ptrdiff_t kc = REDUCTION_BLOCK_BYTES // (nr * <ptrdiff_t>itemsize)
    if kc <= 0 or K <= kc + kc // 2:
        return K if K > 0 else 1
    return kc


# -- the plan ------------------------------------------------------------------------------------------

cdef class KernelPlan:
    """The typed plan of one pass of a convolution (``conv_plan`` in fastconv/_conv.pxd).

    Parameters
    ----------
    pass_ : 'forward', 'input_gradient' or 'filter_gradient'
    algorithm : 'direct', 'im2col' or 'winograd' (forward and input gradient only)
    itemsize : 4 (float32) or 8 (float64)
    input_nhwc, output_nhwc : the forward convolution's input (N, H, W, C) and output (N, OH, OW, K)
    filter_hw, strides, dilations, pads : (KH, KW), (sh, sw), (dh, dw), (top, left)
    n_threads : threads of every call
    winograd_tile : Winograd plans: 2 (F(2x2, 3x3)), 4 (F(4x4, 3x3)) or 0, the one that computes
        fewer products for the layer (:func:`winograd_tile_for`)

    Everything else is derived here, once: the micro-kernel and its panel width ``nr``, the
    sizes of the packed filters, of the padded bias and of each thread's workspace, the tasks,
    the slices of the filter gradient.
    """

    def __init__(self, str pass_, str algorithm, int itemsize, input_nhwc, output_nhwc, filter_hw,
                 strides, dilations, pads, int n_threads, int winograd_tile=0):
        if pass_ not in PASSES:
            raise ValueError(f"KernelPlan: pass_ must be one of {tuple(PASSES)}. Received: pass_={pass_!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"KernelPlan: algorithm must be one of {tuple(ALGORITHMS)}. "
                             f"Received: algorithm={algorithm!r}")
        if itemsize not in (4, 8):
            raise ValueError(f"KernelPlan: itemsize must be 4 or 8. Received: itemsize={itemsize}")
        if n_threads < 1:
            raise ValueError(f"KernelPlan: n_threads must be positive. Received: n_threads={n_threads}")
        if winograd_tile not in (0, 2, 4) or (winograd_tile and algorithm != "winograd"):
            raise ValueError(f"KernelPlan: winograd_tile must be 0, 2 or 4, and 0 unless algorithm='winograd'. "
                             f"Received: winograd_tile={winograd_tile}, algorithm={algorithm!r}")
        cdef conv_plan *p = &self.c
        p.N, p.H, p.W, p.C = input_nhwc
        n_out, p.OH, p.OW, p.K = output_nhwc
        p.KH, p.KW = filter_hw
        p.sh, p.sw = strides
        p.dh, p.dw = dilations
        p.pt, p.pl = pads
        if n_out != p.N or min(p.N, p.H, p.W, p.C, p.OH, p.OW, p.K) < 0 or min(p.KH, p.KW, p.sh, p.sw, p.dh, p.dw) < 1:
            raise ValueError(f"KernelPlan: no convolution has input {tuple(input_nhwc)}, output "
                             f"{tuple(output_nhwc)}, filters {tuple(filter_hw)}, strides {tuple(strides)}, "
                             f"dilations {tuple(dilations)}")
        p.pass_ = PASSES[pass_]
        p.algorithm = ALGORITHMS[algorithm]
        if p.algorithm == ALGORITHM_WINOGRAD and (
                p.pass_ == PASS_FILTER_GRADIENT or (p.KH, p.KW, p.sh, p.sw, p.dh, p.dw) != (3, 3, 1, 1, 1, 1)
                or (p.pass_ == PASS_INPUT_GRADIENT and max(p.pt, p.pl) > 2)):
            raise ValueError("KernelPlan: Winograd computes the forward pass and the input gradient (padding at "
                             "most 2) of 3x3 filters at stride 1 without dilation")
        p.itemsize = itemsize
        p.n_threads = n_threads
        p.taps = p.KH * p.KW
        p.winograd_tile = 0
        if p.algorithm == ALGORITHM_WINOGRAD:
            p.winograd_tile = winograd_tile if winograd_tile else winograd_tile_for(p)
        derive_sizes(p)

    @property
    def pass_(self):
        return next(name for name, value in PASSES.items() if value == self.c.pass_)

    @property
    def algorithm(self):
        return next(name for name, value in ALGORITHMS.items() if value == self.c.algorithm)

    @property
    def itemsize(self):
        return self.c.itemsize

    @property
    def nr(self):
        """Columns of one packed panel."""
        return self.c.kernel.nr

    @property
    def mr(self):
        """Rows of one tile of the micro-kernel."""
        return self.c.kernel.mr

    @property
    def packed_size(self):
        """Elements of the packed filters (0: the filter gradient reads no packed filters)."""
        return self.c.packed_size

    @property
    def bias_size(self):
        """Elements of the bias padded to whole panels (0: the pass takes no bias)."""
        return self.c.bias_size

    @property
    def workspace_bytes(self):
        """Scratch memory of each thread, allocated by every call."""
        return self.c.workspace_bytes

    @property
    def n_tasks(self):
        return self.c.n_tasks

    @property
    def slices(self):
        """Partial sums of the filter gradient (the rows of its ``partials`` buffer)."""
        return self.c.slices

    @property
    def n_threads(self):
        return self.c.n_threads

    @property
    def winograd_tile(self):
        """Outputs per side of a Winograd tile: 2 (F(2x2, 3x3)), 4 (F(4x4, 3x3)); 0 for other algorithms."""
        return self.c.winograd_tile

    def __repr__(self):
        cdef conv_plan *p = &self.c
        return (f"KernelPlan({self.pass_}, {self.algorithm}, float{8 * p.itemsize}, input "
                f"{(p.N, p.H, p.W, p.C)}, output {(p.N, p.OH, p.OW, p.K)}, filters {(p.KH, p.KW)}, strides "
                f"{(p.sh, p.sw)}, dilations {(p.dh, p.dw)}, pads {(p.pt, p.pl)}, nr={p.kernel.nr}, "
                f"{f'F({p.winograd_tile}x{p.winograd_tile}, 3x3), ' if p.winograd_tile else ''}threads={p.n_threads})")


cdef bint gemm_filter_gradient(ptrdiff_t n_rows, ptrdiff_t n_pixels, ptrdiff_t C, ptrdiff_t taps, ptrdiff_t K,
                               int itemsize) noexcept:
    """Whether the im2col filter gradient of a layer runs as one GEMM per tap (filter_grad_gemm_block)
    instead of by slices of output rows (filter_grad_slice).

    By slices, every block of patch rows loads and stores all of its slice's partial dW, and the
    partials are zeroed and added up at the end: that costs little while the blocks are long and
    the slices have many pixels, and dominates when either is short: large filters (a block of
    192 KiB holds 6 patch rows of a 3x3 layer of 512 channels) or few pixels per slice (small
    images).  Measured against both per-slice kernels (direct and im2col) in one process, 2 threads,
    on ResNet50's layers at batch 16 and 32 and the suite's: the GEMM was 1.1-5.4x faster on
    4x4-14x14 images of 128-2048 channels (fewer than 512 pixels per slice, or blocks shorter than
    24 rows) and 0.6-0.8x on 28x28-56x56 images of 32-256 channels (the per-slice kernels reach
    75-90 GFLOP/s there).  Thin inputs (< GEMM_GRAD_MIN_CHANNELS) keep whole patch rows."""
    cdef ptrdiff_t mr = fc_select_kernel(itemsize, <int>K).mr
    cdef ptrdiff_t slices = filter_grad_slices(n_rows, taps * C * K, itemsize)
    return C >= GEMM_GRAD_MIN_CHANNELS and (n_pixels < 512 * slices or patch_block_rows(taps * C, mr, itemsize) < 24)


def filter_gradient_by_gemm(ptrdiff_t n_rows, ptrdiff_t n_pixels, ptrdiff_t C, ptrdiff_t taps, ptrdiff_t K,
                            int itemsize):
    """:func:`gemm_filter_gradient` for fastconv.conv's choice of the algorithm."""
    return gemm_filter_gradient(n_rows, n_pixels, C, taps, K, itemsize)


cdef inline ptrdiff_t winograd_tiles(const conv_plan *p, ptrdiff_t tile) noexcept:
    """Tiles of tile x tile outputs over the pass's destination images (y, or dX), the last row
    and column of tiles hanging over the edge."""
    cdef ptrdiff_t dst_h = p.OH if p.pass_ == PASS_FORWARD else p.H
    cdef ptrdiff_t dst_w = p.OW if p.pass_ == PASS_FORWARD else p.W
    return p.N * ceil_div(dst_h, tile) * ceil_div(dst_w, tile)


cdef int winograd_tile_for(const conv_plan *p) noexcept:
    """The Winograd tile for a plan: F(4x4, 3x3) where it computes fewer products than F(2x2, 3x3)
    over the destination images, tiles hanging over the edge included (36 products per 4x4 tile
    against 16 per 2x2 tile), and has at least WINOGRAD_4X4_MIN_TILES tiles.  Measured against
    F(2x2, 3x3) in one process, 2 threads, GFLOP/s as direct: F(4x4) 1.0-1.45x on ResNet50's 3x3
    layers at batch 1-32 (56x56 64 -> 64 b32 184 -> 268, 28x28 128 b1 231 -> 272, 7x7 512 b32 167 ->
    214), on 8x50x50 32 -> 64 1.1x; 0.78x on 14x14 256 -> 256 at batch 1 (16 tiles: every
    block reads all of U, 2.25x larger than F(2x2)'s, for few tiles), 1.0x with 32 tiles."""
    cdef ptrdiff_t tiles4 = winograd_tiles(p, 4)
    return 4 if 36 * tiles4 < 16 * winograd_tiles(p, 2) and tiles4 >= WINOGRAD_4X4_MIN_TILES else 2


cdef ptrdiff_t winograd_block_tiles(ptrdiff_t positions, ptrdiff_t src_channels, ptrdiff_t dst_channels,
                                    ptrdiff_t tiles, ptrdiff_t mr, int itemsize) noexcept:
    """Tiles per Winograd block (a multiple of mr).

    A block transforms its tiles into V (positions x tiles x src channels), multiplies each
    position's V[xi] by all of U[xi] into M and transforms M back.  A block whose V and M fit
    WINOGRAD_BLOCK_BYTES stays in the L2 cache, but reads all of U (positions x src x dst
    channels) once per block: per tile, U / tiles against V and M's positions x (src + dst)
    values.  For thin layers U is small and that block is best; for wide ones (U of 256 -> 256
    channels is 9.4 MiB for F(4x4, 3x3)) U's traffic dominates, and the block is as long as one
    position's V and M within WINOGRAD_POSITION_BYTES (V and M leave L2, each value of U serves
    the whole block).  The switch: where the short block is shorter than src x dst / (4 (src +
    dst)) tiles (measured on ResNet50's 3x3 layers at batch 32, F(4x4, 3x3), GFLOP/s as direct:
    56x56 64 -> 64 254 short, 185 long; 28x28 128 306 -> 334; 14x14 256 211 -> 266; 7x7 512
    168 -> 220).  At most tiles / MIN_TASKS (rounded up to mr), so that a small batch has tasks
    for every thread.  The blocks change no bit of the results: each tile's sums are the same
    whatever block it is in."""
    cdef ptrdiff_t row_bytes = (src_channels + dst_channels) * itemsize
    if row_bytes <= 0:
        return mr
    cdef ptrdiff_t rows = WINOGRAD_BLOCK_BYTES // (positions * row_bytes)
    if rows * 4 * (src_channels + dst_channels) < src_channels * dst_channels:
        rows = WINOGRAD_POSITION_BYTES // row_bytes
    rows = smaller(rows, ceil_div(ceil_div(tiles, MIN_TASKS), mr) * mr)
    rows = (rows // mr) * mr
    return rows if rows > mr else mr


cdef void derive_sizes(conv_plan *p) noexcept:
    """The micro-kernel, buffer sizes and tasks of a plan whose geometry and algorithm are set."""
    cdef ptrdiff_t reduction = p.taps * p.C     # columns of the forward's patch matrix
    cdef ptrdiff_t src_channels, dst_channels, tiles, per_thread, panel_len, per_group, positions
    if p.pass_ == PASS_INPUT_GRADIENT and p.algorithm == ALGORITHM_IM2COL:
        p.n_cols = reduction
    elif p.pass_ == PASS_INPUT_GRADIENT:
        p.n_cols = p.C
    else:
        p.n_cols = p.K
    p.kernel = fc_select_kernel(p.itemsize, <int>p.n_cols)
    cdef ptrdiff_t nr = p.kernel.nr, mr = p.kernel.mr
    p.n_panels = ceil_div(p.n_cols, nr)
    p.bias_size = p.n_panels * nr if p.pass_ == PASS_FORWARD else 0
    p.block_rows = 0
    p.slices = 0
    p.patches_in_place = (p.algorithm == ALGORITHM_IM2COL and p.pass_ != PASS_INPUT_GRADIENT and p.taps == 1
                          and p.sh == 1 and p.sw == 1 and p.pt == 0 and p.pl == 0 and p.OH == p.H and p.OW == p.W)
    p.chunk_rows = 0
    p.reduction_block = reduction
    p.panel_groups = 1
    if p.pass_ == PASS_FILTER_GRADIENT and p.algorithm == ALGORITHM_IM2COL and gemm_filter_gradient(
            p.N * p.OH, p.N * p.OH * p.OW, p.C, p.taps, p.K, p.itemsize):
        # dW = patches^T dY as one GEMM per tap over all the batch's pixels: each task owns a block
        # of dW (a tap, a chunk of input channels, a group of panels) and sums all the pixels into
        # it, block by block, so there are no partial sums (slices), and every micro-kernel call
        # reduces over block_rows pixels (see gemm_filter_gradient for when).
        p.packed_size = 0
        p.slices = 1
        p.block_rows = GEMM_GRAD_PIXELS
        # Chunks of at most GEMM_GRAD_CHANNELS channels, of equal sizes (in whole tiles).
        p.chunk_rows = ceil_div(ceil_div(p.C, ceil_div(p.C, GEMM_GRAD_CHANNELS)), mr) * mr
        p.n_tasks = p.taps * ceil_div(p.C, p.chunk_rows)
        # Groups of panels so that there are two tasks per thread where the panels allow it, no
        # more: every group reads its chunk of x again (with 16 tasks, a 64 -> 256 layer on 28x28
        # images ran at 35 GFLOP/s, with 4 at 55).  The bits do not depend on the split: each
        # element of dW is summed by one task, over the same blocks of pixels in the same order.
        p.panel_groups = smaller(ceil_div(2 * p.n_threads, p.n_tasks), p.n_panels)
        p.n_tasks *= p.panel_groups
        # A packed panel of dY, and the gathered values of a chunk (none when x is read in place).
        per_thread = p.block_rows * (nr + (0 if p.patches_in_place else p.chunk_rows)) * p.itemsize
    elif p.pass_ == PASS_FILTER_GRADIENT:
        p.packed_size = 0
        p.block_rows = patch_block_rows(reduction, mr, p.itemsize)
        p.slices = filter_grad_slices(p.N * p.OH, reduction * p.K, p.itemsize)
        p.n_tasks = p.slices
        # A packed dY panel (a block of pixels, or one output row) and, for im2col, the patches.
        panel_len = (p.block_rows if p.algorithm == ALGORITHM_IM2COL else p.OW) * nr
        per_thread = (panel_len + (p.block_rows * reduction if p.algorithm == ALGORITHM_IM2COL else 0)) * p.itemsize
    elif p.algorithm == ALGORITHM_DIRECT:
        # Panels [jb, taps, reduction channels, 0:nr] over the destination channels.
        p.packed_size = p.n_panels * p.taps * (p.C if p.pass_ == PASS_FORWARD else p.K) * nr
        p.n_tasks = p.N * (p.OH if p.pass_ == PASS_FORWARD else p.H)
        if p.pass_ == PASS_FORWARD and p.n_panels > 1:
            # Filters larger than DIRECT_PANELS_BYTES: the rows of each group of panels are tasks of
            # their own, group by group, so that a thread's run of rows reuses its group from L2.
            panel_len = p.taps * p.C * nr * p.itemsize      # bytes of one packed panel
            per_group = DIRECT_PANELS_BYTES // panel_len if 0 < panel_len < DIRECT_PANELS_BYTES else 1
            p.panel_groups = ceil_div(p.n_panels, per_group)
            p.n_tasks *= p.panel_groups
        # Lists of taps: vertical, horizontal, and their products (offsets into A and B).
        per_thread = (2 * p.KH + 2 * p.KW + 2 * p.taps) * <ptrdiff_t>sizeof(ptrdiff_t)
    elif p.algorithm == ALGORITHM_IM2COL:
        p.block_rows = patch_block_rows(reduction, mr, p.itemsize)
        per_thread = p.block_rows * reduction * p.itemsize   # a block of patch rows
        if p.pass_ == PASS_FORWARD:
            if p.patches_in_place:
                p.block_rows = ceil_div(IN_PLACE_BLOCK_ROWS, mr) * mr
                per_thread = 0
            p.reduction_block = reduction_block(reduction, nr, p.itemsize)
            p.packed_size = p.n_panels * reduction * nr      # [jb, (kh, kw, c), 0:nr]
            p.n_tasks = ceil_div(p.N * p.OH * p.OW, p.block_rows)
            # Few blocks of rows read in place (a small batch of small images): each block is split
            # over groups of panels too, so that there are MIN_TASKS tasks where the panels allow it.
            # (Not for packed patches: every group would pack its block again; on the quick form of
            # the suite's strided 3x3 case, 21 tasks instead of 7, the ratio to TensorFlow fell from
            # 1.4-1.7 to 1.1.)
            if p.patches_in_place:
                p.panel_groups = smaller(ceil_div(MIN_TASKS, p.n_tasks), p.n_panels)
                if p.panel_groups < 1:
                    p.panel_groups = 1
                p.n_tasks *= p.panel_groups
        else:
            p.packed_size = p.n_panels * p.K * nr            # [kb over (kh, kw, c), K, 0:nr]
            p.n_tasks = p.N                                  # col2im: one image per task
    else:
        src_channels = p.C if p.pass_ == PASS_FORWARD else p.K
        dst_channels = p.K if p.pass_ == PASS_FORWARD else p.C
        positions = (p.winograd_tile + 2) * (p.winograd_tile + 2)
        p.packed_size = p.n_panels * positions * src_channels * nr      # [jb, xi, src channel, 0:nr]
        tiles = winograd_tiles(p, p.winograd_tile)
        p.block_rows = winograd_block_tiles(positions, src_channels, dst_channels, tiles, mr, p.itemsize)
        p.n_tasks = ceil_div(tiles, p.block_rows)
        # V (positions x tiles x src channels), M (positions x tiles x dst channels), a sink row for
        # the outputs past the edge and a row of zeros (the padding, and the bias when there is none).
        per_thread = (positions * p.block_rows * (src_channels + dst_channels) + dst_channels
                      + (src_channels if src_channels > dst_channels else dst_channels)) * p.itemsize
    p.workspace_bytes = ceil_div(per_thread if per_thread > 0 else 1, CACHE_LINE) * CACHE_LINE


cdef ptrdiff_t filter_grad_slices(ptrdiff_t n_rows, ptrdiff_t filter_size, int itemsize) noexcept:
    """How many partial sums the filter gradient uses for ``n_rows`` output rows."""
    cdef ptrdiff_t by_memory = PARTIALS_BYTES // (filter_size * itemsize) if filter_size > 0 else MAX_SLICES
    cdef ptrdiff_t slices = smaller(MAX_SLICES, n_rows)
    slices = smaller(slices, by_memory)
    return slices if slices > 1 else 1


# -- buffer checks ------------------------------------------------------------------------------------

cdef int check_plan(const conv_plan *p, str kernel, int itemsize, bint gradient) except -1:
    if itemsize != p.itemsize:
        raise TypeError(f"fastconv._conv.{kernel}: buffers of float{8 * itemsize} for a plan of float{8 * p.itemsize}")
    if gradient != (p.pass_ == PASS_FILTER_GRADIENT):
        raise ValueError(f"fastconv._conv.{kernel}: the plan is for the "
                         f"{('forward', 'input gradient', 'filter gradient')[p.pass_]}")
    return 0


cdef int check_shape(str kernel, str name, const Py_ssize_t *shape, int ndim, tuple expected) except -1:
    actual = tuple([shape[i] for i in range(ndim)])
    if actual != expected:
        raise ValueError(f"fastconv._conv.{kernel}: {name} has shape {actual}; the plan needs {expected}")
    return 0


cdef tuple image_shape(const conv_plan *p, bint forward_input):
    return (p.N, p.H, p.W, p.C) if forward_input else (p.N, p.OH, p.OW, p.K)


# -- the skeleton of every kernel ----------------------------------------------------------------------

cdef struct conv_task:
    # What the tasks of one kernel call read and write (pointers to floating, as void).
    const conv_plan *plan
    const void *src          # the pass's input image: x (forward, filter gradient) or dY
    const void *grad         # dY of the filter gradient
    const void *packed       # packed filters
    const void *bias         # padded bias, or NULL
    void *dst                # the pass's output (for the filter gradient: its partial sums)
    int relu                 # 0, 1 (ReLU) or 2 (ReLU6: the micro-kernel's epilogue only, not Winograd's)
    bint accumulate          # forward: dst += the convolution (relu(dst + conv + bias))
    ptrdiff_t src_h, src_w, src_c, dst_h, dst_w, dst_c    # the pass's images
    ptrdiff_t pad_top, pad_left                           # Winograd's padding of src


cdef ptrdiff_t run_tasks(ptrdiff_t (*task_fn)(const conv_task *, ptrdiff_t, floating *) noexcept nogil,
                         const conv_task *task) except -1:
    """Run ``task_fn(task, i, workspace)`` for the plan's tasks i, in parallel, and return the
    sum of their results.

    The tasks are handed out to ``plan.n_threads`` threads one at a time, as each thread becomes
    free (each task computes the same bits whichever thread runs it): on a shared machine a
    thread that loses its core for a while leaves its tasks to the others instead of holding up
    the call, as a static split would, and tasks of uneven sizes (the short last block of rows)
    do not leave a thread idle.  (Guided chunks, whose first chunk is half the tasks, gave one
    thread all the work of a batch-1 7x7 layer.)  Each thread
    has its own ``plan.workspace_bytes`` of scratch memory, allocated here for the call.
    """
    cdef const conv_plan *p = task.plan
    cdef ptrdiff_t per_thread = p.workspace_bytes // <ptrdiff_t>sizeof(floating)
    cdef ptrdiff_t i, total = 0
    cdef floating *workspace = <floating *> malloc(p.workspace_bytes * p.n_threads)
    if workspace == NULL:
        raise MemoryError(f"fastconv: no memory for {p.n_threads} x {p.workspace_bytes} bytes of convolution "
                          f"workspace")
    try:
        for i in prange(p.n_tasks, nogil=True, schedule="dynamic", num_threads=p.n_threads):
            total += task_fn(task, i, workspace + omp_get_thread_num() * per_thread)
    finally:
        free(workspace)
    return total


cdef inline void tiles_of_rows(const fc_kernel *kern, ptrdiff_t rows, int n_taps, const ptrdiff_t *a_off,
                               const ptrdiff_t *b_off, ptrdiff_t kc, const floating *a, ptrdiff_t a_row_stride,
                               ptrdiff_t a_step_stride, const floating *b, floating *c, ptrdiff_t c_row_stride,
                               int n_cols, int accumulate, const floating *bias, int relu) noexcept nogil:
    """C[rows x n_cols] (=|+=) A B for one panel B, in tiles of mr rows (the last may be short)."""
    cdef ptrdiff_t r0 = 0, m
    while r0 < rows:
        m = smaller(rows - r0, kern.mr)
        kern.fn(<int>m, n_taps, a_off, b_off, <int>kc, a + r0 * a_row_stride, a_row_stride, a_step_stride, b,
                c + r0 * c_row_stride, c_row_stride, n_cols, accumulate, bias, relu)
        r0 += m


# -- packing the filters -----------------------------------------------------------------------------

cdef inline int pack_threads(const conv_plan *p) noexcept nogil:
    """Threads that pack a plan's filters: all of the plan's for PARALLEL_PACK_ELEMENTS and more."""
    return p.n_threads if p.packed_size >= PARALLEL_PACK_ELEMENTS else 1


def pack_panels(KernelPlan plan, const floating[:, :, :] src not None, floating[::1] out not None):
    """Pack ``src[t, k, j]`` (any strides) into the plan's panels ``out[jb, t, k, 0:nr]``, zero padded.

    ``src`` is the filters as the pass reads them: (1, KH*KW*C, K) for the forward (W itself),
    (KH*KW, K, C) for the direct input gradient and (1, K, KH*KW*C) for the im2col one (W^T);
    column ``j`` lands in panel ``j // nr``.
    """
    cdef const conv_plan *p = &plan.c
    check_plan(p, "pack_panels", sizeof(floating), False)
    if p.algorithm == ALGORITHM_WINOGRAD:
        raise ValueError("fastconv._conv.pack_panels: a Winograd plan packs with pack_winograd_filters")
    cdef tuple expected
    if p.pass_ == PASS_FORWARD:
        expected = (1, p.taps * p.C, p.K)
    elif p.algorithm == ALGORITHM_DIRECT:
        expected = (p.taps, p.K, p.C)
    else:
        expected = (1, p.K, p.taps * p.C)
    check_shape("pack_panels", "src", src.shape, 3, expected)
    check_shape("pack_panels", "out", out.shape, 1, (p.packed_size,))
    cdef ptrdiff_t n_taps = src.shape[0], n_steps = src.shape[1], n_cols = src.shape[2], nr = p.kernel.nr
    cdef ptrdiff_t panel, tap, step, j, col
    cdef floating *dst
    # Large filters' panels in parallel (a training step packs every layer's filters twice); small
    # ones on this thread: a parallel region wakes the other threads, which took about 0.2 ms, 10-40x
    # the packing of the suite's small filters.
    with nogil:
        for panel in prange(p.n_panels, schedule="static", num_threads=pack_threads(p)):
            for tap in range(n_taps):
                for step in range(n_steps):
                    dst = &out[((panel * n_taps + tap) * n_steps + step) * nr]
                    for j in range(nr):
                        col = panel * nr + j
                        dst[j] = src[tap, step, col] if col < n_cols else 0


cdef inline void winograd_row(int tile, double g0, double g1, double g2, double *u) noexcept nogil:
    """u = G (g0, g1, g2) for the tile's G (tile + 2 rows; see fastconv/_kernels/winograd_impl.h)."""
    if tile == 2:   # G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
        u[0] = g0
        u[1] = 0.5 * (g0 + g1 + g2)
        u[2] = 0.5 * (g0 - g1 + g2)
        u[3] = g2
    else:
        # G = [[1, 0, 0], [1/3, 1/3, 1/3], [-1/3, 1/3, -1/3], [-16/15, -8/15, -4/15], [1/15, -2/15, 4/15], [0, 0, 1]]
        u[0] = g0
        u[1] = (g0 + g1 + g2) / 3
        u[2] = -(g0 - g1 + g2) / 3
        u[3] = -(16 * g0 + 8 * g1 + 4 * g2) / 15
        u[4] = (g0 - 2 * g1 + 4 * g2) / 15
        u[5] = g2


def pack_winograd_filters(KernelPlan plan, const floating[:, :, :, :] w not None, floating[::1] out not None):
    """The Winograd filter transform, packed for a Winograd plan.

    ``w`` is (3, 3, src channels, dst channels), any strides: the filters for the forward, the
    flipped and transposed ones ``w[::-1, ::-1].transpose(0, 1, 3, 2)`` for the input gradient.
    For each filter g = w[:, :, c, k], U = G g G^T (a x a, a = plan.winograd_tile + 2, computed in
    double and rounded once) goes to the micro-kernel's panels ``out[jb, xi, c, 0:nr]`` with
    xi = a i + j and k = jb nr + column; the columns past the last channel are zero.
    """
    cdef const conv_plan *p = &plan.c
    check_plan(p, "pack_winograd_filters", sizeof(floating), False)
    if p.algorithm != ALGORITHM_WINOGRAD:
        raise ValueError("fastconv._conv.pack_winograd_filters: the plan is not a Winograd plan")
    cdef ptrdiff_t src_channels = p.C if p.pass_ == PASS_FORWARD else p.K
    cdef ptrdiff_t dst_channels = p.K if p.pass_ == PASS_FORWARD else p.C
    check_shape("pack_winograd_filters", "w", w.shape, 4, (3, 3, src_channels, dst_channels))
    check_shape("pack_winograd_filters", "out", out.shape, 1, (p.packed_size,))
    cdef ptrdiff_t c
    if p.kernel.nr > MAX_NR:
        raise ValueError(f"fastconv._conv.pack_winograd_filters: panels of {p.kernel.nr} columns; at most {MAX_NR}")
    if out.shape[0] == 0:
        return
    with nogil:
        # Every element of out is written once (the columns past the last channel with zeros).
        # Large filters in parallel over the source channels, as pack_panels.
        for c in prange(src_channels, schedule="static", num_threads=pack_threads(p)):
            winograd_filters_of_channel(w, c, dst_channels, src_channels, p.kernel.nr, p.winograd_tile, &out[0])


cdef inline void winograd_filters_of_channel(const floating[:, :, :, :] w, ptrdiff_t c, ptrdiff_t dst_channels,
                                             ptrdiff_t src_channels, ptrdiff_t nr, int tile,
                                             floating *out) noexcept nogil:
    """pack_winograd_filters for the filters of source channel c, panel by panel.

    A panel's nr filters are transformed into ``panel_u`` first and each position's nr values
    then written as one run: written filter by filter, the positions of one filter lie
    src_channels * nr values apart (32 KiB for 512 channels: the same L1 set for all 36), and
    packing 3x3x512x512 filters for F(4x4, 3x3) took 22.6-27 ms, more than the layer at batch 16."""
    cdef ptrdiff_t k, panel, col, width, a, i, j, xi
    cdef ptrdiff_t side = tile + 2, positions = side * side
    cdef double gt[3][6]    # gt[a] = G g[a, :]: the rows of g G^T
    cdef double u[6]
    cdef double panel_u[36][MAX_NR]
    cdef floating *dst
    for panel in range(ceil_div(dst_channels, nr)):
        width = smaller(dst_channels - panel * nr, nr)
        for col in range(width):
            k = panel * nr + col
            for a in range(3):
                winograd_row(tile, w[a, 0, c, k], w[a, 1, c, k], w[a, 2, c, k], gt[a])
            for j in range(side):
                winograd_row(tile, gt[0][j], gt[1][j], gt[2][j], u)       # column j of G (g G^T)
                for i in range(side):
                    panel_u[side * i + j][col] = u[i]
        for xi in range(positions):
            dst = out + ((panel * positions + xi) * src_channels + c) * nr
            for col in range(width):
                dst[col] = <floating> panel_u[xi][col]
            for col in range(width, nr):
                dst[col] = 0


# -- direct convolution (forward and input gradient) -----------------------------------------------

cdef struct Axis:
    ptrdiff_t dst      # destination extent
    ptrdiff_t src      # source extent
    ptrdiff_t taps     # filter extent
    ptrdiff_t up       # see the module docstring: s = (d * up + off0 + t * tstep) / down
    ptrdiff_t down
    ptrdiff_t off0
    ptrdiff_t tstep


cdef inline Axis direct_axis(const conv_plan *p, bint vertical) noexcept nogil:
    """The geometry of one spatial axis of the direct kernel for the plan's pass."""
    cdef Axis ax
    cdef bint forward = p.pass_ == PASS_FORWARD
    ax.taps = p.KH if vertical else p.KW
    ax.dst = (p.OH if vertical else p.OW) if forward else (p.H if vertical else p.W)
    ax.src = (p.H if vertical else p.W) if forward else (p.OH if vertical else p.OW)
    cdef ptrdiff_t stride = p.sh if vertical else p.sw
    cdef ptrdiff_t dilation = p.dh if vertical else p.dw
    cdef ptrdiff_t pad = p.pt if vertical else p.pl
    ax.up = stride if forward else 1
    ax.down = 1 if forward else stride
    ax.off0 = -pad if forward else pad
    ax.tstep = dilation if forward else -dilation
    return ax


cdef inline int valid_taps(const Axis *ax, ptrdiff_t d, ptrdiff_t *tap, ptrdiff_t *src) noexcept nogil:
    """The taps of ``ax`` that read a valid source index for destination ``d``; returns their count."""
    cdef ptrdiff_t t, num
    cdef int count = 0
    for t in range(ax.taps):
        num = d * ax.up + ax.off0 + t * ax.tstep
        if num >= 0 and num % ax.down == 0 and num / ax.down < ax.src:
            tap[count] = t
            src[count] = num / ax.down
            count += 1
    return count


cdef ptrdiff_t direct_row(const conv_task *task, ptrdiff_t index, floating *workspace) noexcept nogil:
    """Destination row ``row`` (image n, row y) of the direct convolution, for the panels of
    group ``index // rows`` (tasks are group-major: ``index = group * rows + row``).

    In a row, the columns fall into ``down`` phase classes (one when down == 1); in a class,
    column x0 + j * down reads source column base_t + j * up for each valid tap t, so an
    interior run of j where every tap is in range is cut into tiles of ``mr`` pixels, and the
    few border columns are done one by one with only their valid taps (the padding contributes
    nothing; the summation order of the taps is the same everywhere).
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef ptrdiff_t nr = kern.nr
    cdef Axis rows = direct_axis(p, True)
    cdef Axis cols = direct_axis(p, False)
    cdef ptrdiff_t src_c = task.src_c, dst_c = task.dst_c
    cdef ptrdiff_t panel_size = rows.taps * cols.taps * src_c * nr
    cdef const floating *packed = <const floating *> task.packed
    cdef const floating *bias = <const floating *> task.bias
    cdef const floating *bias_panel
    # This thread's tap lists (the workspace is aligned for ptrdiff_t: see derive_sizes).
    cdef ptrdiff_t *row_tap = <ptrdiff_t *> workspace
    cdef ptrdiff_t *row_src = row_tap + rows.taps
    cdef ptrdiff_t *col_tap = row_src + rows.taps
    cdef ptrdiff_t *col_base = col_tap + cols.taps
    cdef ptrdiff_t *a_off = col_base + cols.taps
    cdef ptrdiff_t *b_off = a_off + rows.taps * cols.taps
    cdef ptrdiff_t n_rows = p.N * rows.dst
    cdef ptrdiff_t group = index // n_rows
    cdef ptrdiff_t row = index - group * n_rows
    cdef ptrdiff_t first_panel = group * p.n_panels // p.panel_groups
    cdef ptrdiff_t end_panel = (group + 1) * p.n_panels // p.panel_groups
    cdef ptrdiff_t image = row // rows.dst
    cdef ptrdiff_t y = row - image * rows.dst
    cdef const floating *src_image = <const floating *> task.src + image * rows.src * cols.src * src_c
    cdef floating *dst_row = <floating *> task.dst + row * cols.dst * dst_c
    cdef ptrdiff_t n_row_taps = valid_taps(&rows, y, row_tap, row_src)
    cdef ptrdiff_t n_phases = smaller(cols.down, cols.dst)
    cdef ptrdiff_t phase, n_in_phase, lo, hi, interior_lo, interior_hi, n_col_taps, n_taps, first, base
    cdef ptrdiff_t i, h, j, s, panel, reduction_steps
    cdef bint merged
    for phase in range(n_phases):
        # ceil((dst - phase) / down), without the overflow of (dst - phase + down - 1) for huge strides
        n_in_phase = (cols.dst - phase - 1) // cols.down + 1
        # Horizontal taps of this phase class and the interior run [interior_lo, interior_hi).
        n_col_taps = 0
        interior_lo = 0
        interior_hi = n_in_phase
        for h in range(cols.taps):
            first = phase * cols.up + cols.off0 + h * cols.tstep
            base = floor_div(first, cols.down)
            if base * cols.down != first:
                continue
            col_tap[n_col_taps] = h
            col_base[n_col_taps] = base
            n_col_taps += 1
            lo = ceil_div(-base, cols.up)
            hi = floor_div(cols.src - 1 - base, cols.up) + 1
            if lo > interior_lo:
                interior_lo = lo
            if hi < interior_hi:
                interior_hi = hi
        interior_lo = smaller(interior_lo, n_in_phase)
        if interior_hi < interior_lo:
            interior_hi = interior_lo
        # Interior: all taps, tiles of mr pixels.  When the horizontal taps are all there and
        # read consecutive source columns (dilation 1, forward), one pixel's KW taps are one
        # contiguous run of KW * src_c values, like the packed filters of a row of taps: they
        # merge into one tap of KW * src_c steps (same summation order, far fewer, longer inner
        # loops for thin inputs).
        merged = cols.tstep == 1 and cols.down == 1 and n_col_taps == cols.taps
        reduction_steps = cols.taps * src_c if merged else src_c
        n_taps = 0
        for i in range(n_row_taps):
            for h in range(1 if merged else n_col_taps):
                a_off[n_taps] = (row_src[i] * cols.src + col_base[h]) * src_c
                b_off[n_taps] = (row_tap[i] * cols.taps + col_tap[h]) * src_c * nr
                n_taps += 1
        for panel in range(first_panel, end_panel):
            bias_panel = bias + panel * nr if bias != NULL else NULL
            tiles_of_rows(&kern, interior_hi - interior_lo, <int>n_taps, a_off, b_off, reduction_steps,
                          src_image + interior_lo * cols.up * src_c, cols.up * src_c, 1, packed + panel * panel_size,
                          dst_row + (phase + interior_lo * cols.down) * dst_c + panel * nr, cols.down * dst_c,
                          panel_cols(dst_c, panel, nr), task.accumulate, bias_panel, task.relu)
        # Border columns, one by one, with the taps that stay inside the source.
        for j in range(n_in_phase):
            if j >= interior_lo and j < interior_hi:
                continue
            n_taps = 0
            for i in range(n_row_taps):
                for h in range(n_col_taps):
                    s = col_base[h] + j * cols.up
                    if s >= 0 and s < cols.src:
                        a_off[n_taps] = (row_src[i] * cols.src + s) * src_c
                        b_off[n_taps] = (row_tap[i] * cols.taps + col_tap[h]) * src_c * nr
                        n_taps += 1
            for panel in range(first_panel, end_panel):
                bias_panel = bias + panel * nr if bias != NULL else NULL
                kern.fn(1, <int>n_taps, a_off, b_off, <int>src_c, src_image, 0, 1, packed + panel * panel_size,
                        dst_row + (phase + j * cols.down) * dst_c + panel * nr, 0,
                        panel_cols(dst_c, panel, nr), task.accumulate, bias_panel, task.relu)
    return 0


# -- im2col (forward and input gradient) ----------------------------------------------------------------

cdef struct Patches:
    # The patch (im2col) matrix of a forward convolution: row p = (n, oh, ow) of the output,
    # column k = (kh, kw, c) of the filter, value src[n, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, c]
    # or 0 where that falls in the padding.
    ptrdiff_t H, W, C, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl


cdef inline Patches plan_patches(const conv_plan *p) noexcept nogil:
    cdef Patches g
    g.H, g.W, g.C, g.OH, g.OW, g.KH, g.KW = p.H, p.W, p.C, p.OH, p.OW, p.KH, p.KW
    g.sh, g.sw, g.dh, g.dw, g.pt, g.pl = p.sh, p.sw, p.dh, p.dw, p.pt, p.pl
    return g


cdef inline void next_pixel(ptrdiff_t *n, ptrdiff_t *oh, ptrdiff_t *ow, ptrdiff_t OH, ptrdiff_t OW) noexcept nogil:
    """(n, oh, ow) becomes the next output pixel of the batch, in row-major order."""
    ow[0] += 1
    if ow[0] == OW:
        ow[0] = 0
        oh[0] += 1
        if oh[0] == OH:
            oh[0] = 0
            n[0] += 1


cdef inline void pack_patch_rows(const Patches *g, const floating *src, ptrdiff_t p0, ptrdiff_t count,
                                 floating *buf) noexcept nogil:
    """Write rows p0 .. p0 + count - 1 of the patch matrix into ``buf`` (count x KH*KW*C)."""
    # Local copies: the compiler cannot tell that the stores to buf leave *g alone.
    cdef ptrdiff_t H = g.H, W = g.W, C = g.C, OH = g.OH, OW = g.OW, KH = g.KH, KW = g.KW
    cdef ptrdiff_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, pt = g.pt, pl = g.pl
    cdef ptrdiff_t row_len = KW * C
    cdef ptrdiff_t _pixel, kh, kw, ih, iw, iw0, c
    cdef ptrdiff_t n = p0 // (OH * OW)
    cdef ptrdiff_t oh = (p0 - n * OH * OW) // OW
    cdef ptrdiff_t ow = p0 - (n * OH + oh) * OW
    cdef floating *seg = buf
    cdef const floating *srow
    for _pixel in range(count):
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
        next_pixel(&n, &oh, &ow, OH, OW)


cdef ptrdiff_t im2col_forward_block(const conv_task *task, ptrdiff_t index, floating *patches) noexcept nogil:
    """Forward convolution of one block of output pixels as patch matrix x packed filters.

    The output pixels of the whole batch, flattened, are cut into blocks of ``block_rows``
    pixels (a fixed size, not per thread); the block's patch rows are packed into this thread's
    workspace (bounded by IM2COL_BLOCK_BYTES, whatever the batch), or read in place for a 1x1
    stride 1 layer, and multiplied with the panels of filters ``[jb, (kh, kw, c), 0:nr]`` of the
    task's group (all of them unless the blocks are few), tiles of mr pixels by nr channels.
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef Patches g = plan_patches(p)
    cdef ptrdiff_t nr = kern.nr, reduction = p.taps * p.C, n_cols = p.K
    cdef ptrdiff_t n_pixels = p.N * p.OH * p.OW
    cdef ptrdiff_t block = index // p.panel_groups, group = index - block * p.panel_groups
    cdef ptrdiff_t first = block * p.block_rows
    cdef ptrdiff_t count = smaller(n_pixels - first, p.block_rows)
    cdef const floating *packed = <const floating *> task.packed
    cdef const floating *bias = <const floating *> task.bias
    cdef floating *dst = <floating *> task.dst + first * n_cols
    cdef const floating *rows
    cdef ptrdiff_t panel, k0, steps
    cdef bint last
    cdef ptrdiff_t zero_off = 0
    if p.patches_in_place:
        rows = <const floating *> task.src + first * reduction
    else:
        pack_patch_rows(&g, <const floating *> task.src, first, count, patches)
        rows = patches
    for panel in range(group * p.n_panels // p.panel_groups, (group + 1) * p.n_panels // p.panel_groups):
        k0 = 0
        while k0 < reduction:
            steps = smaller(reduction - k0, p.reduction_block)
            last = k0 + steps == reduction
            tiles_of_rows(&kern, count, 1, &zero_off, &zero_off, steps, rows + k0, reduction, 1,
                          packed + (panel * reduction + k0) * nr, dst + panel * nr, n_cols,
                          panel_cols(n_cols, panel, nr), k0 > 0 or task.accumulate,
                          bias + panel * nr if bias != NULL and last else NULL, task.relu if last else 0)
            k0 += steps
    return 0


cdef ptrdiff_t im2col_input_grad_image(const conv_task *task, ptrdiff_t image, floating *columns) noexcept nogil:
    """Input gradient of one image as (dY x W^T) then col2im.

    ``packed`` holds W^T as panels ``[kb, cout, 0:nr]`` over the columns k = (kh, kw, cin).  For
    a block of pixels of dY, the tiles compute the rows of the patch-matrix gradient
    dCols[p, k] = sum_o dY[p, o] W[k, o] into this thread's workspace, and col2im adds each row
    back onto the input pixels its window covered (skipping the padding).  Windows of
    neighbouring pixels overlap, so an image is one task: no two threads add into one element.
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef Patches g = plan_patches(p)
    cdef ptrdiff_t nr = kern.nr, reduction = p.taps * p.C, out_channels = p.K
    cdef ptrdiff_t n_pixels = g.OH * g.OW
    cdef const floating *packed = <const floating *> task.packed
    cdef const floating *dy_image = <const floating *> task.src + image * n_pixels * out_channels
    cdef floating *dx_image = <floating *> task.dst + image * g.H * g.W * g.C
    cdef floating *column
    cdef ptrdiff_t first, count, panel, pixel, oh, ow, kh, kw, ih, iw, c
    cdef ptrdiff_t zero_off = 0
    for c in range(g.H * g.W * g.C):
        dx_image[c] = 0
    first = 0
    while first < n_pixels:
        count = smaller(n_pixels - first, p.block_rows)
        for panel in range(p.n_panels):
            tiles_of_rows(&kern, count, 1, &zero_off, &zero_off, out_channels, dy_image + first * out_channels,
                          out_channels, 1, packed + panel * out_channels * nr, columns + panel * nr, reduction,
                          panel_cols(reduction, panel, nr), 0, <const floating *> NULL, False)
        # col2im: the gradient of each patch value goes back to the input pixel it was read from.
        for pixel in range(count):
            oh = (first + pixel) // g.OW
            ow = (first + pixel) - oh * g.OW
            column = columns + pixel * reduction
            for kh in range(g.KH):
                ih = oh * g.sh + kh * g.dh - g.pt
                if ih < 0 or ih >= g.H:
                    continue
                for kw in range(g.KW):
                    iw = ow * g.sw + kw * g.dw - g.pl
                    if iw < 0 or iw >= g.W:
                        continue
                    for c in range(g.C):
                        dx_image[(ih * g.W + iw) * g.C + c] += column[(kh * g.KW + kw) * g.C + c]
        first += p.block_rows
    return 0


# -- Winograd F(2x2, 3x3) and F(4x4, 3x3) (forward and input gradient) ------------------------------

cdef ptrdiff_t winograd_block(const conv_task *task, ptrdiff_t block, floating *workspace) noexcept nogil:
    """One block of m x m output tiles of a 3x3, stride 1 convolution by Winograd F(m x m, 3x3),
    m = plan.winograd_tile (2 or 4), a = m + 2.

    The destination is cut into m x m tiles (the last row and column of tiles may hang over the
    edge); tile (r, q) of image n reads the a x a source tile at rows m r - pad_top.., columns
    m q - pad_left...  The tiles of the batch, flattened, are processed in blocks of a fixed
    size: the block's inputs are transformed into V[xi, tile, src channel] (a^2 positions xi,
    fastconv/_kernels/winograd_impl.h), then for each xi the micro-kernel multiplies V[xi] by
    the transformed filters U[xi] (packed as panels ``[jb, xi, src channel, 0:nr]``) into
    M[xi, tile, dst channel], and the output transform writes the m x m outputs with bias and ReLU.
    Returns how many tiles read an infinity or NaN (their results are not reliable).
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef int m = p.winograd_tile
    cdef fc_wino_transforms transforms = fc_select_wino(m)
    cdef ptrdiff_t positions = (m + 2) * (m + 2)
    cdef ptrdiff_t nr = kern.nr, tiles_per_block = p.block_rows
    cdef ptrdiff_t src_h = task.src_h, src_w = task.src_w, src_c = task.src_c
    cdef ptrdiff_t dst_h = task.dst_h, dst_w = task.dst_w, dst_c = task.dst_c
    cdef ptrdiff_t tile_rows = ceil_div(dst_h, m), tile_cols = ceil_div(dst_w, m)
    cdef ptrdiff_t n_tiles = p.N * tile_rows * tile_cols
    cdef ptrdiff_t first = block * tiles_per_block
    cdef ptrdiff_t count = smaller(n_tiles - first, tiles_per_block)
    cdef floating *V = workspace
    cdef floating *M = V + positions * tiles_per_block * src_c
    cdef floating *sink = M + positions * tiles_per_block * dst_c
    cdef floating *zeros = sink + dst_c
    cdef const floating *src = <const floating *> task.src
    cdef const floating *packed = <const floating *> task.packed
    cdef const floating *bias = <const floating *> task.bias
    cdef floating *dst = <floating *> task.dst
    cdef ptrdiff_t t, image, rest, r, q, xi, panel
    cdef ptrdiff_t zero_off = 0
    cdef ptrdiff_t n_bad = 0
    memset(zeros, 0, sizeof(floating) * (src_c if src_c > dst_c else dst_c))
    if bias == NULL:
        bias = zeros
    for t in range(count):
        image = (first + t) // (tile_rows * tile_cols)
        rest = (first + t) - image * tile_rows * tile_cols
        r = rest // tile_cols
        q = rest - r * tile_cols
        if floating is float:
            n_bad += transforms.input_f(src + image * src_h * src_w * src_c, src_h, src_w, src_c,
                                        m * r - task.pad_top, m * q - task.pad_left, zeros, V + t * src_c,
                                        tiles_per_block * src_c)
        else:
            n_bad += transforms.input_d(src + image * src_h * src_w * src_c, src_h, src_w, src_c,
                                        m * r - task.pad_top, m * q - task.pad_left, zeros, V + t * src_c,
                                        tiles_per_block * src_c)
    for xi in range(positions):
        for panel in range(p.n_panels):
            tiles_of_rows(&kern, count, 1, &zero_off, &zero_off, src_c, V + xi * tiles_per_block * src_c, src_c, 1,
                          packed + (panel * positions + xi) * src_c * nr, M + xi * tiles_per_block * dst_c + panel * nr,
                          dst_c, panel_cols(dst_c, panel, nr), 0, <const floating *> NULL, False)
    for t in range(count):
        image = (first + t) // (tile_rows * tile_cols)
        rest = (first + t) - image * tile_rows * tile_cols
        r = rest // tile_cols
        q = rest - r * tile_cols
        if floating is float:
            transforms.output_f(M + t * dst_c, tiles_per_block * dst_c, dst_c, bias, task.relu,
                                dst + image * dst_h * dst_w * dst_c, dst_h, dst_w, m * r, m * q, sink)
        else:
            transforms.output_d(M + t * dst_c, tiles_per_block * dst_c, dst_c, bias, task.relu,
                                dst + image * dst_h * dst_w * dst_c, dst_h, dst_w, m * r, m * q, sink)
    return n_bad


# -- forward and input gradient: the entry ------------------------------------------------------------

def convolve(KernelPlan plan, const floating[:, :, :, ::1] src not None, const floating[::1] packed not None,
             floating[:, :, :, ::1] dst not None, const floating[::1] bias=None, bint relu=False,
             bint accumulate=False, bint relu6=False):
    """Run a forward or input-gradient plan: ``src`` (x, or dY) -> ``dst`` (y, or dX), NHWC.

    ``packed`` holds the filters packed for the plan (:func:`pack_panels`,
    :func:`pack_winograd_filters`); ``bias`` (forward only: padded to ``plan.bias_size``, or
    None) and ``relu`` form the epilogue (``relu6``, forward of direct and im2col plans: the
    clamp to [0, 6] instead, NaN kept).  ``accumulate`` (forward, direct and im2col plans):
    ``dst`` holds an addend on entry (a residual) and the result is ``relu(dst + conv + bias)``,
    in the same pass.  Every buffer is checked against the plan first.
    Returns False, having written nothing reliable, when a Winograd plan meets an infinity or
    NaN in ``src`` (the transform would mix it into NaNs that the direct convolution does not
    produce); True otherwise.
    """
    cdef const conv_plan *p = &plan.c
    check_plan(p, "convolve", sizeof(floating), False)
    cdef bint forward = p.pass_ == PASS_FORWARD
    check_shape("convolve", "src", src.shape, 4, image_shape(p, forward))
    check_shape("convolve", "dst", dst.shape, 4, image_shape(p, not forward))
    check_shape("convolve", "packed", packed.shape, 1, (p.packed_size,))
    if bias is not None:
        if not forward:
            raise ValueError("fastconv._conv.convolve: the input gradient takes no bias")
        check_shape("convolve", "bias", bias.shape, 1, (p.bias_size,))
    if accumulate and (not forward or p.algorithm == ALGORITHM_WINOGRAD):
        raise ValueError("fastconv._conv.convolve: accumulate applies to the forward pass of direct and im2col plans")
    if relu6 and (not forward or p.algorithm == ALGORITHM_WINOGRAD):
        raise ValueError("fastconv._conv.convolve: relu6 applies to the forward pass of direct and im2col plans")
    if dst.size == 0:
        return True
    if src.size == 0:
        if not accumulate:
            dst[...] = 0    # nothing to sum (the wrapper applies a bias itself)
        return True
    cdef conv_task task
    task.plan = p
    task.src = &src[0, 0, 0, 0]
    task.grad = NULL
    task.packed = &packed[0]
    task.dst = &dst[0, 0, 0, 0]
    task.bias = &bias[0] if bias is not None else NULL
    task.relu = 2 if relu6 else (1 if relu else 0)
    task.accumulate = accumulate
    task.src_h, task.src_w, task.src_c = src.shape[1], src.shape[2], src.shape[3]
    task.dst_h, task.dst_w, task.dst_c = dst.shape[1], dst.shape[2], dst.shape[3]
    # Winograd's source padding: the input gradient is the convolution of dY, padded by
    # 2 - pad on each side, with the filters flipped in space and transposed in channels.
    task.pad_top = p.pt if forward else 2 - p.pt
    task.pad_left = p.pl if forward else 2 - p.pl
    if p.algorithm == ALGORITHM_DIRECT:
        run_tasks(direct_row[floating], &task)
    elif p.algorithm == ALGORITHM_WINOGRAD:
        return run_tasks(winograd_block[floating], &task) == 0
    elif forward:
        run_tasks(im2col_forward_block[floating], &task)
    else:
        run_tasks(im2col_input_grad_image[floating], &task)
    return True


# -- filter gradient -------------------------------------------------------------------------------

cdef inline void pack_dy_panel(const floating *dy, ptrdiff_t count, ptrdiff_t cout, ptrdiff_t j0,
                               ptrdiff_t nr, floating *panel) noexcept nogil:
    """panel[p, 0:nr] = dy[p, j0:j0 + nr] for count pixels (rows of cout), zero past cout."""
    cdef ptrdiff_t pixel, j
    cdef ptrdiff_t width = smaller(cout - j0, nr)
    for pixel in range(count):
        for j in range(width):
            panel[pixel * nr + j] = dy[pixel * cout + j0 + j]
        for j in range(width, nr):
            panel[pixel * nr + j] = 0


cdef inline void pack_tap_rows(const Patches *g, const floating *src, ptrdiff_t p0, ptrdiff_t count,
                               ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t c0, ptrdiff_t width, floating *buf) noexcept nogil:
    """buf[i, 0:width] = the values of channels c0 .. c0 + width - 1 that tap (kh, kw) reads for
    output pixel p0 + i (zeros where it falls in the padding), for count pixels."""
    cdef ptrdiff_t H = g.H, W = g.W, C = g.C, OH = g.OH, OW = g.OW
    cdef ptrdiff_t n = p0 // (OH * OW)
    cdef ptrdiff_t oh = (p0 - n * OH * OW) // OW
    cdef ptrdiff_t ow = p0 - (n * OH + oh) * OW
    cdef ptrdiff_t _pixel, c, ih, iw
    cdef const floating *s
    cdef floating *row = buf
    for _pixel in range(count):
        ih = oh * g.sh + kh * g.dh - g.pt
        iw = ow * g.sw + kw * g.dw - g.pl
        if 0 <= ih < H and 0 <= iw < W:
            s = src + ((n * H + ih) * W + iw) * C + c0
            for c in range(width):
                row[c] = s[c]
        else:
            for c in range(width):
                row[c] = 0
        row += width
        next_pixel(&n, &oh, &ow, OH, OW)


cdef ptrdiff_t filter_grad_gemm_block(const conv_task *task, ptrdiff_t index, floating *workspace) noexcept nogil:
    """Block ``index`` of dW[(kh, kw, c), o] = sum over the batch's output pixels p of
    patch[p, (kh, kw, c)] * dY[p, o], into the one row of partials (the plan has one slice).

    The block is one tap (kh, kw) and a chunk of ``chunk_rows`` input channels by a group of
    panels of output channels.  For each block of ``block_rows`` pixels the tap's values of the
    chunk are gathered into this thread's workspace (a 1x1, stride 1, unpadded layer reads x in
    place instead), and for each panel dY's panel is packed next to them; the tiles (mr input
    channels x nr output channels) reduce over the block's pixels, and each tile of dW
    accumulates from the second block of pixels on.
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef Patches g = plan_patches(p)
    cdef ptrdiff_t nr = kern.nr, mr = kern.mr, C = p.C, out_channels = p.K
    cdef ptrdiff_t n_pixels = p.N * p.OH * p.OW
    cdef ptrdiff_t n_chunks = ceil_div(C, p.chunk_rows)
    cdef ptrdiff_t group = index % p.panel_groups
    cdef ptrdiff_t chunk = (index // p.panel_groups) % n_chunks
    cdef ptrdiff_t tap = index // (p.panel_groups * n_chunks)
    cdef ptrdiff_t kh = tap // p.KW, kw = tap - (tap // p.KW) * p.KW
    cdef ptrdiff_t c_first = chunk * p.chunk_rows
    cdef ptrdiff_t width = smaller(C - c_first, p.chunk_rows)
    cdef const floating *x = <const floating *> task.src
    cdef const floating *dy = <const floating *> task.grad
    cdef floating *dw = <floating *> task.dst + (tap * C + c_first) * out_channels
    cdef floating *panel_buf = workspace
    cdef floating *rows = workspace + p.block_rows * nr
    cdef const floating *a
    cdef ptrdiff_t a_step
    cdef ptrdiff_t first = 0, count, panel, c0
    cdef ptrdiff_t zero_off = 0
    while first < n_pixels:
        count = smaller(n_pixels - first, p.block_rows)
        if p.patches_in_place:
            a = x + first * C + c_first
            a_step = C
        else:
            pack_tap_rows(&g, x, first, count, kh, kw, c_first, width, rows)
            a = rows
            a_step = width
        for panel in range(group * p.n_panels // p.panel_groups, (group + 1) * p.n_panels // p.panel_groups):
            pack_dy_panel(dy + first * out_channels, count, out_channels, panel * nr, nr, panel_buf)
            c0 = 0
            while c0 < width:
                kern.fn(<int>smaller(width - c0, mr), 1, &zero_off, &zero_off, <int>count, a + c0, 1, a_step,
                        panel_buf, dw + c0 * out_channels + panel * nr, out_channels,
                        panel_cols(out_channels, panel, nr), first > 0, <const floating *> NULL, 0)
                c0 += mr
        first += p.block_rows
    return 0


cdef ptrdiff_t filter_grad_slice(const conv_task *task, ptrdiff_t slice_index, floating *workspace) noexcept nogil:
    """Slice ``slice_index`` of the output rows (n, oh): its sum into its own row of partials.

    A tile is (rows of dW) x (a panel of nr output channels), reducing over pixels:

    direct   rows are mr input channels of one tap (kh, kw), read in place from x along a row
             of output pixels (the valid range of ow for that tap, stride sw * C);
    im2col   rows are mr consecutive columns of the packed patch matrix of a block of pixels,
             which makes thin inputs (C = 1 or 3) fill the tile rows.
    """
    cdef const conv_plan *p = task.plan
    cdef fc_kernel kern = p.kernel
    cdef Patches g = plan_patches(p)
    cdef ptrdiff_t nr = kern.nr, C = g.C, out_channels = p.K
    cdef ptrdiff_t reduction = p.taps * C
    cdef ptrdiff_t size = reduction * out_channels
    cdef ptrdiff_t n_rows = p.N * g.OH
    cdef bint use_im2col = p.algorithm == ALGORITHM_IM2COL
    cdef const floating *x = <const floating *> task.src
    cdef const floating *dy = <const floating *> task.grad
    cdef floating *partial = <floating *> task.dst + slice_index * size
    cdef floating *panel_buf = workspace
    cdef floating *patches = workspace + (p.block_rows if use_im2col else g.OW) * nr
    cdef ptrdiff_t row = slice_index * n_rows // p.slices
    cdef ptrdiff_t row_end = (slice_index + 1) * n_rows // p.slices
    cdef ptrdiff_t i, first, end, count, panel, image, oh, kh, kw, ih, lo, hi
    cdef int n_cols
    cdef ptrdiff_t zero_off = 0
    for i in range(size):
        partial[i] = 0
    if use_im2col:
        first = row * g.OW
        end = row_end * g.OW
        while first < end:
            count = smaller(end - first, p.block_rows)
            pack_patch_rows(&g, x, first, count, patches)
            for panel in range(p.n_panels):
                pack_dy_panel(dy + first * out_channels, count, out_channels, panel * nr, nr, panel_buf)
                tiles_of_rows(&kern, reduction, 1, &zero_off, &zero_off, count, patches, 1, reduction, panel_buf,
                              partial + panel * nr, out_channels, panel_cols(out_channels, panel, nr), 1,
                              <const floating *> NULL, False)
            first += p.block_rows
        return 0
    while row < row_end:
        image = row // g.OH
        oh = row - image * g.OH
        for panel in range(p.n_panels):
            n_cols = panel_cols(out_channels, panel, nr)
            pack_dy_panel(dy + row * g.OW * out_channels, g.OW, out_channels, panel * nr, nr, panel_buf)
            for kh in range(g.KH):
                ih = oh * g.sh + kh * g.dh - g.pt
                if ih < 0 or ih >= g.H:
                    continue
                for kw in range(g.KW):
                    # Output columns whose input column ow*sw + kw*dw - pl is inside.
                    lo = ceil_div(g.pl - kw * g.dw, g.sw)
                    if lo < 0:
                        lo = 0
                    hi = smaller(floor_div(g.W - 1 + g.pl - kw * g.dw, g.sw) + 1, g.OW)
                    if lo >= hi:
                        continue
                    tiles_of_rows(&kern, C, 1, &zero_off, &zero_off, hi - lo,
                                  x + ((image * g.H + ih) * g.W + lo * g.sw + kw * g.dw - g.pl) * C, 1, g.sw * C,
                                  panel_buf + lo * nr, partial + (kh * g.KW + kw) * C * out_channels + panel * nr,
                                  out_channels, n_cols, 1, <const floating *> NULL, False)
        row += 1
    return 0


def filter_gradient(KernelPlan plan, const floating[:, :, :, ::1] x not None, const floating[:, :, :, ::1] dy not None,
                    floating[:, ::1] partials not None, floating[::1] dw not None):
    """Filter gradient dW[(kh, kw, c), o] = sum over pixels of patch[p, (kh, kw, c)] * dY[p, o].

    The output rows (n, oh) of the batch are cut into ``plan.slices`` slices; each slice is one
    task that sums its rows into its own row of ``partials`` (slices x KH*KW*C*K), and the
    slices are then added in order into ``dw`` (KH*KW*C*K): no data races, and the same bits
    for any number of threads.
    """
    cdef const conv_plan *p = &plan.c
    check_plan(p, "filter_gradient", sizeof(floating), True)
    cdef ptrdiff_t size = p.taps * p.C * p.K
    check_shape("filter_gradient", "x", x.shape, 4, image_shape(p, True))
    check_shape("filter_gradient", "dy", dy.shape, 4, image_shape(p, False))
    check_shape("filter_gradient", "partials", partials.shape, 2, (p.slices, size))
    check_shape("filter_gradient", "dw", dw.shape, 1, (size,))
    if size == 0:
        return
    if x.size == 0 or dy.size == 0:
        dw[:] = 0
        return
    cdef conv_task task
    task.plan = p
    task.src = &x[0, 0, 0, 0]
    task.grad = &dy[0, 0, 0, 0]
    task.packed = NULL
    task.bias = NULL
    task.dst = &partials[0, 0]
    task.relu = 0
    task.accumulate = False
    if p.chunk_rows > 0:
        run_tasks(filter_grad_gemm_block[floating], &task)
    else:
        run_tasks(filter_grad_slice[floating], &task)
    cdef ptrdiff_t e, s
    cdef floating total
    # dW = the slices' partial sums, added in slice order (element ranges in parallel).
    for e in prange(size, nogil=True, schedule="static", num_threads=p.n_threads):
        total = partials[0, e]
        for s in range(1, p.slices):
            total = total + partials[s, e]
        dw[e] = total
