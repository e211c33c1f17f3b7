# The instruction set of the micro-kernels (fastconv/_kernels/isa.h).
cdef extern from "isa.h" nogil:
    const char *fc_isa_name()
