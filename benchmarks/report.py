"""The performance report: fastconv against TensorFlow, memory and scaling, as Markdown and a chart.

    python benchmarks/report.py                 # full report, about 2 minutes on 2 idle cores: benchmarks/results/
    python benchmarks/report.py --quick         # small shapes, a smoke run (CI)

Everything is measured in this run, in one process per table (memory in a fresh process per
point): the float32 GEMM ceiling of the machine (a large NumPy matmul on all threads), conv2d
forward and forward + backward and pooling against TensorFlow (medians of interleaved rounds, as
bench_conv.py), the extra memory of each convolution kernel against the batch size, and the
speed against the number of threads, the batch size and the image size.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_conv  # noqa: E402
import contenders  # noqa: E402
from cases import CONV_CASES, POOL_CASES, ConvCase  # noqa: E402

import fastconv as fc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def gemm_ceiling(rounds, size=4096):
    """GFLOP/s of a float32 NumPy matmul (its BLAS, all threads): the practical ceiling."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    t = bench_conv.time_rounds({"gemm": lambda: a @ b}, rounds)["gemm"]
    return 2 * size**3 / t / 1e9


# -- memory ---------------------------------------------------------------------------------------

MEMORY_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastconv as fc

    def status_kib(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    shape, fshape, stride, padding, op, algorithm = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal(fshape, dtype=np.float32)
    y_shape = fc.conv2d(x[:1], w, stride, padding).shape
    dy = rng.standard_normal((shape[0],) + y_shape[1:], dtype=np.float32)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident size (VmHWM) to the current one
    before = status_kib("VmRSS")
    if op == "forward":
        out = fc.conv2d(x, w, stride, padding, algorithm=algorithm)
    elif op == "input gradient":
        out = fc.conv2d_backprop_input(x.shape, w, dy, stride, padding, algorithm=algorithm)
    else:
        out = fc.conv2d_backprop_filter(x, w.shape, dy, stride, padding, algorithm=algorithm)
    after = status_kib("VmHWM")
    print(json.dumps({"extra_bytes": (after - before) * 1024 - out.nbytes, "threads": fc.get_num_threads()}))
""")


def extra_memory(case, op, algorithm):
    """Peak memory of one call beyond its inputs and its output, in a fresh process: the peak
    resident size (VmHWM, reset just before the call through /proc/self/clear_refs) minus the
    resident size before it and minus the output (Linux only)."""
    args = json.dumps([case.input_shape, case.filter_shape, case.stride, case.padding, op, algorithm])
    # glibc keeps freed blocks resident and hands them out again, so buffers of the call could fit
    # in pages the set-up already touched and not raise the peak. With a 64 KiB mmap threshold,
    # every block of 64 KiB or more is mapped afresh and unmapped when freed: its pages count.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    result = subprocess.run([sys.executable, "-c", MEMORY_CHILD, args], capture_output=True, text=True,
                            check=True, cwd=HERE, env=env)
    return json.loads(result.stdout)


def memory_table(quick):
    base = next(c for c in CONV_CASES if c.name == "resnet-3x3")
    batches = (1, 4) if quick else (1, 8, 32, 128)
    rows = []
    for n in batches:
        case = ConvCase(base.name, (n,) + base.input_shape[1:], base.kernel, base.stride, base.padding)
        for op in ("forward", "input gradient", "filter gradient"):
            for algorithm in ("direct", "im2col", "winograd") if op == "forward" else ("direct", "im2col"):
                m = extra_memory(case, op, algorithm)
                rows.append((n, op, algorithm, m["extra_bytes"] / MIB, m["extra_bytes"] / MIB / m["threads"]))
    return rows


# -- scaling ---------------------------------------------------------------------------------------

THREADS_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import report
    from cases import CONV_CASES
    quick, rounds = json.loads(sys.argv[2])
    cases = [report.bench_conv.quick_conv(c) if quick else c for c in CONV_CASES]
    print(json.dumps(report.scaling_threads(cases, rounds)))
""")


