/*
 * Depthwise convolution rows (depthwise_impl.h) for float and double, compiled for each
 * instruction set like the convolution micro-kernels (tile.h: AVX-512, AVX2+FMA and the
 * baseline, chosen at run time from cpuid, see isa.h).  Here the vectors run along the channel
 * axis, which NHWC keeps contiguous: every output channel has its own filter, so there is no
 * reduction over channels to tile, only over the kh x kw taps.
 */
#ifndef FASTCONV_DEPTHWISE_H
#define FASTCONV_DEPTHWISE_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"

/* One spatial axis.  Destination index d and tap t read the source index

       s = (d * up + off0 + t * tstep) / down,  valid when the division is exact and 0 <= s < src.

   Forward: up = stride, down = 1, off0 = -pad_before, tstep = dilation.
   Input gradient (a gather over the outputs that saw an input): up = 1, down = stride,
   off0 = pad_before, tstep = -dilation. */
typedef struct {
    ptrdiff_t dst, src, taps, up, down, off0, tstep;
} fc_dw_axis;

enum { FC_DW_LINEAR = 0, FC_DW_RELU = 1, FC_DW_RELU6 = 2 };

/* Destination pixels per register tile of the row kernel. */
#define FC_DW_TILE 8

/* Floor division for b > 0 and any sign of a (C division truncates toward zero). */
static inline ptrdiff_t fc_dw_floor_div(ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static inline ptrdiff_t fc_dw_ceil_div(ptrdiff_t a, ptrdiff_t b) { return -fc_dw_floor_div(-a, b); }

/* The taps of destination d that read inside the source: their indices and source indices,
   in increasing tap order; returns how many. */
static ptrdiff_t fc_dw_taps(const fc_dw_axis *ax, ptrdiff_t d, ptrdiff_t *tap, ptrdiff_t *src)
{
    ptrdiff_t n = 0;
    for (ptrdiff_t t = 0; t < ax->taps; t++) {
        const ptrdiff_t num = d * ax->up + ax->off0 + t * ax->tstep;
        const ptrdiff_t s = fc_dw_floor_div(num, ax->down);
        if (s * ax->down == num && s >= 0 && s < ax->src) {
            tap[n] = t;
            src[n] = s;
            n++;
        }
    }
    return n;
}

#define FC_TARGET
#define FC_VBYTES 16   /* SSE2 / NEON */
#define FC_T float
#define FC_IT int32_t
#define FC_ID f_base
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#define FC_T double
#define FC_IT int64_t
#define FC_ID d_base
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#undef FC_VBYTES
#undef FC_TARGET

#ifdef FC_HAVE_X86_VARIANTS
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_VBYTES 32
#define FC_T float
#define FC_IT int32_t
#define FC_ID f_avx2
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#define FC_T double
#define FC_IT int64_t
#define FC_ID d_avx2
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#undef FC_VBYTES
#undef FC_TARGET

#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_VBYTES 64
#define FC_T float
#define FC_IT int32_t
#define FC_ID f_avx512
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#define FC_T double
#define FC_IT int64_t
#define FC_ID d_avx512
#include "depthwise_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_ID
#undef FC_VBYTES
#undef FC_TARGET
#endif /* x86-64 */

typedef void (*fc_dw_row_f)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const float *const *,
                            const float *, ptrdiff_t, const float *, int, float *, ptrdiff_t *);
typedef void (*fc_dw_row_d)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const double *const *,
                            const double *, ptrdiff_t, const double *, int, double *, ptrdiff_t *);
typedef void (*fc_dw_filter_row_f)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const float *const *,
                                   const float *, ptrdiff_t, float *);
typedef void (*fc_dw_filter_row_d)(const fc_dw_axis *, ptrdiff_t, const ptrdiff_t *, const double *const *,
                                   const double *, ptrdiff_t, double *);

/* The row functions of the active instruction set. */
typedef struct {
    fc_dw_row_f row_f;
    fc_dw_row_d row_d;
    fc_dw_filter_row_f filter_f;
    fc_dw_filter_row_d filter_d;
} fc_dw_kernels;

static fc_dw_kernels fc_select_dw(void)
{
    fc_dw_kernels k = {dw_row_f_base, dw_row_d_base, dw_filter_row_f_base, dw_filter_row_d_base};
#ifdef FC_HAVE_X86_VARIANTS
    if (fc_isa() == FC_ISA_AVX512) {
        fc_dw_kernels v = {dw_row_f_avx512, dw_row_d_avx512, dw_filter_row_f_avx512, dw_filter_row_d_avx512};
        k = v;
    } else if (fc_isa() == FC_ISA_AVX2) {
        fc_dw_kernels v = {dw_row_f_avx2, dw_row_d_avx2, dw_filter_row_f_avx2, dw_filter_row_d_avx2};
        k = v;
    }
#endif
    return k;
}

#endif /* FASTCONV_DEPTHWISE_H */
