"""Time fastconv against TensorFlow on the benchmark suite, in one process.

    python benchmarks/bench_conv.py                      # conv2d forward, the whole suite
    python benchmarks/bench_conv.py --mode backward      # forward + input and filter gradients
    python benchmarks/bench_conv.py --mode pool          # max/avg pooling, forward and + backward
    python benchmarks/bench_conv.py --quick              # small shapes, a smoke run (CI)
    python benchmarks/bench_conv.py --cases resnet-3x3 --rounds 15 --markdown

Each round runs every contender once on the same arrays, in turn, so that the drift of a shared,
noisy machine hits them alike; the table shows the median of the rounds, GFLOP/s for convolutions
(2 * N * OH * OW * Cout * kh * kw * Cin per pass: 3 passes with the gradients) and the speed ratio
TensorFlow time / fastconv time (above 1: fastconv is faster).  Without TensorFlow only fastconv
is timed.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402
from cases import CONV_CASES, POOL_CASES, ConvCase, PoolCase  # noqa: E402

import fastconv as fc  # noqa: E402


def quick_conv(case):
    """The same layer on a batch of 2 and at most 32x32 pixels: seconds for the whole suite."""
    n, h, w, c = case.input_shape
    return ConvCase(case.name, (min(n, 2), min(h, 32), min(w, 32), c), case.kernel, case.stride, case.padding)


def quick_pool(case):
    n, h, w, c = case.input_shape
    return PoolCase(case.name, (min(n, 2), min(h, 32), min(w, 32), c), case.ksize, case.stride, case.padding)


def time_rounds(callables, rounds):
    """Median seconds of each callable over ``rounds`` interleaved rounds (after one warm-up)."""
    times = {name: [] for name in callables}
    for fn in callables.values():
        fn()
    for _ in range(rounds):
        for name, fn in callables.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def measure(cases, mode, rounds, tf):
    """[(label, flops or None, {contender: seconds}, fastconv's contender name)] for ``mode``."""
    rows = []
    for case in cases:
        if mode in ("forward", "backward"):
            build = contenders.forward if mode == "forward" else contenders.backward
            flops = case.flops() * (1 if mode == "forward" else 3)
            rows.append((case.name, flops, time_rounds(build(case, tf), rounds), "auto"))
        else:
            for kind in ("max", "avg"):
                for with_backward in (False, True):
                    label = f"{case.name} {kind}{' +bwd' if with_backward else ''}"
                    t = time_rounds(contenders.pool(case, tf, kind, with_backward), rounds)
                    rows.append((label, None, t, "fastconv"))
    return rows


def ratio(times, ours):
    return times["tensorflow"] / times[ours] if "tensorflow" in times else float("nan")


def print_table(rows, out=sys.stdout):
    names = list(dict.fromkeys(name for _, _, t, _ in rows for name in t))
    print(f"{'case':22s} " + " ".join(f"{n:>17s}" for n in names) + f" {'ratio':>7s}", file=out)
    for label, flops, t, ours in rows:
        cells = []
        for n in names:
            gf = f" ({flops / t[n] / 1e9:5.1f})" if flops else ""
            cells.append(f"{t[n] * 1e3:9.2f}{gf}".rjust(17))
        print(f"{label:22s} " + " ".join(cells) + f" {ratio(t, ours):7.2f}", file=out, flush=True)
    ratios = [ratio(t, ours) for _, _, t, ours in rows]
    ratios = [r for r in ratios if np.isfinite(r)]
    if ratios:
        print(f"geometric mean of the ratios: {np.exp(np.mean(np.log(ratios))):.2f}, lowest: {min(ratios):.2f}",
              file=out)


def markdown(rows):
    names = list(dict.fromkeys(name for _, _, t, _ in rows for name in t))
    lines = ["| case | " + " | ".join(names) + " | ratio |", "|---" * (len(names) + 2) + "|"]
    for label, flops, t, ours in rows:
        cells = [f"{t[n] * 1e3:.2f}" + (f" ({flops / t[n] / 1e9:.1f})" if flops else "") for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio(t, ours):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("forward", "backward", "pool"), default="forward")
    parser.add_argument("--cases", nargs="*", help="case names (default: all of the mode)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all CPUs)")
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--no-tensorflow", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="also print the table in Markdown")
    args = parser.parse_args(argv)
    pool_mode = args.mode == "pool"
    cases = [c for c in (POOL_CASES if pool_mode else CONV_CASES) if not args.cases or c.name in args.cases]
    if args.quick:
        cases = [(quick_pool if pool_mode else quick_conv)(c) for c in cases]
    if args.threads:
        fc.set_num_threads(args.threads)
    tf = None if args.no_tensorflow else contenders.load_tensorflow()
    print(f"fastconv {fc.__version__}, {fc.get_num_threads()} threads, kernels: {fc.simd_isa()}, "
          f"OpenMP: {fc.openmp_enabled()}; TensorFlow: {tf.__version__ if tf else 'absent'}; mode: {args.mode}")
    print("ms" + (" (GFLOP/s)" if not pool_mode else "") + "; ratio = TensorFlow time / fastconv time")
    rows = measure(cases, args.mode, args.rounds, tf)
    print_table(rows)
    if args.markdown:
        print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
