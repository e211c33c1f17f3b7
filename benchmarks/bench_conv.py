"""Time fastconv's conv2d (direct, im2col, auto) against tf.nn.conv2d, in one process.

    python benchmarks/bench_conv.py                 # the whole suite, float32 NHWC
    python benchmarks/bench_conv.py --quick         # small shapes, a smoke run (CI)
    python benchmarks/bench_conv.py --cases resnet-3x3 stem-7x7s2 --rounds 15

Each round runs every contender once on the same arrays, in turn, so that the drift of a shared,
noisy machine hits them alike; the table shows the median of the rounds, GFLOP/s
(2 * N * OH * OW * Cout * kh * kw * Cin / time) and the speed ratio TensorFlow time / fastconv
time (above 1: fastconv is faster).  TensorFlow is optional: without it only fastconv is timed.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CONV_CASES, ConvCase  # noqa: E402

import fastconv as fc  # noqa: E402


def load_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def quick_case(case):
    """The same layer on a batch of 2 and at most 32x32 pixels: seconds for the whole suite."""
    n, h, w, c = case.input_shape
    return ConvCase(case.name, (min(n, 2), min(h, 32), min(w, 32), c), case.kernel, case.stride, case.padding)


def time_rounds(contenders, rounds):
    """Median seconds of each contender over ``rounds`` interleaved rounds (after one warm-up)."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def conv_contenders(case, tf, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.input_shape).astype(dtype)
    w = rng.standard_normal(case.filter_shape).astype(dtype)
    s, p = case.stride, case.padding
    contenders = {
        alg: (lambda alg=alg: fc.conv2d(x, w, s, p, algorithm=alg)) for alg in ("direct", "im2col", "auto")
    }
    if tf is not None:
        tx, tw = tf.constant(x), tf.constant(w)
        contenders["tensorflow"] = lambda: tf.nn.conv2d(tx, tw, s, p).numpy()
    return contenders


def run(cases, rounds, tf, out=sys.stdout):
    rows = []
    header = f"{'case':15s} " + " ".join(f"{name:>18s}" for name in ("direct", "im2col", "auto", "tensorflow"))
    print(f"fastconv {fc.__version__}, {fc.get_num_threads()} threads, kernels: {fc.simd_isa()}, "
          f"OpenMP: {fc.openmp_enabled()}; TensorFlow: {tf.__version__ if tf else 'absent'}", file=out)
    print("ms (GFLOP/s); ratio = TensorFlow time / fastconv auto time", file=out)
    print(header + f" {'ratio':>7s}", file=out)
    for case in cases:
        t = time_rounds(conv_contenders(case, tf), rounds)
        flops = case.flops()
        cells = []
        for name in ("direct", "im2col", "auto", "tensorflow"):
            cells.append(f"{t[name] * 1e3:9.2f} ({flops / t[name] / 1e9:5.1f})" if name in t else f"{'-':>18s}")
        ratio = t["tensorflow"] / t["auto"] if "tensorflow" in t else float("nan")
        print(f"{case.name:15s} " + " ".join(cells) + f" {ratio:7.2f}", file=out, flush=True)
        rows.append((case, t, ratio))
    ratios = [r for _, _, r in rows if np.isfinite(r)]
    if ratios:
        print(f"geometric mean of the ratios: {np.exp(np.mean(np.log(ratios))):.2f}, "
              f"lowest: {min(ratios):.2f}", file=out)
    return rows


def markdown(rows):
    """The table of ``run`` in Markdown: ms (GFLOP/s) per contender and the ratio."""
    names = ("direct", "im2col", "auto", "tensorflow")
    lines = ["| case | " + " | ".join(names) + " | ratio |", "|---" * (len(names) + 2) + "|"]
    for case, t, ratio in rows:
        n, h, w, c = case.input_shape
        kh, kw, cout = case.kernel
        label = f"{case.name} {n}×{h}×{w}×{c} → {kh}×{kw}×{cout} s{case.stride} {case.padding}"
        cells = [f"{t[k] * 1e3:.2f} ({case.flops() / t[k] / 1e9:.1f})" if k in t else "-" for k in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="*", help="case names (default: all)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all CPUs)")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--no-tensorflow", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    args = parser.parse_args(argv)
    cases = [c for c in CONV_CASES if not args.cases or c.name in args.cases]
    if args.quick:
        cases = [quick_case(c) for c in cases]
    if args.threads:
        fc.set_num_threads(args.threads)
    tf = None if args.no_tensorflow else load_tensorflow()
    rows = run(cases, args.rounds, tf)
    if args.markdown:
        print(markdown(rows))


if __name__ == "__main__":
    main()
