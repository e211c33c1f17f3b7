"""The cache of large kernel outputs (fastconv/_buffers.py): reuse only of memory that no live
array uses, within its limit, from several threads at once."""
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _buffers

BIG = (1 << 20) // 4 * 3  # 3 MiB of float32: above MIN_BYTES


@pytest.fixture
def cache_limit():
    """Restore the process's limit (and drop what a test made) after the test."""
    previous = fastconv.set_buffer_cache_limit(1 << 30)
    fastconv.set_buffer_cache_limit(0)
    fastconv.set_buffer_cache_limit(1 << 30)
    yield
    fastconv.set_buffer_cache_limit(0)
    fastconv.set_buffer_cache_limit(previous)


def address(a):
    return a.__array_interface__["data"][0]


def test_memory_of_a_dropped_array_is_handed_out_again(cache_limit):
    a = _buffers.empty((BIG,), np.float32)
    where = address(a)
    del a
    b = _buffers.empty((BIG,), np.float32)
    assert address(b) == where
    assert b.shape == (BIG,) and b.dtype == np.float32 and b.flags.c_contiguous and b.flags.writeable


@pytest.mark.parametrize("keep", [
    lambda a: a,
    lambda a: a[::2],
    lambda a: a.reshape(3, -1)[1],
    lambda a: memoryview(a),
    lambda a: np.frombuffer(a, dtype=np.uint8),
])
def test_memory_of_a_live_array_or_view_is_never_handed_out(cache_limit, keep):
    a = _buffers.empty((BIG,), np.float32)
    a[:] = 7.0
    kept = keep(a)
    before = np.asarray(kept).copy()
    del a
    b = _buffers.empty((BIG,), np.float32)
    b[:] = -1.0
    assert not np.shares_memory(np.asarray(kept), b)
    np.testing.assert_array_equal(np.asarray(kept), before)


def test_small_arrays_and_other_sizes_are_plain(cache_limit):
    small = _buffers.empty((16, 16), np.float64)
    assert small.base is None and fastconv.buffer_cache_bytes() == 0
    a = _buffers.empty((BIG,), np.float32)
    where = address(a)
    del a
    other = _buffers.empty((BIG + 1024,), np.float32)  # a different size never takes it
    assert address(other) != where
    assert _buffers.empty((2, BIG // 2), np.float32).shape == (2, BIG // 2)


def test_the_cache_holds_at_most_its_limit_dropping_the_least_recently_used(cache_limit):
    fastconv.set_buffer_cache_limit(3 * BIG * 4)
    a = _buffers.empty((BIG,), np.float32)
    b = _buffers.empty((BIG,), np.float32)
    where_a, where_b = address(a), address(b)
    del a, b
    b = _buffers.empty((BIG,), np.float32)  # takes one of the two; the other stays idle
    c = _buffers.empty((2 * BIG,), np.float32)  # needs room: the idle one goes
    assert fastconv.buffer_cache_bytes() <= 3 * BIG * 4
    d = _buffers.empty((4 * BIG,), np.float32)  # above the limit by itself: plain, not held
    assert fastconv.buffer_cache_bytes() <= 3 * BIG * 4 and d.base is None
    assert address(b) in (where_a, where_b) and not np.shares_memory(b, c)


def test_buffers_long_unasked_for_are_let_go(cache_limit, monkeypatch):
    monkeypatch.setattr(_buffers, "STALE_AFTER", 3)
    old = _buffers.empty((BIG,), np.float32)
    del old
    for _ in range(3):
        used = _buffers.empty((2 * BIG,), np.float32)  # served by the cache after the first
        del used
    assert fastconv.buffer_cache_bytes() == 3 * BIG * 4
    kept = _buffers.empty((2 * BIG,), np.float32)
    _buffers.empty((3 * BIG,), np.float32)  # a miss: the stale buffer goes, the one in use stays
    assert fastconv.buffer_cache_bytes() == (2 + 3) * BIG * 4 and kept.shape == (2 * BIG,)


def test_limit_zero_turns_the_cache_off_and_lets_go(cache_limit):
    keep = _buffers.empty((BIG,), np.float32)
    keep[:] = 3.0
    assert fastconv.buffer_cache_bytes() == BIG * 4
    assert fastconv.set_buffer_cache_limit(0) == 1 << 30
    assert fastconv.buffer_cache_bytes() == 0
    assert _buffers.empty((BIG,), np.float32).base is None
    assert np.all(keep == 3.0)  # an array in use lives on with its memory


@pytest.mark.parametrize("bad, error", [("1", TypeError), (1.5, TypeError), (True, TypeError),
                                        (None, TypeError), (-1, ValueError)])
def test_bad_limits_are_refused(bad, error):
    with pytest.raises(error, match="set_buffer_cache_limit: nbytes"):
        fastconv.set_buffer_cache_limit(bad)


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv("FASTCONV_BUFFER_CACHE_BYTES", "12345")
    assert _buffers._default_limit() == 12345
    monkeypatch.setenv("FASTCONV_BUFFER_CACHE_BYTES", "lots")
    with pytest.raises(ValueError, match="FASTCONV_BUFFER_CACHE_BYTES"):
        _buffers._default_limit()


def test_threads_never_share_a_buffer(cache_limit):
    errors = []

    def work(value):
        for _ in range(200):
            a = _buffers.empty((BIG,), np.float32)
            a[:] = value
            if not np.all(a == value):
                errors.append(value)
            del a

    threads = [threading.Thread(target=work, args=(float(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_kernel_outputs_come_from_the_cache_and_stay_correct(cache_limit):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 4, 64, 64, 16), dtype=np.float32)
    w = rng.standard_normal((3, 3, 16, 64), dtype=np.float32)
    y1 = fastconv.conv2d(x1, w, 1, "SAME")  # 4 MiB
    expect1 = fastconv.conv2d(x1.astype(np.float64), w, 1, "SAME")
    y2 = fastconv.conv2d(x2, w, 1, "SAME")
    assert not np.shares_memory(y1, y2)
    np.testing.assert_allclose(y1, expect1, rtol=1e-4, atol=1e-4)
    where = address(y1)
    del y1
    y3 = fastconv.conv2d(x1, w, 1, "SAME")
    assert address(y3) == where
    np.testing.assert_allclose(y3, expect1, rtol=1e-4, atol=1e-4)
    g = fastconv.relu_grad(y3, y2)
    np.testing.assert_array_equal(g, y3 * (y2 > 0))
