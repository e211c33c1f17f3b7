/*
 * Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms (winograd_impl.h) for float and double,
 * compiled for AVX2 and for the baseline and chosen at run time (isa.h), like the pooling rows.
 */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"

#define FC_IMPL "winograd_impl.h"
#include "instantiate.h"
#undef FC_IMPL

typedef int (*fc_wino_input_f)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                               const float *, float *, ptrdiff_t);
typedef int (*fc_wino_input_d)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                               const double *, double *, ptrdiff_t);
typedef void (*fc_wino_output_f)(const float *, ptrdiff_t, ptrdiff_t, const float *, int, float *, ptrdiff_t,
                                 ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
typedef void (*fc_wino_output_d)(const double *, ptrdiff_t, ptrdiff_t, const double *, int, double *, ptrdiff_t,
                                 ptrdiff_t, ptrdiff_t, ptrdiff_t, double *);

/* The transforms of one tile size (2: F(2x2, 3x3), 4: F(4x4, 3x3)). */
typedef struct {
    fc_wino_input_f input_f;
    fc_wino_input_d input_d;
    fc_wino_output_f output_f;
    fc_wino_output_d output_d;
} fc_wino_transforms;

static fc_wino_transforms fc_select_wino(int tile)
{
    fc_wino_transforms t2 = {wino2_input_f_base, wino2_input_d_base, wino2_output_f_base, wino2_output_d_base};
    fc_wino_transforms t4 = {wino4_input_f_base, wino4_input_d_base, wino4_output_f_base, wino4_output_d_base};
#ifdef FC_HAVE_X86_VARIANTS
    if (fc_isa() >= FC_ISA_AVX2) {
        fc_wino_transforms v2 = {wino2_input_f_avx2, wino2_input_d_avx2, wino2_output_f_avx2, wino2_output_d_avx2};
        fc_wino_transforms v4 = {wino4_input_f_avx2, wino4_input_d_avx2, wino4_output_f_avx2, wino4_output_d_avx2};
        t2 = v2;
        t4 = v4;
    }
#endif
    return tile == 4 ? t4 : t2;
}

#endif /* FASTCONV_WINOGRAD_H */
