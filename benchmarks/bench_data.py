"""Time the data pipeline: the augmentation warp against Keras and SciPy, and loading the cells.

    python benchmarks/bench_data.py                       # warp and augmentation, 7 rounds
    python benchmarks/bench_data.py --load ../shared/malaria --limit 2000 0   # also malaria.load

Augmentation: one batch of 32 float32 images of 100x100x3 (the lecture's malaria cells) with the
lecture's generator (rotation 40 degrees, shifts 0.2, shear 0.2, zoom 0.2, horizontal flips,
'nearest' fill).  Contenders, interleaved in each round on the same arrays, medians reported:

- warp: fastconv.image.affine_transform on the batch with fixed matrices, against
  scipy.ndimage.affine_transform per image and channel (what Keras runs inside);
- batch: one augmented batch from fastconv's ImageDataGenerator.flow, against one from Keras's
  legacy ImageDataGenerator.flow (tf.keras.preprocessing.image), both with the random draws.

Ratio = the peer's time / fastconv's time (above 1: fastconv is faster).  SciPy and TensorFlow
are optional.  Loading has no peer in the same process: it reports seconds and images per second.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv import time_rounds  # noqa: E402
from contenders import load_tensorflow  # noqa: E402

import fastconv as fc  # noqa: E402
from fastconv.image import affine_transform  # noqa: E402
from fastconv.preprocessing.image import ImageDataGenerator, transform_matrix  # noqa: E402

LECTURE_OPTIONS = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                       zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")


def warp_contenders(x, seed=0):
    gen = ImageDataGenerator(**LECTURE_OPTIONS)
    matrices = transform_matrix(gen._draw(np.random.default_rng(seed), x.shape[1:], len(x)), x.shape[1:])
    contenders = {"fastconv": lambda: affine_transform(x, matrices)}
    try:
        from scipy import ndimage
    except ImportError:
        return contenders

    def scipy_warp():
        return [ndimage.affine_transform(img[..., c], m[:, :2], m[:, 2], order=1, mode="nearest")
                for img, m in zip(x, matrices) for c in range(x.shape[-1])]

    contenders["scipy"] = scipy_warp
    return contenders


def batch_contenders(x, tf):
    ours = ImageDataGenerator(**LECTURE_OPTIONS).flow(x, batch_size=len(x), seed=0)
    contenders = {"fastconv": lambda: next(ours)}
    if tf is not None:
        keras = tf.keras.preprocessing.image.ImageDataGenerator(**LECTURE_OPTIONS).flow(x, batch_size=len(x), seed=0)
        contenders["keras"] = lambda: next(keras)
    return contenders


def report(title, times, peer):
    line = f"{title:10s} " + "  ".join(f"{name} {t * 1e3:8.2f} ms" for name, t in times.items())
    if peer in times:
        line += f"   ratio {peer}/fastconv {times[peer] / times['fastconv']:.1f}"
    print(line, flush=True)


def time_load(path, limit, workers):
    from fastconv.datasets import malaria

    t0 = time.perf_counter()
    data = malaria.load(path, limit=limit, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    print(f"malaria.load {len(data.names)} images at 100x100, {workers or fc.get_num_threads()} threads: "
          f"{seconds:.2f} s ({len(data.names) / seconds:.0f} images/s)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="fastconv threads (default: all CPUs)")
    parser.add_argument("--no-tensorflow", action="store_true")
    parser.add_argument("--load", metavar="DIR", help="also time malaria.load on this folder")
    parser.add_argument("--limit", type=int, nargs="*", default=[0], help="limits for --load (0: every image)")
    args = parser.parse_args(argv)
    if args.threads:
        fc.set_num_threads(args.threads)
    tf = None if args.no_tensorflow else load_tensorflow()
    print(f"fastconv {fc.__version__}, {fc.get_num_threads()} threads, OpenMP: {fc.openmp_enabled()}; "
          f"TensorFlow: {tf.__version__ if tf else 'absent'}; batch {args.batch}x100x100x3 float32, "
          f"median of {args.rounds} rounds")
    x = np.random.default_rng(0).random((args.batch, 100, 100, 3)).astype(np.float32)
    report("warp", time_rounds(warp_contenders(x), args.rounds), "scipy")
    report("batch", time_rounds(batch_contenders(x, tf), args.rounds), "keras")
    if args.load:
        for limit in args.limit:
            time_load(args.load, limit or None, None)


if __name__ == "__main__":
    main()
