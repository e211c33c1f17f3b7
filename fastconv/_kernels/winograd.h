/*
 * Winograd F(2x2, 3x3) tile transforms (winograd_impl.h) for float and double, compiled for AVX2
 * and for the baseline and chosen at run time (isa.h), like the pooling rows.
 */
#ifndef FASTCONV_WINOGRAD_H
#define FASTCONV_WINOGRAD_H

#include <stddef.h>

#include "isa.h"

#define FC_IMPL "winograd_impl.h"
#include "instantiate.h"
#undef FC_IMPL

typedef struct {
    int (*input_f)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, float *, ptrdiff_t);
    int (*input_d)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *, double *, ptrdiff_t);
    void (*output_f)(const float *, ptrdiff_t, ptrdiff_t, const float *, int, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, float *);
    void (*output_d)(const double *, ptrdiff_t, ptrdiff_t, const double *, int, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, double *);
} fc_wino_transforms;

static fc_wino_transforms fc_select_wino(void)
{
    fc_wino_transforms t = {wino_input_f_base, wino_input_d_base, wino_output_f_base, wino_output_d_base};
#ifdef FC_HAVE_X86_VARIANTS
    if (fc_isa() >= FC_ISA_AVX2) {
        fc_wino_transforms v = {wino_input_f_avx2, wino_input_d_avx2, wino_output_f_avx2, wino_output_d_avx2};
        t = v;
    }
#endif
    return t;
}

#endif /* FASTCONV_WINOGRAD_H */
