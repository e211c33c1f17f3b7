# The typed plan of one pass of a convolution (fastconv/_conv.pyx): what fastconv/conv.py decides
# once (geometry, algorithm, micro-kernel, buffer sizes, threads) and every kernel call checks its
# buffers against before it releases the GIL.
from libc.stddef cimport ptrdiff_t

from fastconv._tile cimport fc_kernel

cdef enum conv_pass:
    PASS_FORWARD            # x (N, H, W, C) * w -> y (N, OH, OW, K)
    PASS_INPUT_GRADIENT     # dY (N, OH, OW, K) -> dX (N, H, W, C)
    PASS_FILTER_GRADIENT    # x, dY -> dW (KH, KW, C, K)

cdef enum conv_algorithm:
    ALGORITHM_DIRECT
    ALGORITHM_IM2COL
    ALGORITHM_WINOGRAD

cdef struct conv_plan:
    # The forward convolution the pass belongs to: output pixel (oh, ow) and tap (kh, kw) read
    # input pixel (oh * sh + kh * dh - pt, ow * sw + kw * dw - pl), zero outside the image.
    ptrdiff_t N, H, W, C, OH, OW, K, KH, KW, sh, sw, dh, dw, pt, pl
    ptrdiff_t taps              # KH * KW
    conv_pass pass_
    conv_algorithm algorithm
    int itemsize                # 4 (float32) or 8 (float64)
    fc_kernel kernel            # the micro-kernel for the pass's columns; kernel.nr is the panel width
    ptrdiff_t n_cols            # columns of the micro-kernel's products (its panels cover them)
    ptrdiff_t n_panels          # ceil(n_cols / nr)
    ptrdiff_t packed_size       # elements of the packed filters (0 for the filter gradient)
    ptrdiff_t bias_size         # elements of the padded bias (n_panels * nr; 0 where no bias applies)
    ptrdiff_t block_rows        # rows of one block: patch rows (im2col), tiles (Winograd)
    int winograd_tile           # Winograd: outputs per side of a tile, 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)); else 0
    bint patches_in_place       # im2col of a 1x1, stride 1, unpadded layer: x is its own patch matrix
    ptrdiff_t chunk_rows        # im2col filter gradient as a GEMM per tap: input channels per task (0: by slices)
    # im2col forward: steps of the reduction per micro-kernel call (a packed panel's slice that
    # stays in the L1 cache); the blocks accumulate into the output
    ptrdiff_t reduction_block
    ptrdiff_t panel_groups      # im2col in place: each block of rows is this many tasks, one per group of panels
    ptrdiff_t n_tasks           # parallel tasks (their split does not depend on n_threads)
    ptrdiff_t workspace_bytes   # per thread, a multiple of a cache line
    ptrdiff_t slices            # partial sums of the filter gradient
    int n_threads


cdef class KernelPlan:
    cdef conv_plan c
