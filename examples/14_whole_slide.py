"""A whole slide scanned by the malaria CNN, tile by tile on Dask: a heat map of the parasites.

    python examples/14_whole_slide.py [--data-dir DIR] [--grid 12] [--limit 2000] [--epochs 6]
                                      [--model model.keras] [--chunk 400] [--out out/14_whole_slide]

1. Trains the lecture's malaria CNN (100x100 cells) on the cells of some slides (the real NIH
   images when found: --data-dir, $FASTCONV_MALARIA_DIR or ../shared/malaria; synthetic cells
   otherwise), or loads the one the full job trained (--model model.keras; that job's split is
   not this one, so the slide may then hold cells it was trained on).  The defaults train for
   6 epochs on 1,400 cells only, a weak model (0.62 accuracy on the slide, measured): the map
   shows the method; the full job's model (0.94 on unseen slides) makes it show the parasites.
2. Lays cells of other slides (never seen in training) side by side into one large "slide",
   ``grid`` x ``grid`` cells 4 pixels apart (1,248 x 1,248 pixels by default), as a dask array in chunks of
   ``chunk`` x ``chunk`` pixels.
3. Makes the CNN fully convolutional: its Flatten + Dense(1) on the 24x24x64 feature map is a
   Conv2D(1, 24x24) with the same weights, so one pass over the slide gives the CNN's output
   for every 100x100 window at a step of 4 pixels (the two poolings).  ``fastconv.dask.apply``
   runs it chunk by chunk, each chunk borrowing the halo its layers need from its neighbours.
4. Draws the slide and the heat map of P(parasitized) (figure ``heatmap.png``), checks that the
   map at each cell's position equals ``model.predict`` on that cell, and gives the accuracy.
5. Runs the same scan on a ``dask.distributed.LocalCluster`` (2 workers x 1 thread) and checks
   that it gives the same map.
"""
import argparse
import os
import time

import numpy as np


