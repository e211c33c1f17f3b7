"""fastconv: small, fast, inspectable CPU convolutions for Python.

``conv2d`` and its gradients with the semantics of TensorFlow's ``tf.nn`` ops, max and average
pooling, computed by Cython/C kernels with OpenMP threads and SIMD micro-kernels; a Keras-like
training layer in :mod:`fastconv.keras`.
"""
import os

# Idle OpenMP threads spin briefly, then sleep (unless the user chose a policy or a spin count).
# A long spin (GNU OpenMP's default, about 3 ms) takes shared cores from the threads doing the
# work: at load average 4.5 a 3x3 64->64 convolution of 8x56x56 took 22-24 ms with it, 13-15 ms
# with threads that sleep at once.  Sleeping at once costs a wake-up per parallel region, about
# 0.2 ms here (a 1x1 convolution of 8x8x16: 171-260 us on 2 threads, 4-9 us with a short spin),
# and a network at batch 1 runs ~100 regions per image.  30000 iterations (about 0.3 ms; libgomp
# counts 100000 a millisecond) keep the workers awake from one layer to the next.  Images/s in
# alternating processes, sleeping -> this spin: MobileNetV2 batch 1 28-30 -> 53-57, ResNet50
# batch 1 8.0-8.3 -> 13.5-13.7, batch 32 within the noise; with two busy loops on the 2 cores
# equal or better (MobileNetV2 batch 1 14.5-17.4 -> 23.5, ResNet50 batch 32 8.4-8.9 -> 8.6-9.3).
# libgomp takes GOMP_SPINCOUNT over the policy; the policy is for other OpenMP runtimes.  Both
# must be set before the OpenMP runtime loads.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "30000"

try:
    from fastconv._runtime import openmp_enabled, simd_isa
except ImportError as exc:  # running from a source folder whose kernels were never compiled
    raise ImportError(
        "fastconv's compiled kernels are missing. Install the package with `pip install .` (or, "
        "to work on the source, `pip install --no-build-isolation -e .`) and do not run Python "
        f"from a source checkout that shadows the installed package. ({exc})"
    ) from exc
from fastconv._buffers import buffer_cache_bytes, set_buffer_cache_limit
from fastconv._threads import get_num_threads, set_num_threads
from fastconv.elementwise import bias_add, bias_add_grad, relu_grad
from fastconv.conv import conv2d, conv2d_backprop_filter, conv2d_backprop_input, conv2d_transpose
from fastconv.depthwise import (
    depthwise_conv2d,
    depthwise_conv2d_backprop_filter,
    depthwise_conv2d_backprop_input,
)
from fastconv import data, nn, random
from fastconv.pooling import (
    avg_pool2d,
    avg_pool2d_grad,
    max_pool2d,
    max_pool2d_grad,
    max_pool2d_grad_with_argmax,
    max_pool_with_argmax,
)

from fastconv._version import __version__  # noqa: F401 (fastconv.__version__)


def __getattr__(name):
    # ``tf.keras`` for programs that ``import fastconv as tf``; loaded on first use so that
    # ``import fastconv`` stays light (fastconv.keras pulls in every layer).  Also TensorFlow's
    # names of the array functions such programs call around their models (tf.expand_dims,
    # tf.cast, tf.float32, tf.math, tf.config...: fastconv/_tensorflow_names.py).
    import importlib

    if name in ("keras", "image"):
        return importlib.import_module(f"fastconv.{name}")
    if not name.startswith("_"):
        found = importlib.import_module("fastconv._tensorflow_names").lookup(name)
        if found is not None:
            return found
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


__all__ = [
    "avg_pool2d",
    "avg_pool2d_grad",
    "bias_add",
    "bias_add_grad",
    "buffer_cache_bytes",
    "conv2d",
    "conv2d_backprop_filter",
    "conv2d_backprop_input",
    "conv2d_transpose",
    "data",
    "depthwise_conv2d",
    "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input",
    "get_num_threads",
    "keras",  # noqa: F822 (loaded on first use by __getattr__)
    "max_pool2d",
    "max_pool2d_grad",
    "max_pool2d_grad_with_argmax",
    "max_pool_with_argmax",
    "nn",
    "relu_grad",
    "openmp_enabled",
    "random",
    "set_buffer_cache_limit",
    "set_num_threads",
    "simd_isa",
]
