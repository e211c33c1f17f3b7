"""The number of threads fastconv's kernels use.

One process-wide setting read by every kernel call; the default comes from ``OMP_NUM_THREADS``
when it is set, else from the CPUs this process may run on (its affinity mask, which is what a
container or ``taskset`` grants, not the machine's total).

A process forked after fastconv has run multi-threaded kernels runs its kernels on one thread:
GNU OpenMP's thread pool does not survive ``fork()`` (the child's threads are gone, but the
runtime believes they exist, so the child's first parallel region waits for ever; this is what a
plain ``multiprocessing.Pool`` on Linux does).  One thread needs no pool, so it is safe.  Use the
"spawn" or "forkserver" start method to have threads in the workers.
"""
import os
import warnings

from fastconv._runtime import openmp_enabled

_num_threads = None
# Whether this process has handed out more than one thread (so OpenMP may have started its pool),
# and whether it is a child forked after that happened.
_pool_may_exist = False
_forked_after_threads = False


def _after_fork_in_child():
    global _forked_after_threads
    if _pool_may_exist:
        _forked_after_threads = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _default_num_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n > 0:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_num_threads(n):
    """Set the number of threads of every fastconv kernel (``None`` restores the default).

    Results do not depend on it: each kernel splits its work in blocks fixed by the shapes and
    sums every output element in one thread, in one order, so any thread count gives the same
    bits.  A serial build (``openmp_enabled() is False``) accepts any ``n`` and runs one thread.
    """
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads: n must be a positive int or None. Received: n={n!r}")
    n = int(n.__index__())
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive int or None. Received: n={n}")
    if n > 1 and _forked_after_threads:
        warnings.warn(f"set_num_threads({n}): this process was forked after fastconv ran multi-threaded kernels, "
                      "and OpenMP cannot start threads in such a child; its kernels run on one thread. Start "
                      "worker processes with the 'spawn' or 'forkserver' method to use threads in them.",
                      RuntimeWarning, stacklevel=2)
    _num_threads = n


def get_num_threads():
    """The number of threads the kernels will use (1 in a serial build, and in a process forked
    after fastconv ran multi-threaded kernels: see the module docstring)."""
    global _pool_may_exist
    if not openmp_enabled() or _forked_after_threads:
        return 1
    n = _num_threads if _num_threads is not None else _default_num_threads()
    if n > 1:
        _pool_may_exist = True
    return n


# Work per thread below which a call does not wake another thread (see threads_for): about
# 50 microseconds of work on one core.
MULTIPLY_ADDS_PER_THREAD = 1 << 21
ELEMENTS_PER_THREAD = 1 << 17


def threads_for(work, grain):
    """Threads for a kernel call of ``work`` units: at most one thread per ``grain`` units.

    Waking a thread costs microseconds on an idle machine and up to a scheduler time slice
    (milliseconds) on a busy one, so small calls run on the calling thread alone.  Results do not
    depend on it (see :func:`set_num_threads`).
    """
    return max(1, min(get_num_threads(), int(work // grain)))
