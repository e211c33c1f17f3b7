"""Calls from several Python threads at once (the kernels release the GIL) give the same bits as
the same calls made one after the other, with no crash and no deadlock."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastconv as fc
import fastconv.image

RNG = np.random.default_rng(13)
X = RNG.standard_normal((2, 12, 12, 16)).astype(np.float32)
W3 = RNG.standard_normal((3, 3, 16, 16)).astype(np.float32)
W5 = RNG.standard_normal((5, 5, 16, 8))
DY = RNG.standard_normal((2, 12, 12, 16)).astype(np.float32)
DW = RNG.standard_normal((3, 3, 16, 2)).astype(np.float32)
MAT = np.array([[0.9, 0.2, 1.0], [-0.1, 1.1, -0.5]])

CALLS = {
    "conv2d auto": lambda: fc.conv2d(X, W3, 1, "SAME"),
    "conv2d winograd": lambda: fc.conv2d(X, W3, 1, "SAME", algorithm="winograd"),
    "conv2d im2col strided": lambda: fc.conv2d(X.astype(np.float64), W5, 2, "SAME", algorithm="im2col"),
    "conv2d direct dilated": lambda: fc.conv2d(X, W3, 1, "VALID", dilations=2, algorithm="direct"),
    "conv2d_backprop_input": lambda: fc.conv2d_backprop_input(X.shape, W3, DY, 1, "SAME"),
    "conv2d_backprop_filter": lambda: fc.conv2d_backprop_filter(X, W3.shape, DY, 1, "SAME"),
    "conv2d_transpose": lambda: fc.conv2d_transpose(DY[:, ::2, ::2], W3, X.shape, 2, "SAME"),
    "depthwise_conv2d": lambda: fc.depthwise_conv2d(X, DW, 1, "SAME"),
    "depthwise backprop input": lambda: fc.depthwise_conv2d_backprop_input(
        X.shape, DW, np.repeat(DY, 2, axis=3), 1, "SAME"),
    "depthwise backprop filter": lambda: fc.depthwise_conv2d_backprop_filter(
        X, DW.shape, np.repeat(DY, 2, axis=3), 1, "SAME"),
    "max_pool_with_argmax": lambda: fc.max_pool_with_argmax(X, 3, 2, "SAME"),
    "max_pool2d_grad": lambda: fc.max_pool2d_grad(X, fc.max_pool2d(X, 3, 2, "SAME"), DY[:, :6, :6], 3, 2, "SAME"),
    "avg_pool2d_grad": lambda: fc.avg_pool2d_grad(X.shape, DY[:, :6, :6], 3, 2, "SAME"),
    "bias_add relu": lambda: fc.bias_add(X, W3[0, 0, 0], relu=True),
    "bias_add_grad": lambda: fc.bias_add_grad(DY),
    "affine_transform": lambda: fastconv.image.affine_transform(X, MAT, fill_mode="reflect"),
}


def _bits(result):
    return [np.asarray(r).tobytes() for r in (result if isinstance(result, tuple) else (result,))]


@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_calls_from_a_thread_pool_give_the_serial_bits(kernel_threads):
    fc.set_num_threads(kernel_threads)
    serial = {name: _bits(call()) for name, call in CALLS.items()}
    order = [name for _ in range(6) for name in CALLS]
    np.random.default_rng(kernel_threads).shuffle(order)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [(name, pool.submit(CALLS[name])) for name in order]
        for name, future in futures:
            assert _bits(future.result(timeout=120)) == serial[name], name


def test_refusals_from_many_threads_leave_the_kernels_working():
    """Errors raised while other threads compute (validation in one, kernels in the others)."""
    def bad():
        with pytest.raises(ValueError, match="conv2d: strides"):
            fc.conv2d(X, W3, 2**40, "SAME")
    expected = _bits(CALLS["conv2d auto"]())
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(bad if i % 2 else CALLS["conv2d auto"]) for i in range(40)]
        for i, future in enumerate(futures):
            result = future.result(timeout=120)
            if i % 2 == 0:
                assert _bits(result) == expected
