# Declarations of the C micro-kernel (fastconv/_kernels/tile.h) for the Cython kernel modules.
from libc.stddef cimport ptrdiff_t

cdef extern from "tile.h" nogil:
    ctypedef void (*fc_tile_fn)(int m, int ntaps, const ptrdiff_t *a_off, const ptrdiff_t *b_off,
                                int kc, const void *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const void *b,
                                void *c, ptrdiff_t c_rs, int nc, int beta, const void *bias,
                                int relu) noexcept nogil
    ctypedef struct fc_kernel:
        fc_tile_fn fn
        int mr
        int nr
    fc_kernel fc_select_kernel(int elem_size, int n_cols)