def scaling_threads_fresh(quick, rounds):
    """scaling_threads in a fresh process without TensorFlow: once TensorFlow is loaded, its idle
    thread pools slow down fastconv's threads when the thread count changes between calls (measured:
    parallel efficiency 0.73 instead of 0.96 on resnet-3x3), which is not fastconv's own scaling."""
    result = subprocess.run([sys.executable, "-c", THREADS_CHILD, HERE, json.dumps([quick, rounds])],
                            capture_output=True, text=True, check=True, cwd=HERE)
    rows, n_all = json.loads(result.stdout)
    return [tuple(r) for r in rows], n_all


def scaling_threads(cases, rounds):
    """Forward time with 1 thread and with all threads, and the parallel efficiency; the two
    thread counts alternate within each round, so that the drift of a shared machine hits both."""
    n_all = fc.get_num_threads()

    def with_threads(n, x, w, case):
        def call():
            fc.set_num_threads(n)
            fc.conv2d(x, w, case.stride, case.padding)
        return call

    rows = []
    try:
        for case in cases:
            x, w, _ = contenders.conv_arrays(case)
            times = bench_conv.time_rounds({n: with_threads(n, x, w, case) for n in (1, n_all)}, rounds)
            rows.append((case.name, times[1], times[n_all], times[1] / (n_all * times[n_all])))
    finally:
        fc.set_num_threads(None)
    return rows, n_all


def scaling_sizes(rounds, quick):
    """Forward and forward+backward time per image against the batch size, per pixel against the
    image size (the resnet-3x3 layer): a straight line means no cliff."""
    base = next(c for c in CONV_CASES if c.name == "resnet-3x3")
    batches = (1, 2, 4) if quick else (1, 2, 4, 8, 16, 32, 64)
    sizes = (14, 28) if quick else (14, 28, 56, 112, 224)
    by_batch, by_size = [], []
    for n in batches:
        case = ConvCase(base.name, (n, 56, 56, 64) if not quick else (n, 16, 16, 64), base.kernel, 1, "SAME")
        t = bench_conv.time_rounds({"f": contenders.forward(case, None, ("auto",))["auto"],
                                    "b": contenders.backward(case, None, ("auto",))["auto"]}, rounds)
        by_batch.append((n, t["f"] / n, t["b"] / n))
    for s in sizes:
        case = ConvCase(base.name, (4, s, s, 64), base.kernel, 1, "SAME")
        t = bench_conv.time_rounds({"f": contenders.forward(case, None, ("auto",))["auto"]}, rounds)
        by_size.append((s, t["f"] / (4 * s * s)))
    return by_batch, by_size


# -- output -----------------------------------------------------------------------------------------

def networks_fresh(quick, rounds):
    """bench_networks.py's measurements (ResNet50, MobileNetV2, the training step), in a fresh process."""
    import bench_networks
    path = os.path.join(HERE, "results", "networks.json")
    with open(os.devnull, "w") as quiet:
        command = [sys.executable, os.path.join(HERE, "bench_networks.py"), "--json", path, "--rounds", str(rounds)]
        subprocess.run(command + (["--quick"] if quick else []), check=True, stdout=quiet)
    with open(path) as f:
        return bench_networks.markdown(json.load(f))


