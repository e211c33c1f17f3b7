/*
 * Compiles FC_IMPL, a header of kernels written once in terms of an element type FC_T, a name
 * suffix FC_ID and function attributes FC_TARGET, for float and double (suffixes f_... and d_...)
 * and for two instruction sets: the baseline (..._base) and, on x86-64, AVX2+FMA (..._avx2);
 * the caller picks the variant at run time (isa.h). FC_VBYTES is the variant's vector width in
 * bytes, for kernels written with GNU vector types. Used by pool.h and winograd.h; tile.h has
 * its own scheme (three ISAs, per-ISA tile sizes). No include guard: included once per FC_IMPL.
 */
#include "isa.h"

#define FC_TARGET
#define FC_VBYTES 16
#define FC_T float
#define FC_ID f_base
#include FC_IMPL
#undef FC_T
#undef FC_ID
#define FC_T double
#define FC_ID d_base
#include FC_IMPL
#undef FC_T
#undef FC_ID
#undef FC_TARGET
#undef FC_VBYTES

#ifdef FC_HAVE_X86_VARIANTS
#define FC_TARGET __attribute__((target("avx2,fma")))
#define FC_VBYTES 32
#define FC_T float
#define FC_ID f_avx2
#include FC_IMPL
#undef FC_T
#undef FC_ID
#define FC_T double
#define FC_ID d_avx2
#include FC_IMPL
#undef FC_T
#undef FC_ID
#undef FC_TARGET
#undef FC_VBYTES
#endif
