"""fastconv.dask: an image larger than memory, and predictions on a LocalCluster.

    python benchmarks/bench_dask.py                  # both parts, full size (about 10 minutes on 2 cores)
    python benchmarks/bench_dask.py --part slide     # the 40,000 x 40,000 image only
    python benchmarks/bench_dask.py --part predict   # the 4,000 cells only
    python benchmarks/bench_dask.py --quick          # small sizes: a smoke run

Slide: a 1 x 40,000 x 40,000 x 1 float32 image (6.4 GB) built lazily in 4,000 x 4,000 chunks
by a deterministic generator (nothing is written to disk), convolved 3x3 SAME with
fastconv.dask.conv2d (bias and ReLU), max-pooled 2x2 and summed to one number, on Dask's
threaded scheduler in this process.  The peak resident set of this process (ru_maxrss, read
before any large array exists and at the end) is printed; the run must stay under 3 GB.  The
same work (generator included) in memory on a 1 x 8,000 x 8,000 x 1 image gives the in-memory
throughput; the report is the time per pixel of both and their ratio.  The generator's own
time (its chunks summed through Dask) is printed too.

Predict: the lecture's malaria CNN (100 x 100 x 3 cells, untrained weights: the time does not
depend on them) predicts 4,000 cells in process (model.predict, fastconv's threads on both
cores) and with fastconv.dask.predict on a LocalCluster of 2 worker processes x 1 thread,
chunks of 250 cells built on the workers by the same generator.  Reported: both times, their
ratio, the task stream's per-task compute time and the rest (scheduling, transfers: the
cluster's overhead), and from them the time expected on N such machines.
"""
import argparse
import resource
import time

import numpy as np


def peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def slide_block(block_info=None):
    """One chunk of the synthetic slide, the same for the same location whatever the chunking:
    smooth stains plus noise seeded by the chunk's position."""
    (n0, n1), (h0, h1), (w0, w1), (c0, c1) = block_info[None]["array-location"]
    rng = np.random.default_rng([h0, w0])
    rows = np.arange(h0, h1, dtype=np.float32)[:, None]
    cols = np.arange(w0, w1, dtype=np.float32)[None, :]
    image = np.sin(rows * 0.01) * np.cos(cols * 0.013) + rng.random((h1 - h0, w1 - w0), dtype=np.float32)
    return image.astype(np.float32)[None, :, :, None]


def lazy_slide(size, chunk):
    import dask.array as da
    return da.map_blocks(slide_block, dtype=np.float32, chunks=((1,), *(tuple(_chunks(size, chunk)),) * 2, (1,)),
                         meta=np.empty((0, 0, 0, 0), np.float32))


def _chunks(size, chunk):
    return [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])


def bench_slide(size, chunk, memory_size):
    import dask
    import fastconv
    import fastconv.dask as fd
    w = (np.arange(9, dtype=np.float32).reshape(3, 3, 1, 1) - 4) / 9
    b = np.array([0.1], np.float32)
    print(f"peak RSS before: {peak_rss_gb():.2f} GB")

    with dask.config.set(scheduler="threads"):
        start = time.perf_counter()
        generated = float(lazy_slide(size, chunk).sum().compute())
        t_gen = time.perf_counter() - start
        print(f"generator alone, {size}x{size}: {t_gen:.1f} s (sum {generated:.6g})")
        image = lazy_slide(size, chunk)
        y = fd.max_pool2d(fd.conv2d(image, w, 1, "SAME", bias=b, activation="relu"), 2, 2, "SAME")
        start = time.perf_counter()
        total = float(y.sum(dtype=np.float64).compute())
        t_dask = time.perf_counter() - start
    rss = peak_rss_gb()
    print(f"dask {size}x{size} ({size * size * 4 / 1e9:.1f} GB) in chunks {chunk}x{chunk}: {t_dask:.1f} s, "
          f"sum {total:.6g}, peak RSS {rss:.2f} GB ({'under' if rss < 3 else 'OVER'} 3 GB)")

    start = time.perf_counter()
    x = slide_block({None: {"array-location": [(0, 1), (0, memory_size), (0, memory_size), (0, 1)]}})
    t_gen_mem = time.perf_counter() - start
    z = fastconv.max_pool2d(fastconv.conv2d(x, w, 1, "SAME", bias=b, activation="relu"), 2, 2, "SAME")
    total_memory = float(z.sum(dtype=np.float64))
    t_mem = time.perf_counter() - start
    print(f"in memory {memory_size}x{memory_size}: {t_mem:.2f} s, of which the generator {t_gen_mem:.2f} s "
          f"(sum {total_memory:.6g})")
    per_dask, per_mem = t_dask / size**2, t_mem / memory_size**2
    print(f"time per pixel, generator included: dask {per_dask * 1e9:.2f} ns, in memory {per_mem * 1e9:.2f} ns, "
          f"ratio {per_dask / per_mem:.2f} (target <= 1.5)")
    ops_dask, ops_mem = (t_dask - t_gen) / size**2, (t_mem - t_gen_mem) / memory_size**2
    print(f"time per pixel of the ops alone (generator's time subtracted): dask {ops_dask * 1e9:.2f} ns, "
          f"in memory {ops_mem * 1e9:.2f} ns, ratio {ops_dask / ops_mem:.2f}")