def lecture_cnn(size):
    from fastconv.keras import Sequential
    from fastconv.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
    model = Sequential()
    model.add(Conv2D(32, (3, 3), input_shape=(size, size, 3), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(1, activation="sigmoid"))
    return model


def fully_convolutional(model):
    """The CNN with its Flatten + Dropout + Dense(1) as one Conv2D over the whole feature map:
    Flatten reads the (h, w, c) map in row-major order, so the Dense kernel reshaped to
    (h, w, c, 1) is the same dot product at every window of that size."""
    from fastconv.keras import Sequential
    from fastconv.keras.layers import Conv2D, Input
    convolutional = [layer for layer in model.layers if type(layer).__name__ in ("Conv2D", "MaxPooling2D")]
    flatten, dense = model.layers[-3], model.layers[-1]
    h, w, c = flatten.input.shape[1:]
    kernel, bias = dense.get_weights()
    head = Conv2D(1, (h, w), activation="sigmoid", name="dense_as_conv")
    fcn = Sequential([Input((None, None, 3)), *[type(layer).from_config(layer.get_config()) for layer in convolutional],
                      head])
    for source, target in zip(convolutional, fcn.layers[:-1]):
        target.set_weights(source.get_weights())
    head.set_weights([kernel.reshape(h, w, c, 1), bias])
    return fcn


def mosaic(cells, grid, gap):
    """``grid`` x ``grid`` cells on a black background, each followed by ``gap`` black rows and
    columns: (1, grid * (size + gap), grid * (size + gap), 3)."""
    size = cells.shape[1]
    pitch = size + gap
    slide = np.zeros((1, grid * pitch, grid * pitch, 3), cells.dtype)
    for k, cell in enumerate(cells[:grid * grid]):
        i, j = divmod(k, grid)
        slide[0, i * pitch:i * pitch + size, j * pitch:j * pitch + size] = cell
    return slide


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="the NIH cell images (default: found automatically)")
    parser.add_argument("--limit", type=int, default=2000, help="cells read (training and slide)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--model", default=None, help="a model saved by `python -m fastconv.examples.malaria --save` "
                                                      "(default: train one here)")
    parser.add_argument("--grid", type=int, default=12, help="cells per side of the slide")
    parser.add_argument("--chunk", type=int, default=400, help="pixels per side of a Dask chunk")
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster scan")
    parser.add_argument("--out", default=os.path.join("out", "14_whole_slide"))
    args = parser.parse_args(argv)

    import dask.array as da
    import fastconv.dask as fd
    from fastconv.datasets import malaria
    from fastconv.keras.utils import set_random_seed

    size = 100
    data, source = malaria.load_or_synthetic(args.data_dir, (size, size), args.limit)
    x, y, names = data
    train, test = malaria.split_by_slide(names, test_size=0.3, seed=0, labels=y)
    if len(test) < args.grid ** 2:
        raise SystemExit(f"{len(test)} test cells for a {args.grid}x{args.grid} slide: raise --limit or lower --grid")
    print(f"data: {source}; {len(train)} cells for training, a slide of {args.grid}x{args.grid} unseen cells")

    if args.model is not None:
        from fastconv.keras.models import load_model
        model = load_model(args.model)
        print(f"model: {args.model}")
    else:
        set_random_seed(0)
        model = lecture_cnn(size)
        model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x[train], y[train], batch_size=50, epochs=args.epochs, verbose=2)
        print(f"trained in {time.perf_counter() - start:.1f} s")

    rng = np.random.default_rng(0)
    on_slide = rng.permutation(test)[:args.grid ** 2]
    # 4 black pixels between cells: the windows of the map step by 4 pixels, so every cell has
    # one window exactly on it, whose first convolution sees black (zeros) around the cell as
    # the SAME padding of model.predict on the cell alone does.
    gap = 4
    slide = mosaic(x[on_slide], args.grid, gap)
    chunked = da.from_array(slide, chunks=(1, args.chunk, args.chunk, 3))
    fcn = fully_convolutional(model)
    start = time.perf_counter()
    uninfected = fd.apply(fcn, chunked).compute()[0, :, :, 0]   # label 1 = uninfected, 0 = parasitized
    t_scan = time.perf_counter() - start
    heat = 1 - uninfected
    print(f"scanned {slide.shape[1]}x{slide.shape[2]} pixels in {chunked.numblocks[1] * chunked.numblocks[2]} chunks "
          f"on Dask: heat map {heat.shape[0]}x{heat.shape[1]} (a window every 4 pixels) in {t_scan:.1f} s")

    # Cell (i, j) starts at pixel (104 i, 104 j): heat-map entry (26 i, 26 j).
    step = (size + gap) // 4
    at_cells = heat[::step, ::step][:args.grid, :args.grid].reshape(-1)
    per_cell = 1 - model.predict(x[on_slide], verbose=0)[:, 0]
    deviation = float(np.abs(at_cells - per_cell).max())
    assert deviation < 1e-5, deviation
    accuracy = float(np.mean((at_cells > 0.5) == (y[on_slide] == 0)))
    print(f"at the cells' positions the map equals model.predict on the cells (largest difference {deviation:.1e}); "
          f"accuracy on the slide's {args.grid ** 2} cells: {accuracy:.3f}")

    os.makedirs(args.out, exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    axes[0].imshow(np.clip(slide[0], 0, 1))
    for k, index in enumerate(on_slide):
        if y[index] == 0:
            i, j = divmod(k, args.grid)
            axes[0].add_patch(plt.Rectangle((j * (size + gap), i * (size + gap)), size, size, fill=False,
                                            edgecolor="red", lw=1))
    axes[0].set_title("slide of unseen cells (red: parasitized, by the labels)")
    extent = (size / 2 - 0.5, size / 2 - 0.5 + 4 * heat.shape[1], size / 2 - 0.5 + 4 * heat.shape[0], size / 2 - 0.5)
    shown = axes[1].imshow(heat, cmap="inferno", vmin=0, vmax=1, extent=extent)
    axes[1].set_xlim(0, slide.shape[2])
    axes[1].set_ylim(slide.shape[1], 0)
    axes[1].set_title("heat map: P(parasitized) of the 100x100 window centred here")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    for ax in axes:
        ax.axis("off")
    path = os.path.join(args.out, "heatmap.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {path}")

    if not args.no_cluster:
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
                Client(cluster):
            start = time.perf_counter()
            on_cluster = 1 - fd.apply(fcn, chunked).compute()[0, :, :, 0]
            t_cluster = time.perf_counter() - start
        difference = float(np.abs(on_cluster - heat).max())
        assert difference < 1e-6, difference
        print(f"the same scan on a LocalCluster of 2 workers x 1 thread: {t_cluster:.1f} s, the same map "
              f"(largest difference {difference:.1e})")
    return {"heat": heat, "accuracy": accuracy, "deviation": deviation}


if __name__ == "__main__":
    main()
