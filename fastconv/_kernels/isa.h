/*
 * Which SIMD instruction set the micro-kernels of tile.h use: the best this CPU runs, decided
 * once per process and module from cpuid, capped by FASTCONV_ISA=base|avx2 in the environment.
 * Separate from tile.h so that modules that only report it need not compile the kernels.
 */
#ifndef FASTCONV_ISA_H
#define FASTCONV_ISA_H

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#define FC_HAVE_X86_VARIANTS 1
#endif

enum { FC_ISA_BASE = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2 };

static int fc_isa_supported(void)
{
#ifdef FC_HAVE_X86_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return FC_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return FC_ISA_AVX2;
#endif
    return FC_ISA_BASE;
}

/* The best ISA of this CPU, capped by FASTCONV_ISA; decided once per process and module. */
static int fc_active_isa = -1;

static int fc_isa(void)
{
    if (fc_active_isa < 0) {
        int isa = fc_isa_supported();
        const char *cap = getenv("FASTCONV_ISA");
        if (cap) {
            if (strcmp(cap, "base") == 0)
                isa = FC_ISA_BASE;
            else if (strcmp(cap, "avx2") == 0 && isa > FC_ISA_AVX2)
                isa = FC_ISA_AVX2;
        }
        fc_active_isa = isa;
    }
    return fc_active_isa;
}

static const char *fc_isa_name(void)
{
    static const char *names[] = {"base", "avx2", "avx512"};
    return names[fc_isa()];
}

#endif /* FASTCONV_ISA_H */
