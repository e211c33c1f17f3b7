"""Time fastconv's depthwise convolution against tf.nn.depthwise_conv2d on MobileNetV2's layers.

    python benchmarks/bench_depthwise.py                 # batch 32 at 224x224: the 3x3 depthwise layers
    python benchmarks/bench_depthwise.py --quick         # batch 2, at most 28x28 pixels: a smoke run
    python benchmarks/bench_depthwise.py --rounds 9 --markdown

Three measurements per layer, each on the same arrays for both libraries, in one process:

    forward    depthwise_conv2d / tf.nn.depthwise_conv2d
    fused      + bias + ReLU6 (MobileNetV2's BatchNormalization folded into a bias at inference):
               fastconv in the convolution's epilogue, TensorFlow as bias_add and relu6
    fwd+bwd    forward, then the input and filter gradients of a given output gradient
               (TensorFlow: tf.GradientTape over tf.nn.depthwise_conv2d)

Each round runs every contender once, in turn (interleaved, so the drift of a shared machine hits
both alike); the table shows the medians, GFLOP/s (2 * N * OH * OW * C * kh * kw per pass, 3
passes for fwd+bwd), GB/s of the arrays each pass must read and write at least (x, y; plus dy,
dx, x, dy for the gradients) and the ratio TensorFlow time / fastconv time (above 1: fastconv is
faster).  Every callable returns NumPy arrays, so both sides pay for delivering their results.
"""
import argparse
import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402
from bench_conv import time_rounds  # noqa: E402

import fastconv as fc  # noqa: E402


