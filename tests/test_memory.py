"""No memory growth over many calls of each kernel, over calls that raise, and over predict and
fit calls of a small model: resident memory (RSS, which sees the kernels' malloc'ed workspaces
and NumPy's buffers) and tracemalloc (Python objects kept alive).

The counts are kept small here (each kernel 200 times, 200 predict and 200 fit calls); the long form,
10,000 calls of each kernel, runs with FASTCONV_LONG_MEMORY=1 (or ``python tests/test_memory.py``).
"""
import ctypes
import ctypes.util
import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fastconv as fc
import fastconv.image

CALLS_PER_KERNEL = 10_000 if os.environ.get("FASTCONV_LONG_MEMORY") else 200
# Bounds of the growth between a warmed-up first half and the end.  RSS sees a leaked workspace or
# output of the kernels (the outputs here are 16-64 KB: 100 leaked ones exceed the bound; smaller
# leaks drown in the allocator's noise), tracemalloc sees Python objects to the byte (a leak of
# 1 KB per call exceeds its bound: test_the_bounds_see_a_leak).
RSS_BOUND_MB = 8
TRACED_BOUND_BYTES = 64 * 1024

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 16, 16, 16)).astype(np.float32)
W = RNG.standard_normal((3, 3, 16, 16)).astype(np.float32)
DY = RNG.standard_normal((2, 16, 16, 16)).astype(np.float32)
DW = RNG.standard_normal((3, 3, 16, 1)).astype(np.float32)

KERNELS = {
    "conv2d winograd": lambda: fc.conv2d(X, W, 1, "SAME", algorithm="winograd"),
    "conv2d im2col": lambda: fc.conv2d(X, W, 2, "SAME", algorithm="im2col"),
    "conv2d direct": lambda: fc.conv2d(X, W, 1, "SAME", algorithm="direct"),
    "conv2d_backprop_input": lambda: fc.conv2d_backprop_input(X.shape, W, DY, 1, "SAME"),
    "conv2d_backprop_filter": lambda: fc.conv2d_backprop_filter(X, W.shape, DY, 1, "SAME"),
    "depthwise_conv2d": lambda: fc.depthwise_conv2d(X, DW, 1, "SAME"),
    "depthwise backprop input": lambda: fc.depthwise_conv2d_backprop_input(X.shape, DW, DY, 1, "SAME"),
    "depthwise backprop filter": lambda: fc.depthwise_conv2d_backprop_filter(X, DW.shape, DY, 1, "SAME"),
    "max_pool_with_argmax": lambda: fc.max_pool_with_argmax(X, 2, 2, "SAME"),
    "max_pool2d_grad": lambda: fc.max_pool2d_grad(X, np.zeros((2, 8, 8, 16)), DY[:, :8, :8], 2, 2, "SAME"),
    "avg_pool2d_grad": lambda: fc.avg_pool2d_grad(X.shape, DY[:, :8, :8], 2, 2, "SAME"),
    "bias_add": lambda: fc.bias_add(X, W[0, 0, 0], relu=True),
    "bias_add_grad": lambda: fc.bias_add_grad(DY),
    "relu_grad": lambda: fc.relu_grad(DY, X),
    "affine_transform": lambda: fastconv.image.affine_transform(X, [[1, 0.1, 0.5], [0, 1, -0.5]]),
}


def _raise_value_error():
    with pytest.raises(ValueError):
        fc.conv2d(X, W, 2**40, "SAME")
    with pytest.raises(TypeError):
        fc.conv2d_backprop_input([2.5, 16, 16, 16], W, DY, 1, "SAME")
    with pytest.raises(ValueError):   # refused by the kernel's own check, after planning
        fc.max_pool2d_grad_with_argmax(X.shape, DY[:, :8, :8], np.full((2, 8, 8, 16), 10**6), 2, 2, "SAME")


def _trim_heap():
    """Give the allocator's free pages back to the system (glibc's malloc_trim), so that memory the
    earlier tests freed, still resident, cannot absorb a leak unseen: a new allocation then faults in
    pages that RSS counts."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _rss_mb():
    _trim_heap()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _growth(call, count):
    """(RSS growth in MB, traced Python growth in bytes) from after count // 2 calls to the end."""
    for _ in range(count // 2):
        call()
    gc.collect()
    tracemalloc.start()
    rss0, traced0 = _rss_mb(), tracemalloc.get_traced_memory()[0]
    for _ in range(count - count // 2):
        call()
    gc.collect()
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return _rss_mb() - rss0, traced1 - traced0


def test_the_bounds_see_a_leak():
    kept = []
    rss, traced = _growth(lambda: kept.append(np.ones(2**14)) or kept.append(bytes(1024)), 200)
    assert rss > 0.5 * 100 * 2**17 / 2**20 and traced > TRACED_BOUND_BYTES


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc")
def test_kernels_and_refusals_do_not_grow_memory():
    fc.set_num_threads(2)
    count = CALLS_PER_KERNEL
    calls = dict(KERNELS, refusals=_raise_value_error)
    per_kernel = {}
    for name, call in calls.items():
        per_kernel[name] = _growth(call, count)
    grew = {name: g for name, g in per_kernel.items() if g[0] > RSS_BOUND_MB or g[1] > TRACED_BOUND_BYTES}
    assert not grew, f"memory grew (MB of RSS, bytes traced): {grew}"


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc")
def test_predict_and_fit_of_a_small_model_do_not_grow_memory():
    from fastconv import keras as fk
    from fastconv.keras import layers as L
    model = fk.Sequential([L.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2),
                           L.Flatten(), L.Dense(3)])
    model.compile(optimizer="adam", loss=fk.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).random((8, 8, 8, 3), dtype=np.float32)
    y = np.random.default_rng(2).integers(0, 3, (8,))
    rss, traced = _growth(lambda: model.predict(x, verbose=0), 200)
    assert rss < RSS_BOUND_MB and traced < TRACED_BOUND_BYTES, (rss, traced)
    rss, traced = _growth(lambda: model.fit(x, y, epochs=1, batch_size=8, verbose=0), 200)
    # fit keeps each call's History on the model only until the next call: no growth either
    assert rss < RSS_BOUND_MB and traced < 4 * TRACED_BOUND_BYTES, (rss, traced)


if __name__ == "__main__":
    os.environ["FASTCONV_LONG_MEMORY"] = "1"
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))


@pytest.mark.parametrize("op", ["conv2d_backprop_filter", "depthwise_conv2d_backprop_filter"])
def test_filter_gradients_check_dy_for_infinities_without_a_copy_of_its_size(op):
    """A padded layer checks dY for infinities and NaN (TensorFlow's padding then gives NaN): the
    check used to make a bool array of dY's size (25 MiB at batch 128 on a 56x56x64 layer, 100x
    the kernel's own memory).  Peak of the Python-side allocations (NumPy's are traced) during
    the call, with a dY of 8 MiB: far under its 2 MiB bool copy."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64, 64, 1)).astype(np.float32)
    fshape = (3, 3, 1, 32)
    dy = rng.standard_normal((16, 64, 64, 32)).astype(np.float32)
    call = getattr(fc, op)
    expected = call(x, fshape, dy, 1, "SAME")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        dw = call(x, fshape, dy, 1, "SAME")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(dw, expected)
    assert peak < dy.nbytes // 16, f"{op}: {peak} bytes at the peak for a dY of {dy.nbytes}"
    dy[3, 0, 5, 7] = np.inf   # still seen: the padding's zeros times inf give NaN, as in TensorFlow
    assert np.isnan(call(x, fshape, dy, 1, "SAME")).any()