def malaria_cnn(size):
    from fastconv.keras import Sequential
    from fastconv.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    from fastconv.keras.utils import set_random_seed
    set_random_seed(0)
    model = Sequential()
    model.add(Conv2D(32, (3, 3), input_shape=(size, size, 3), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(1, activation="sigmoid"))
    return model


def cell_block(block_info=None):
    (n0, n1), (h0, h1), (w0, w1), (c0, c1) = block_info[None]["array-location"]
    return np.random.default_rng(n0).random((n1 - n0, h1 - h0, w1 - w0, c1 - c0), dtype=np.float32)


def _compute_seconds(task):
    return sum(s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute")


def bench_predict(n_cells, chunk, batch_size, size=100):
    import dask.array as da
    from distributed import Client, LocalCluster, get_task_stream
    import fastconv.dask as fd
    model = malaria_cnn(size)
    cells = da.map_blocks(cell_block, dtype=np.float32, chunks=(tuple(_chunks(n_cells, chunk)), (size,), (size,), (3,)),
                          meta=np.empty((0, 0, 0, 0), np.float32))
    x = cells.compute(scheduler="sync")
    model.predict(x[:batch_size], verbose=0)   # warm-up
    start = time.perf_counter()
    want = model.predict(x, batch_size=batch_size, verbose=0)
    t_local = time.perf_counter() - start
    print(f"in process: model.predict of {n_cells} cells {size}x{size}x3: {t_local:.2f} s "
          f"({t_local / n_cells * 1e3:.2f} ms per cell)")

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        fd.predict(model, cells[:chunk], batch_size=batch_size).compute()   # warm-up: the model reaches the workers
        with get_task_stream() as stream:
            cells.sum().compute()
        t_gen = sum(_compute_seconds(t) for t in stream.data)
        with get_task_stream() as stream:
            start = time.perf_counter()
            got = fd.predict(model, cells, batch_size=batch_size).compute()
            t_cluster = time.perf_counter() - start
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)
    # Dask fuses each chunk's generator into its prediction: one task per chunk does both.
    n_tasks = cells.numblocks[0]
    busy = sum(_compute_seconds(t) for t in stream.data)
    per_task = busy / n_tasks
    overhead = t_cluster - busy / 2          # two workers
    print(f"LocalCluster 2 workers x 1 thread: {t_cluster:.2f} s, ratio to in process {t_cluster / t_local:.2f} "
          f"(target <= 1.3)")
    print(f"  {n_tasks} tasks of {chunk} cells: {per_task:.2f} s compute each (mean; the generator's part "
          f"{t_gen / n_tasks * 1e3:.0f} ms), {busy:.2f} s in all; wall minus compute per worker: {overhead:.2f} s "
          f"({overhead / (n_tasks / 2) * 1e3:.0f} ms per task and worker)")
    # Each worker spends per task its compute and its share of the overhead; N machines of 2
    # cores run ceil(tasks / 2N) rounds of tasks (the scheduler's per-task cost, a few ms, is
    # inside the overhead measured here).
    per_task_wall = per_task + overhead / (n_tasks / 2)
    for machines in (1, 2, 4, 8, 16):
        rounds = -(-n_tasks // (2 * machines))
        print(f"  expected on {machines:2d} machine(s) of 2 cores: {rounds} rounds x {per_task_wall:.2f} s = "
              f"{rounds * per_task_wall:.2f} s ({n_cells / (rounds * per_task_wall):.0f} cells/s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["slide", "predict", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    if args.part in ("slide", "both"):
        if args.quick:
            bench_slide(4000, 1000, 2000)
        else:
            bench_slide(40000, 4000, 8000)
    if args.part in ("predict", "both"):
        if args.quick:
            bench_predict(400, 100, 50)
        else:
            bench_predict(4000, 250, 50)


if __name__ == "__main__":
    main()