@dataclass(frozen=True)
class DepthwiseCase:
    name: str
    input_shape: tuple  # N, H, W, C (NHWC)
    stride: int
    kernel: int = 3
    multiplier: int = 1

    @property
    def filter_shape(self):
        return (self.kernel, self.kernel, self.input_shape[3], self.multiplier)

    def output_shape(self):
        n, h, w, c = self.input_shape
        return (n, -(-h // self.stride), -(-w // self.stride), c * self.multiplier)   # SAME

    def flops(self):
        return 2 * int(np.prod(self.output_shape())) * self.kernel ** 2

    def forward_bytes(self, itemsize=4):
        return (int(np.prod(self.input_shape)) + int(np.prod(self.output_shape()))) * itemsize

    def backward_bytes(self, itemsize=4):
        """Forward, input gradient (read dy, write dx), filter gradient (read x and dy)."""
        return 2 * self.forward_bytes(itemsize) + int(np.prod(self.output_shape())) * itemsize


# MobileNetV2 (224x224, width 1.0): the input of each 3x3 depthwise layer, one per distinct shape.
MOBILENET_V2 = [
    DepthwiseCase("112x112x32 s1", (32, 112, 112, 32), 1),
    DepthwiseCase("112x112x96 s2", (32, 112, 112, 96), 2),
    DepthwiseCase("56x56x144 s1", (32, 56, 56, 144), 1),
    DepthwiseCase("56x56x144 s2", (32, 56, 56, 144), 2),
    DepthwiseCase("28x28x192 s1", (32, 28, 28, 192), 1),
    DepthwiseCase("14x14x384 s1", (32, 14, 14, 384), 1),
    DepthwiseCase("14x14x576 s1", (32, 14, 14, 576), 1),
    DepthwiseCase("7x7x960 s1", (32, 7, 7, 960), 1),
]


def quick(case):
    n, h, w, c = case.input_shape
    return DepthwiseCase(case.name, (min(n, 2), min(h, 28), min(w, 28), c), case.stride, case.kernel,
                         case.multiplier)


def contenders_for(case, mode, tf):
    """{"fastconv": callable, "tensorflow": callable (when installed)} doing ``mode``'s work."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.input_shape).astype(np.float32)
    w = rng.standard_normal(case.filter_shape).astype(np.float32)
    b = rng.standard_normal(case.output_shape()[3]).astype(np.float32)
    dy = rng.standard_normal(case.output_shape()).astype(np.float32)
    s = [1, case.stride, case.stride, 1]
    if mode == "forward":
        ours = {"fastconv": lambda: fc.depthwise_conv2d(x, w, s, "SAME")}
    elif mode == "fused":
        ours = {"fastconv": lambda: fc.depthwise_conv2d(x, w, s, "SAME", bias=b, activation="relu6")}
    else:
        ours = {"fastconv": lambda: (fc.depthwise_conv2d(x, w, s, "SAME"),
                                     fc.depthwise_conv2d_backprop_input(x.shape, w, dy, s, "SAME"),
                                     fc.depthwise_conv2d_backprop_filter(x, w.shape, dy, s, "SAME"))}
    if tf is None:
        return ours
    tx, tw, tb, tdy = tf.constant(x), tf.constant(w), tf.constant(b), tf.constant(dy)
    if mode == "forward":
        ours["tensorflow"] = lambda: tf.nn.depthwise_conv2d(tx, tw, s, "SAME").numpy()
    elif mode == "fused":
        ours["tensorflow"] = lambda: tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(tx, tw, s, "SAME"), tb)).numpy()
    else:
        def tape_step():
            with tf.GradientTape() as tape:
                tape.watch([tx, tw])
                y = tf.nn.depthwise_conv2d(tx, tw, s, "SAME")
            dx, dw = tape.gradient(y, [tx, tw], output_gradients=tdy)
            return y.numpy(), dx.numpy(), dw.numpy()
        ours["tensorflow"] = tape_step
    return ours


MODES = ("forward", "fused", "fwd+bwd")


def measure(cases, rounds, tf):
    """[(case, mode, {contender: seconds})]: one interleaved timing per case and mode."""
    rows = []
    for case in cases:
        for mode in MODES:
            rows.append((case, mode, time_rounds(contenders_for(case, mode, tf), rounds)))
    return rows


def cells(case, mode, times):
    """(fastconv ms, GFLOP/s, GB/s, tensorflow ms or None, ratio or None) of one row."""
    passes = 3 if mode == "fwd+bwd" else 1
    nbytes = case.backward_bytes() if mode == "fwd+bwd" else case.forward_bytes()
    t = times["fastconv"]
    tf_t = times.get("tensorflow")
    return (t * 1e3, passes * case.flops() / t / 1e9, nbytes / t / 1e9,
            None if tf_t is None else tf_t * 1e3, None if tf_t is None else tf_t / t)


def print_table(rows, out=sys.stdout):
    print(f"{'layer':15s} {'mode':8s} {'fastconv ms':>11s} {'GFLOP/s':>8s} {'GB/s':>6s} {'tf ms':>9s} {'ratio':>6s}",
          file=out)
    for case, mode, times in rows:
        ms, gflops, gbs, tf_ms, r = cells(case, mode, times)
        tf_cells = f"{tf_ms:9.2f} {r:6.2f}" if tf_ms is not None else f"{'-':>9s} {'-':>6s}"
        print(f"{case.name:15s} {mode:8s} {ms:11.2f} {gflops:8.1f} {gbs:6.1f} {tf_cells}", file=out, flush=True)
    summarise(rows, out)


def summarise(rows, out):
    for mode in MODES:
        ratios = [cells(c, m, t)[4] for c, m, t in rows if m == mode and "tensorflow" in t]
        if ratios:
            print(f"{mode}: geometric mean of the ratios {np.exp(np.mean(np.log(ratios))):.2f}, "
                  f"lowest {min(ratios):.2f}", file=out)


def markdown(rows):
    lines = ["| layer | mode | fastconv ms (GFLOP/s, GB/s) | tf.nn ms | ratio |", "|---|---|---|---|---|"]
    for case, mode, times in rows:
        ms, gflops, gbs, tf_ms, r = cells(case, mode, times)
        tf_cells = f"{tf_ms:.2f} | {r:.2f}" if tf_ms is not None else "- | -"
        lines.append(f"| {case.name} | {mode} | {ms:.2f} ({gflops:.1f}, {gbs:.1f}) | {tf_cells} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of both libraries (default: fastconv's default and TensorFlow's)")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--no-tensorflow", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    args = parser.parse_args(argv)
    cases = [quick(c) for c in MOBILENET_V2] if args.quick else MOBILENET_V2
    tf = None if args.no_tensorflow else contenders.load_tensorflow()
    if args.threads:
        fc.set_num_threads(args.threads)
        if tf is not None:  # before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f"fastconv {fc.__version__}, {fc.get_num_threads()} threads, kernels: {fc.simd_isa()}, "
          f"OpenMP: {fc.openmp_enabled()}; TensorFlow: {tf.__version__ if tf else 'absent'}"
          f"{f', {args.threads} threads' if tf and args.threads else ''}; "
          f"float32, 3x3, SAME, {args.rounds} rounds")
    rows = measure(cases, args.rounds, tf)
    print_table(rows)
    if args.markdown:
        print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
