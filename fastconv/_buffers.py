"""Large output arrays of the kernels, reused instead of mapped afresh.

Why: glibc serves an allocation above its mmap threshold (32 MiB at most) with a fresh mapping
and returns it to the system when it is freed, and the kernel clears every page of a fresh
mapping on first touch.  A training step allocates the same large shapes batch after batch (the
malaria CNN's first activation at batch 100 is 128 MB, its gradient as much again), and
`perf record` of its epoch put 22% of the CPU time in the kernel's ``clear_page_erms``.

A buffer is handed out again only when nothing but this cache refers to it: every array made
from it (the one handed out, and any view of that) holds a reference to it, so its reference
count tells whether one is still alive.  A caller never sees memory that another live array
uses; contents are not cleared (the kernels write every element of what they are given, as
with ``np.empty``).

The cache holds at most ``limit`` bytes, in use or idle (set_buffer_cache_limit; by default an
eighth of physical memory, or ``FASTCONV_BUFFER_CACHE_BYTES``); past it the least recently used
idle buffers are dropped, and a request that still does not fit gets a plain ``np.empty``, as
do arrays below ``MIN_BYTES`` (the allocator keeps those in its heap already).  Idle buffers long
unasked for are dropped too (STALE_AFTER), so that memory of shapes no longer in use does not
stay held up to the limit.
"""
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
# A training step asks for a few dozen large arrays, the same ones every step; a buffer nobody
# asked for in this many requests belongs to shapes gone by (another model, other image sizes),
# and is let go at the next request that the cache cannot serve.
STALE_AFTER = 4096


def _default_limit():
    env = os.environ.get("FASTCONV_BUFFER_CACHE_BYTES", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"FASTCONV_BUFFER_CACHE_BYTES must be a whole number of bytes; received {env!r}") from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 8
    except (AttributeError, OSError, ValueError):
        return 1 << 30


class _Cache:
    def __init__(self, limit):
        self.limit = limit
        self.lock = threading.Lock()
        # nbytes -> entries [buffer, last use]; a buffer is a flat uint8 array.
        self.entries = {}
        self.held = 0
        self.clock = 0

    @staticmethod
    def references(entry):
        return sys.getrefcount(entry[0])

    def take(self, nbytes):
        """A flat uint8 buffer of nbytes that no live array uses, or None."""
        with self.lock:
            self.clock += 1
            for entry in self.entries.get(nbytes, ()):
                if self.references(entry) == IDLE_REFERENCES:
                    entry[1] = self.clock
                    return entry[0]
            if not self.make_room(nbytes):
                return None
            buffer = np.empty(nbytes, dtype=np.uint8)
            self.entries.setdefault(nbytes, []).append([buffer, self.clock])
            self.held += nbytes
            return buffer

    def make_room(self, nbytes):
        """Drop idle buffers that have gone unused for STALE_AFTER requests, then more of the idle
        ones, least recently used first, until nbytes more fit under the limit."""
        idle = sorted(((size, entry) for size, group in self.entries.items() for entry in group
                       if self.references(entry) == IDLE_REFERENCES), key=lambda item: item[1][1])
        for size, entry in idle:
            if self.held + nbytes <= self.limit and self.clock - entry[1] <= STALE_AFTER:
                break
            self.drop(size, entry)
        return self.held + nbytes <= self.limit

    def drop(self, size, entry):
        group = self.entries[size]
        del group[next(i for i, other in enumerate(group) if other is entry)]
        if not group:
            del self.entries[size]
        self.held -= size

    def set_limit(self, limit):
        with self.lock:
            previous, self.limit = self.limit, limit
            # Forget every buffer above the new limit; those still in use live on with their arrays.
            for size, group in list(self.entries.items()):
                for entry in list(group):
                    if self.held > limit:
                        self.drop(size, entry)
            return previous


# What references() counts for a buffer that only its entry holds (the entry's own and the
# call's argument): measured rather than assumed, since interpreters differ in what they count.
IDLE_REFERENCES = _Cache.references([np.empty(0, dtype=np.uint8), 0])
_cache = _Cache(_default_limit())


def empty(shape, dtype):
    """An uninitialised C-contiguous array, as ``np.empty(shape, dtype)``; large ones come from the cache."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = dtype.itemsize
    for extent in shape:
        nbytes *= int(extent)
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    buffer = _cache.take(nbytes)
    if buffer is None:
        return np.empty(shape, dtype=dtype)
    return buffer.view(dtype).reshape(shape)


def set_buffer_cache_limit(nbytes):
    """Set how many bytes of large kernel outputs fastconv keeps for reuse; returns the previous limit.

    fastconv's kernels hand out their large outputs (1 MiB and more) from a cache, so that a
    training step does not map and clear fresh memory for every batch.  The cache holds at most
    ``nbytes`` (by default an eighth of physical memory, or the environment variable
    ``FASTCONV_BUFFER_CACHE_BYTES``); ``0`` turns it off and lets go of what it holds.  Memory
    of arrays still in use is freed when they are.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)):
        raise TypeError(f"set_buffer_cache_limit: nbytes must be an int; received {type(nbytes).__name__}")
    if nbytes < 0:
        raise ValueError(f"set_buffer_cache_limit: nbytes must not be negative; received {nbytes}")
    return _cache.set_limit(int(nbytes))


def buffer_cache_bytes():
    """How many bytes the cache holds now, in use or idle."""
    return _cache.held
