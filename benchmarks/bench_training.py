"""One epoch of the lecture's malaria CNN: fastconv.keras against tf.keras (Keras on TensorFlow).

    python benchmarks/bench_training.py              # 2,000 images 100x100x3, 5 rounds, + memory
    python benchmarks/bench_training.py --quick      # 200 images, 1 round: a smoke run
    python benchmarks/bench_training.py --no-memory --rounds 9

Time, in this process: both models get the same initial weights and the same random images;
after one warm-up epoch each (reported apart: Keras traces its graph then), the rounds run one
epoch of each framework in turn (batch 100, validation_split 0.1: 18 training batches and the
validation), alternating which goes first, so that the drift of a shared machine hits both
alike.  Reported: every round's times, the median epoch time of each, and the ratio
fastconv / Keras (below 1: fastconv is faster), the median of the rounds' ratios.

Memory, in two fresh processes (one per framework, so that neither sees the other's memory),
started before this process imports either framework:
the resident set size (RSS) read from /proc/self/statm every 2 ms by a thread, before fit
(after the imports, the data and the model) and at its peak during two epochs (the first with
Keras's tracing), and the kernel's own maximum (ru_maxrss).  RSS counts everything the process
holds: the interpreter, the framework's code and caches, the 240 MB of images.  The "peak
increase during fit" is the difference, the working memory of training itself.  For fastconv,
tracemalloc also reports the peak of the NumPy arrays alive during fit (TensorFlow's own
allocator is invisible to tracemalloc).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def malaria_cnn(K, size):
    """The lecture's model, with the lecture's code (K is keras or fastconv.keras)."""
    model = K.Sequential()
    model.add(K.layers.Input((size, size, 3)))
    model.add(K.layers.Conv2D(filters=32, kernel_size=(3, 3), padding="same", activation="relu"))
    model.add(K.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(K.layers.Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(K.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(K.layers.Flatten())
    model.add(K.layers.Dropout(0.5))
    model.add(K.layers.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def data(n, size, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, 3), dtype=np.float32), (rng.random(n) > 0.5).astype(np.int64)


def fit_epoch(model, x, y):
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=100, epochs=1, validation_split=0.1, verbose=0)
    return time.perf_counter() - t0


def load_frameworks():
    import keras

    import fastconv
    from fastconv import keras as fk
    return fastconv, fk, keras


def time_epochs(n, size, rounds):
    fastconv, fk, keras = load_frameworks()
    import tensorflow as tf
    x, y = data(n, size)
    k_model, f_model = malaria_cnn(keras, size), malaria_cnn(fk, size)
    f_model.set_weights(k_model.get_weights())
    print(f"fastconv {fastconv.__version__} ({fastconv.get_num_threads()} threads, {fastconv.simd_isa()}), "
          f"TensorFlow {tf.__version__} / Keras {keras.__version__} "
          f"(intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'all CPUs'}), "
          f"{os.cpu_count()} CPUs")
    print(f"one epoch of the malaria CNN: {n} random images {size}x{size}x3, batch 100, validation_split 0.1")
    contenders = {"fastconv.keras": f_model, "tf.keras": k_model}
    first = {name: fit_epoch(model, x, y) for name, model in contenders.items()}
    times = {name: [] for name in contenders}
    order = list(contenders)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            times[name].append(fit_epoch(contenders[name], x, y))
    med = {name: float(np.median(ts)) for name, ts in times.items()}
    # Both epochs of a round ran back to back: their ratio is the least disturbed by the load of
    # a shared machine, which drifts over minutes.
    ratios = [f / k for f, k in zip(times["fastconv.keras"], times["tf.keras"])]
    print(f"\ntime per epoch after one warm-up epoch, {rounds} rounds:")
    for name, ts in times.items():
        print(f"  {name:15s} median {med[name]:6.2f} s  (rounds: {', '.join(f'{t:.1f}' for t in ts)});  "
              f"first epoch {first[name]:.2f} s")
    print(f"  ratio fastconv.keras / tf.keras: median of the rounds' ratios {np.median(ratios):.2f} "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); ratio of the medians "
          f"{med['fastconv.keras'] / med['tf.keras']:.2f}")
    return med


class RssSampler:
    """The peak resident set size of this process, read from /proc/self/statm by a thread."""

    def __init__(self, interval=0.002):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def memory_probe(framework, n, size):
    """Run in a fresh process: RSS before fit and at its peak during two epochs (bytes)."""
    import tracemalloc
    if framework == "tf.keras":
        import keras as K
    else:
        from fastconv import keras as K
    x, y = data(n, size)
    model = malaria_cnn(K, size)
    result = {}
    with RssSampler() as sampler:
        before = sampler.peak
        if framework == "fastconv.keras":
            tracemalloc.start()
        for _ in range(2):
            fit_epoch(model, x, y)
        if framework == "fastconv.keras":
            result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    scale = 1024 if sys.platform.startswith("linux") else 1  # ru_maxrss: KiB on Linux, bytes on macOS
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    result.update(before=before, peak=sampler.peak, ru_maxrss=ru_maxrss)
    print(json.dumps(result))


def measure_memory(n, size):
    results = {}
    for framework in ("fastconv.keras", "tf.keras"):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-probe", framework,
                              "--samples", str(n), "--size", str(size)], check=True, capture_output=True, text=True)
        results[framework] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def report_memory(results, n, size):
    mb = 1 / 2**20
    print("\nmemory, each framework in a fresh process (RSS sampled every 2 ms during two epochs):")
    print(f"  {'':15s} {'before fit':>11s} {'peak in fit':>12s} {'increase':>9s} {'ru_maxrss':>10s}")
    for name, r in results.items():
        increase = (r['peak'] - r['before']) * mb
        print(f"  {name:15s} {r['before'] * mb:8.0f} MB {r['peak'] * mb:9.0f} MB {increase:6.0f} MB "
              f"{r['ru_maxrss'] * mb:7.0f} MB")
    f, k = results["fastconv.keras"], results["tf.keras"]
    print(f"  peak RSS ratio fastconv.keras / tf.keras: {f['peak'] / k['peak']:.2f}; "
          f"peak increase ratio: {(f['peak'] - f['before']) / (k['peak'] - k['before']):.2f}")
    print(f"  fastconv.keras NumPy arrays at their peak during fit (tracemalloc): {f['tracemalloc_peak'] * mb:.0f} MB "
          f"(the images, {n * size * size * 3 * 4 * mb:.0f} MB, were allocated before)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="200 images, 1 round: a smoke run")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--memory-probe", choices=["fastconv.keras", "tf.keras"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.rounds = 200, 1
    if args.memory_probe:
        memory_probe(args.memory_probe, args.samples, args.size)
        return
    # Memory first: Linux carries a process's maximum RSS (ru_maxrss) over fork and exec, so
    # the probes are started while this process holds nothing but NumPy.
    memory = None
    if not args.no_memory:
        if os.path.exists("/proc/self/statm"):
            memory = measure_memory(args.samples, args.size)
        else:
            print("memory: /proc/self/statm is not available on this system; not measured")
    time_epochs(args.samples, args.size, args.rounds)
    if memory is not None:
        report_memory(memory, args.samples, args.size)


if __name__ == "__main__":
    main()