def geomean(values):
    values = [v for v in values if np.isfinite(v)]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def write_chart(path, conv_rows, back_rows, pool_rows, threads, by_batch, by_size, memory):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    ax = axes[0, 0]
    names = [r[0] for r in conv_rows]
    pos = np.arange(len(names))
    ax.bar(pos - 0.2, [bench_conv.ratio(t, "auto") for _, _, t, _ in conv_rows], 0.4, label="forward")
    ax.bar(pos + 0.2, [bench_conv.ratio(t, "auto") for _, _, t, _ in back_rows], 0.4, label="forward + backward")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(pos, names, rotation=30, ha="right")
    ax.set_ylabel("speed vs tf.nn.conv2d (TF time / fastconv time)")
    ax.set_title("conv2d: fastconv 'auto' against TensorFlow")
    ax.legend()
    ax = axes[0, 1]
    labels = [r[0] for r in pool_rows]
    ax.barh(np.arange(len(labels)), [bench_conv.ratio(t, "fastconv") for _, _, t, _ in pool_rows])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.set_xlabel("speed vs TensorFlow")
    ax.set_title("pooling")
    ax = axes[1, 0]
    ax.plot([b for b, _, _ in by_batch], [f * 1e3 for _, f, _ in by_batch], "o-", label="forward")
    ax.plot([b for b, _, _ in by_batch], [b_ * 1e3 for _, _, b_ in by_batch], "s-", label="forward + backward")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per image")
    ax.set_ylim(bottom=0)
    ax.set_title("resnet-3x3 layer: time per image against batch size")
    ax.legend()
    ax = axes[1, 1]
    ax.plot([s for s, _ in by_size], [t * 1e9 for _, t in by_size], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("image height = width (batch 4)")
    ax.set_ylabel("ns per output pixel")
    ax.set_ylim(bottom=0)
    ax.set_title("resnet-3x3 layer: time per pixel against image size")
    ax = axes[0, 2]
    ax.bar(np.arange(len(threads[0])), [e for *_, e in threads[0]])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(threads[0])), [r[0] for r in threads[0]], rotation=30, ha="right")
    ax.set_ylabel(f"parallel efficiency, {threads[1]} threads (t1 / ({threads[1]} t{threads[1]}))")
    ax.set_title("forward: 1 thread against all")
    ax = axes[1, 2]
    styles = {"direct": "o-", "im2col": "s--", "winograd": "^:"}
    for op, alg in dict.fromkeys((o, a) for _, o, a, _, _ in memory):
        pts = [(n, per_thread) for n, o, a, _, per_thread in memory if o == op and a == alg]
        ax.plot([n for n, _ in pts], [m for _, m in pts], styles[alg], label=f"{op}, {alg}")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size")
    ax.set_ylabel("extra MiB per thread beyond inputs and output")
    ax.set_title("resnet-3x3 layer: extra memory (budget 64 MiB/thread)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes and few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 7)
    conv_cases = [bench_conv.quick_conv(c) if args.quick else c for c in CONV_CASES]
    pool_cases = [bench_conv.quick_pool(c) if args.quick else c for c in POOL_CASES]
    tf = contenders.load_tensorflow()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()

    def log(msg):
        print(f"[{time.time() - started:6.0f} s] {msg}", flush=True)

    log("GEMM ceiling")
    ceiling = gemm_ceiling(rounds, 1024 if args.quick else 4096)
    log("conv2d forward")
    conv_rows = bench_conv.measure(conv_cases, "forward", rounds, tf)
    log("conv2d forward + backward")
    back_rows = bench_conv.measure(conv_cases, "backward", rounds, tf)
    log("pooling")
    pool_rows = bench_conv.measure(pool_cases, "pool", rounds, tf)
    log("memory")
    memory = memory_table(args.quick)
    log("scaling")
    threads = scaling_threads_fresh(args.quick, rounds)
    by_batch, by_size = scaling_sizes(rounds, args.quick)
    log("whole networks")
    networks = networks_fresh(args.quick, min(rounds, 3))

    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, fastconv {fc.__version__} with {fc.simd_isa()} "
               f"kernels, OpenMP {'on' if fc.openmp_enabled() else 'off'}, {fc.get_num_threads()} threads; "
               f"TensorFlow {tf.__version__ if tf else 'absent'}; NumPy {np.__version__}")
    fwd_ratios = [bench_conv.ratio(t, "auto") for _, _, t, _ in conv_rows]
    back_ratios = [bench_conv.ratio(t, "auto") for _, _, t, _ in back_rows]
    pool_ratios = [bench_conv.ratio(t, "fastconv") for _, _, t, _ in pool_rows]
    lines = [
        "# fastconv performance report" + (" (quick: small shapes)" if args.quick else ""),
        "",
        f"Machine: {machine}. Float32 GEMM ceiling (NumPy matmul, all threads): **{ceiling:.0f} GFLOP/s**.",
        f"Medians of {rounds} interleaved rounds; ratio = TensorFlow time / fastconv time (above 1: fastconv "
        "is faster). Command: `python benchmarks/report.py" + (" --quick" if args.quick else "") + "`.",
        "GFLOP/s counts the 2 N OH OW kh kw cin cout operations of a direct convolution for every "
        "algorithm; Winograd (chosen by `auto` for wide 3x3 layers) does fewer, so its figure can pass "
        "the GEMM ceiling.",
        "",
        "## conv2d forward, ms (GFLOP/s)",
        "",
        bench_conv.markdown(conv_rows),
        "",
        f"Geometric mean of the ratios {geomean(fwd_ratios):.2f}, lowest {min(fwd_ratios):.2f}.",
        "",
        "## conv2d forward + input gradient + filter gradient, ms (GFLOP/s of the three passes)",
        "",
        bench_conv.markdown(back_rows),
        "",
        f"Geometric mean of the ratios {geomean(back_ratios):.2f}, lowest {min(back_ratios):.2f}.",
        "",
        "## Pooling, ms (max +bwd: fastconv keeps the forward's argmax, TensorFlow's gradient searches again)",
        "",
        bench_conv.markdown(pool_rows),
        "",
        f"Lowest ratio {min(pool_ratios):.2f}.",
        "",
        "## Extra memory (resnet-3x3 layer, float32): peak beyond inputs and output, fresh process",
        "",
        "| batch | pass | algorithm | extra MiB | per configured thread |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {op} | {alg} | {mib:.1f} | {per:.1f} |" for n, op, alg, mib, per in memory]
    lines += [
        "",
        f"## Scaling: forward on 1 and {threads[1]} threads",
        "",
        "In a fresh process without TensorFlow, the thread counts alternating within each round.",
        "",
        f"| case | 1 thread ms | {threads[1]} threads ms | parallel efficiency |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {t1 * 1e3:.2f} | {tn * 1e3:.2f} | {eff:.0%} |" for name, t1, tn, eff in threads[0]]
    lines += ["", "Time per image against the batch size (resnet-3x3 layer, `auto`):", "",
              "| batch | forward ms/image | forward+backward ms/image |", "|---|---|---|"]
    lines += [f"| {n} | {f * 1e3:.3f} | {b * 1e3:.3f} |" for n, f, b in by_batch]
    lines += ["", "Time per output pixel against the image size (batch 4, 3x3x64 -> 64, `auto`):", "",
              "| height = width | ns per output pixel |", "|---|---|"]
    lines += [f"| {s} | {t * 1e9:.1f} |" for s, t in by_size]
    lines += ["", "## Whole networks (benchmarks/bench_networks.py, fresh process)", "",
              "`predict_on_batch` images/s with Keras's random weights, the same in every contender; "
              "fastconv's runs through the model's frozen `fastconv.keras.inference.InferenceModel` "
              "(BatchNormalization folded into the convolutions; bias, ReLU and the residual adds in "
              "their epilogue). Training step: `train_on_batch` with Adam.", "", networks]
    lines += ["", "![chart](report.png)", ""]
    report = "\n".join(lines)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report)
    write_chart(os.path.join(args.out, "report.png"), conv_rows, back_rows, pool_rows, threads, by_batch, by_size,
                memory)
    print(report)
    log(f"written {os.path.join(args.out, 'report.md')} and report.png")


if __name__ == "__main__":
    main()
