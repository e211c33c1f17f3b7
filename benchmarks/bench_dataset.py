"""Time one epoch of image_dataset_from_directory: fastconv's against Keras's, on the same folder.

    python benchmarks/bench_dataset.py                    # the malaria cells (16,000 PNGs), 3 rounds
    python benchmarks/bench_dataset.py --quick            # 1,000 of them, 3 rounds
    python benchmarks/bench_dataset.py --data-dir DIR --per-class 2000 --rounds 5
    python benchmarks/bench_dataset.py --augment          # + RandomFlip, RandomRotation in map

Both datasets are made with the same arguments (image_size 100x100, batch_size 32, shuffle with
seed 0, as the lecture's programs) and read for one whole epoch in the same process, the two
libraries alternating in each round; the medians and the best rounds are reported with images
per second, and the CPU time of the process per image (the steadier figure on a machine shared
with other work: there the wall time follows the neighbours' load, and the library that runs
more threads gets a larger share of the cores; ``--same-threads`` gives tf.data a private pool
of as many threads as fastconv uses).
fastconv's batches are NumPy arrays, Keras's are tf.Tensors read without conversion.  A subset
(``--per-class`` files of each class folder, the first in name order) is read through a temporary
folder of symbolic links.  TensorFlow is optional (without it, fastconv alone is timed).

``--augment`` times the epoch as the Keras tutorials augment it: each library's
``Sequential([RandomFlip("horizontal"), RandomRotation(0.1)])`` applied to every batch in
``map(lambda x, y: (augment(x, training=True), y))`` (tf.data with ``num_parallel_calls=AUTOTUNE``
and ``prefetch(AUTOTUNE)``, as the tutorials write it; fastconv's ``prefetch`` likewise).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from contenders import load_tensorflow  # noqa: E402

import fastconv as fc  # noqa: E402
import fastconv.keras as fk  # noqa: E402
from fastconv.datasets import malaria  # noqa: E402
from fastconv.keras.image_dataset import image_dataset_from_directory  # noqa: E402

ARGS = dict(image_size=(100, 100), batch_size=32, shuffle=True, seed=0, verbose=False)


def subset_folder(data_dir, per_class, into):
    """A folder of links to the first ``per_class`` images of each class folder of ``data_dir``."""
    for cls in sorted(os.listdir(data_dir)):
        source = os.path.join(data_dir, cls)
        if not os.path.isdir(source):
            continue
        os.makedirs(os.path.join(into, cls))
        for name in sorted(os.listdir(source))[:per_class]:
            os.symlink(os.path.join(source, name), os.path.join(into, cls, name))
    return into


def augmented(ds, keras_module, tf=None):
    """``ds`` with the tutorials' augmentation mapped over its batches (tf.data: in parallel)."""
    augment = keras_module.Sequential([keras_module.layers.RandomFlip("horizontal", seed=0),
                                       keras_module.layers.RandomRotation(0.1, seed=0)])
    if tf is None:
        return ds.map(lambda x, y: (augment(x, training=True), y)).prefetch(1)
    return ds.map(lambda x, y: (augment(x, training=True), y),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def epoch_seconds(ds):
    """(wall seconds, CPU seconds of the whole process, images) of one pass over ``ds``."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for x, _ in ds:
        n += len(x)
    return time.perf_counter() - t0, time.process_time() - c0, n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="a folder of class folders (default: the malaria cells)")
    parser.add_argument("--per-class", type=int, default=None, help="read only this many files of each class")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 files per class")
    parser.add_argument("--same-threads", action="store_true",
                        help="give tf.data a private pool of fastconv's number of threads")
    parser.add_argument("--augment", action="store_true",
                        help="map RandomFlip + RandomRotation(0.1) over the batches, as the Keras tutorials")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or malaria.default_data_dir()
    if data_dir is None:
        parser.error(f"no --data-dir and no malaria images found (set {malaria.MALARIA_DIR_ENV})")
    per_class = args.per_class if args.per_class is not None else (500 if args.quick else None)
    tf = load_tensorflow()
    with tempfile.TemporaryDirectory() as tmp:
        folder = subset_folder(str(data_dir), per_class, os.path.join(tmp, "cells")) if per_class else str(data_dir)
        contenders = {"fastconv": image_dataset_from_directory(folder, **ARGS)}
        if args.augment:
            contenders["fastconv"] = augmented(contenders["fastconv"], fk)
        if tf is not None:
            keras_ds = tf.keras.utils.image_dataset_from_directory(folder, **ARGS)
            if args.same_threads:
                options = tf.data.Options()
                options.threading.private_threadpool_size = fc.get_num_threads()
                keras_ds = keras_ds.with_options(options)
            contenders["keras"] = augmented(keras_ds, tf.keras, tf) if args.augment else keras_ds
        print(f"one epoch of image_dataset_from_directory({folder}, image_size=100x100, batch_size=32)"
              f"{' + RandomFlip, RandomRotation(0.1)' if args.augment else ''}, "
              f"{args.rounds} rounds, fastconv with {fc.get_num_threads()} threads, tf.data with "
              f"{fc.get_num_threads() if args.same_threads else 'its own'} threads", flush=True)
        times = {name: [] for name in contenders}
        cpu = {name: [] for name in contenders}
        for r in range(args.rounds):
            for name, ds in contenders.items():
                seconds, cpu_seconds, n = epoch_seconds(ds)
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
                print(f"  round {r + 1} {name:8s} {seconds:7.2f} s  {n / seconds:7.0f} images/s   "
                      f"CPU {cpu_seconds:7.2f} s ({cpu_seconds / n * 1e3:.2f} ms per image)", flush=True)
    for label, pick in (("median", statistics.median), ("best", min)):
        wall = {name: pick(t) for name, t in times.items()}
        cpu_time = {name: pick(t) for name, t in cpu.items()}
        line = f"{label}: " + "  ".join(f"{name} {t:.2f} s ({n / t:.0f} images/s, CPU {cpu_time[name] / n * 1e3:.2f} "
                                        f"ms per image)" for name, t in wall.items())
        if "keras" in wall:
            line += (f"   ratio keras/fastconv: wall {wall['keras'] / wall['fastconv']:.2f}, "
                     f"CPU {cpu_time['keras'] / cpu_time['fastconv']:.2f}")
        print(line, flush=True)
    return times


if __name__ == "__main__":
    main()
