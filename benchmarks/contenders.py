"""What is timed: fastconv and TensorFlow doing the same work on the same arrays.

One definition for the command-line benchmark (bench_conv.py), the report (report.py) and the
pytest-benchmark suite (test_bench_*.py).  Each builder returns ``{name: callable}``; every callable
returns NumPy arrays, so that both sides pay for delivering their results.

Modes:
    forward    conv2d (fastconv: each algorithm and "auto")
    backward   forward + gradients of the input and of the filters (a training step's work)
    pool       max and average pooling, forward and forward + backward
"""
import os

import numpy as np

import fastconv as fc

ALGORITHMS = ("direct", "im2col", "auto")


def load_tensorflow():
    """TensorFlow, or None when it is not installed (the benchmarks then time fastconv alone)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def conv_arrays(case, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.input_shape).astype(dtype)
    w = rng.standard_normal(case.filter_shape).astype(dtype)
    dy = rng.standard_normal(case.output_shape()).astype(dtype)
    return x, w, dy


def forward(case, tf, algorithms=ALGORITHMS):
    x, w, _ = conv_arrays(case)
    s, p = case.stride, case.padding
    contenders = {alg: (lambda alg=alg: fc.conv2d(x, w, s, p, algorithm=alg)) for alg in algorithms}
    if tf is not None:
        tx, tw = tf.constant(x), tf.constant(w)
        contenders["tensorflow"] = lambda: tf.nn.conv2d(tx, tw, s, p).numpy()
    return contenders


def backward(case, tf, algorithms=ALGORITHMS):
    """Forward, then the input and filter gradients for a given output gradient."""
    x, w, dy = conv_arrays(case)
    s, p = case.stride, case.padding

    def step(alg):
        y = fc.conv2d(x, w, s, p, algorithm=alg)
        dx = fc.conv2d_backprop_input(x.shape, w, dy, s, p, algorithm=alg)
        dw = fc.conv2d_backprop_filter(x, w.shape, dy, s, p, algorithm=alg)
        return y, dx, dw

    contenders = {alg: (lambda alg=alg: step(alg)) for alg in algorithms}
    if tf is not None:
        tx, tw, tdy = tf.constant(x), tf.constant(w), tf.constant(dy)

        def tf_step():
            with tf.GradientTape() as tape:
                tape.watch([tx, tw])
                y = tf.nn.conv2d(tx, tw, s, p)
            dx, dw = tape.gradient(y, [tx, tw], output_gradients=tdy)
            return y.numpy(), dx.numpy(), dw.numpy()

        contenders["tensorflow"] = tf_step
    return contenders


def pool_arrays(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.input_shape).astype(np.float32)
    y_shape = fc.max_pool2d(x[:1], case.ksize, case.stride, case.padding).shape
    dy = rng.standard_normal((x.shape[0],) + y_shape[1:]).astype(np.float32)
    return x, dy


def pool(case, tf, kind, with_backward):
    """Max or average pooling; with_backward adds the input gradient (fastconv's max pooling keeps
    the forward's argmax for it, as a training step does)."""
    x, dy = pool_arrays(case)
    k, s, p = case.ksize, case.stride, case.padding
    if kind == "max":
        if with_backward:
            def fastconv_step():
                y, argmax = fc.max_pool_with_argmax(x, k, s, p)
                return y, fc.max_pool2d_grad_with_argmax(x.shape, dy, argmax, k, s, p)
        else:
            def fastconv_step():
                return fc.max_pool2d(x, k, s, p)
    else:
        if with_backward:
            def fastconv_step():
                return fc.avg_pool2d(x, k, s, p), fc.avg_pool2d_grad(x.shape, dy, k, s, p)
        else:
            def fastconv_step():
                return fc.avg_pool2d(x, k, s, p)
    contenders = {"fastconv": fastconv_step}
    if tf is not None:
        tf_pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
        tx, tdy = tf.constant(x), tf.constant(dy)
        if with_backward:
            def tf_step():
                with tf.GradientTape() as tape:
                    tape.watch(tx)
                    y = tf_pool(tx, k, s, p)
                return y.numpy(), tape.gradient(y, tx, output_gradients=tdy).numpy()
        else:
            def tf_step():
                return tf_pool(tx, k, s, p).numpy()
        contenders["tensorflow"] = tf_step
    return contenders
