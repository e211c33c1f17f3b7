/*
 * The micro-kernels of fastconv and their run-time dispatch.
 *
 * tile_impl.h holds the one kernel; here it is instantiated for float and double, in a wide
 * form (2 vectors of output channels, for layers with many channels) and a narrow form
 * (1 vector, more rows, for layers with few output channels), and for each instruction set:
 *
 *   avx512  x86-64 with AVX-512F          (32 vector registers)
 *   avx2    x86-64 with AVX2 and FMA      (16 vector registers)
 *   base    whatever the compiler targets by default (SSE2 on x86-64, NEON on arm64)
 *
 * The build uses no -march flag, so one binary runs on any CPU of its architecture; the wider
 * kernels are compiled through function attributes and chosen once, from cpuid, at first use.
 * FASTCONV_ISA=base|avx2|avx512 in the environment caps the choice (for tests and comparisons).
 *
 * Register budget of a tile: MR x NV accumulators + NV filter vectors + 1 broadcast.
 *   avx512: 12 x 2 + 3 = 27 and 24 x 1 + 2 = 26 of 32;  avx2 and base: 6 x 2 + 3 = 15 and
 *   12 x 1 + 2 = 14 of 16.
 */
#ifndef FASTCONV_TILE_H
#define FASTCONV_TILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isa.h"

typedef void (*fc_tile_fn)(int m, int ntaps, const ptrdiff_t *a_off, const ptrdiff_t *b_off, int kc,
                           const void *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const void *b,
                           void *c, ptrdiff_t c_rs, int nc, int beta, const void *bias, int relu);

/* A kernel and its tile shape: C tiles of mr rows x nr columns, B packed nr columns wide. */
typedef struct {
    fc_tile_fn fn;
    int mr;
    int nr;
} fc_kernel;

#if !(defined(__GNUC__) || defined(__clang__))
#error "fastconv needs a GCC- or Clang-compatible C compiler (GNU vector extensions)"
#endif

#define FC_BASE_BYTES 16   /* SSE2 / NEON: the vector width every 64-bit target of interest has */

#define FC_ISA base
#define FC_TARGET
#define FC_VBYTES FC_BASE_BYTES
#define FC_MR_WIDE 6
#include "tile_isa.h"
#undef FC_ISA
#undef FC_TARGET
#undef FC_VBYTES
#undef FC_MR_WIDE

#ifdef FC_HAVE_X86_VARIANTS

#define FC_ISA avx2
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_VBYTES 32
#define FC_MR_WIDE 6
#include "tile_isa.h"
#undef FC_ISA
#undef FC_TARGET
#undef FC_VBYTES
#undef FC_MR_WIDE

#define FC_ISA avx512
#define FC_TARGET __attribute__((target("avx512f,avx2,fma")))
#define FC_VBYTES 64
#define FC_MR_WIDE 12
#include "tile_isa.h"
#undef FC_ISA
#undef FC_TARGET
#undef FC_VBYTES
#undef FC_MR_WIDE
#endif /* x86-64 */

/* The kernel for an element size (4 or 8 bytes) and a number of output columns: the narrow
   form when the columns fit in one vector, where the wide one would multiply padding. */
static fc_kernel fc_select_kernel(int elem_size, int n_cols)
{
    /* [isa][double][narrow] */
    static const fc_tile_fn fns[3][2][2] = {
        {{tile_f_base_wide, tile_f_base_narrow}, {tile_d_base_wide, tile_d_base_narrow}},
#ifdef FC_HAVE_X86_VARIANTS
        {{tile_f_avx2_wide, tile_f_avx2_narrow}, {tile_d_avx2_wide, tile_d_avx2_narrow}},
        {{tile_f_avx512_wide, tile_f_avx512_narrow}, {tile_d_avx512_wide, tile_d_avx512_narrow}},
#endif
    };
    static const int vector_bytes[3] = {FC_BASE_BYTES, 32, 64};
    static const int rows_wide[3] = {6, 6, 12};
    const int isa = fc_isa();
    const int vl = vector_bytes[isa] / elem_size;
    const int narrow = n_cols <= vl;
    fc_kernel k;
    k.fn = fns[isa][elem_size == 8][narrow];
    k.mr = narrow ? 2 * rows_wide[isa] : rows_wide[isa];
    k.nr = narrow ? vl : 2 * vl;
    return k;
}

#endif /* FASTCONV_TILE_H */
