/*
 * Pooling rows (pool_impl.h) for float and double, compiled for AVX2 and for the baseline, and
 * chosen at run time like the convolution micro-kernels (isa.h).
 */
#ifndef FASTCONV_POOL_H
#define FASTCONV_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"

/* Window of output pixel (oh, ow): input rows oh*sh - pt .. + kh - 1 and columns ow*sw - pl ..
   + kw - 1, clipped to the H x W image (padded positions are never read). */
typedef struct {
    ptrdiff_t H, W, C, OH, OW, kh, kw, sh, sw, pt, pl;
} fc_window;

static inline ptrdiff_t fc_clip_lo(ptrdiff_t start) { return start > 0 ? start : 0; }

static inline ptrdiff_t fc_clip_hi(ptrdiff_t start, ptrdiff_t size, ptrdiff_t extent)
{
    return start + size < extent ? start + size : extent;
}

/* The outputs o in [lo, hi) whose window o*s - pad .. o*s - pad + k - 1 contains input i >= 0:
   o*s > i + pad - k and o*s <= i + pad.  lo = ceil(first / s), written (first - 1) / s + 1:
   the usual (first + s - 1) / s overflows for strides near the int64 limit (it went negative,
   and the gradient row read before its buffer). */
static inline ptrdiff_t fc_covering_lo(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t k, ptrdiff_t s)
{
    const ptrdiff_t first = i + pad - k + 1;
    return first > 0 ? (first - 1) / s + 1 : 0;
}

static inline ptrdiff_t fc_covering_hi(ptrdiff_t i, ptrdiff_t pad, ptrdiff_t s, ptrdiff_t n_out)
{
    const ptrdiff_t hi = (i + pad) / s + 1;
    return hi < n_out ? hi : n_out;
}

#define FC_IMPL "pool_impl.h"
#include "instantiate.h"
#undef FC_IMPL

typedef void (*fc_max_row_f)(const fc_window *, const float *, ptrdiff_t, float, float *, int32_t *);
typedef void (*fc_max_row_d)(const fc_window *, const double *, ptrdiff_t, double, double *, int32_t *);
typedef void (*fc_avg_row_f)(const fc_window *, const float *, ptrdiff_t, float *);
typedef void (*fc_avg_row_d)(const fc_window *, const double *, ptrdiff_t, double *);
typedef ptrdiff_t (*fc_grad_row_f)(const fc_window *, const float *, const int32_t *, ptrdiff_t, float *);
typedef ptrdiff_t (*fc_grad_row_d)(const fc_window *, const double *, const int32_t *, ptrdiff_t, double *);

/* The row functions of the active instruction set (AVX-512 machines use the AVX2 ones: these
   loops are bound by memory, not by the vector width). */
typedef struct {
    fc_max_row_f max_f;
    fc_max_row_d max_d;
    fc_avg_row_f avg_f;
    fc_avg_row_d avg_d;
    fc_grad_row_f grad_f;
    fc_grad_row_d grad_d;
} fc_pool_rows;

static fc_pool_rows fc_select_pool_rows(void)
{
    fc_pool_rows r = {max_row_f_base, max_row_d_base, avg_row_f_base, avg_row_d_base,
                      grad_row_f_base, grad_row_d_base};
#ifdef FC_HAVE_X86_VARIANTS
    if (fc_isa() >= FC_ISA_AVX2) {
        fc_pool_rows v = {max_row_f_avx2, max_row_d_avx2, avg_row_f_avx2, avg_row_d_avx2,
                          grad_row_f_avx2, grad_row_d_avx2};
        r = v;
    }
#endif
    return r;
}

#endif /* FASTCONV_POOL_H */
