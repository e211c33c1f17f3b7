/* OpenMP when the build has it, a serial stand-in when it does not (the kernels use only these). */
#ifndef FASTCONV_OMP_COMPAT_H
#define FASTCONV_OMP_COMPAT_H
#ifdef _OPENMP
#include <omp.h>
#define FC_OPENMP_ENABLED 1
#else
#define FC_OPENMP_ENABLED 0
static int omp_get_thread_num(void) { return 0; }
static int omp_get_max_threads(void) { return 1; }
#endif
#endif
