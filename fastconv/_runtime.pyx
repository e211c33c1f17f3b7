"""What this build of fastconv can do: OpenMP or not, and which SIMD kernels run on this CPU."""
from fastconv._omp cimport FC_OPENMP_ENABLED
from fastconv._isa cimport fc_isa_name


def openmp_enabled():
    """True when the kernels were compiled with OpenMP (multi-threaded), False for a serial build."""
    return bool(FC_OPENMP_ENABLED)


def simd_isa():
    """The instruction set of the micro-kernels in use: 'avx512', 'avx2' or 'base'.

    Chosen once per process from the CPU; ``FASTCONV_ISA=base|avx2`` in the environment caps it.
    """
    return fc_isa_name().decode("ascii")
