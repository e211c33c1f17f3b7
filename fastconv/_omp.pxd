# OpenMP, or its serial stand-in when the build has none (fastconv/_kernels/omp_compat.h).
cdef extern from "omp_compat.h" nogil:
    int FC_OPENMP_ENABLED
    int omp_get_thread_num()
    int omp_get_max_threads()
