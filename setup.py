"""Build of fastconv's compiled kernels.

Every extension is compiled with OpenMP when the compiler accepts it and serially (with a
warning) when it does not; ``fastconv.openmp_enabled()`` tells which build this is.  No ``-march``
flag is used: the SIMD kernels are compiled for several instruction sets through function
attributes and chosen at run time (see ``fastconv/_kernels/tile.h``), so a wheel built here runs on
any CPU of the same architecture.

Environment switches:
    FASTCONV_DEBUG=1       bounds checks and wraparound back on in every kernel, -O0 -g: a debug build
                           for running the tests under it.
    FASTCONV_SANITIZE=1    the release kernels under AddressSanitizer + UndefinedBehaviorSanitizer (-O1 -g,
                           every report fatal): run the tests with the sanitizer runtimes preloaded,
                           as .ci/sanitize does.
    FASTCONV_NO_OPENMP=1   force the serial build.
"""
import os
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTCONV_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("FASTCONV_SANITIZE", "") not in ("", "0")
# The sanitizers need frame pointers for their reports and -O1 to keep the run time reasonable;
# -fno-sanitize-recover makes an undefined-behaviour report end the process, so that a test run
# under them fails rather than prints.
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]

OPENMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _compiler_command():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return cc.split()


def openmp_flags():
    """(compile flags, link flags) that enable OpenMP, or None when the compiler has none."""
    if os.environ.get("FASTCONV_NO_OPENMP", "") not in ("", "0"):
        return None
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    cc = _compiler_command()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        for cflags, lflags in candidates:
            exe = os.path.join(tmp, "omp_test")
            try:
                subprocess.run(cc + cflags + [src, "-o", exe] + lflags, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run([exe], check=True)
            except (OSError, subprocess.CalledProcessError):
                continue
            return cflags, lflags
    return None


def extensions():
    omp = openmp_flags()
    if omp is None:
        warnings.warn(
            "fastconv: the C compiler does not support OpenMP; building the SERIAL kernels "
            "(fastconv.openmp_enabled() will return False). Install an OpenMP runtime "
            "(e.g. libgomp, or libomp on macOS) and rebuild for multi-threaded kernels.",
            stacklevel=1,
        )
        print("*" * 78 + "\n* WARNING: building fastconv WITHOUT OpenMP (serial kernels)\n" + "*" * 78)
        omp_c, omp_l = [], []
    else:
        omp_c, omp_l = omp
    opt = ["-O1", "-g"] + SANITIZER_FLAGS if SANITIZE else ["-O0", "-g"] if DEBUG else ["-O3"]
    # No -ffast-math: NaN and Inf must propagate as in TensorFlow.  FMA contraction is allowed
    # (GCC's default); it changes the last bit, not the semantics.
    common = dict(
        include_dirs=[np.get_include(), os.path.join("fastconv", "_kernels")],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=opt + omp_c + ["-Wno-unused-function", "-Wno-unreachable-code"],
        extra_link_args=omp_l + (SANITIZER_FLAGS if SANITIZE else []),
    )
    modules = ["_runtime", "_conv", "_pooling", "_elementwise", "_warp", "_depthwise", "_imageload"]
    return [Extension(f"fastconv.{name}", [f"fastconv/{name}.pyx"], **common) for name in modules]


def cython_directives():
    return {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "initializedcheck": DEBUG,
        # C division everywhere (the kernels divide only non-negative numbers or through the
        # floor_div and ceil_div helpers of _conv.pyx), so that the debug build computes the same thing.
        "cdivision": True,
        "embedsignature": True,
    }


setup(ext_modules=cythonize(extensions(), compiler_directives=cython_directives()))
