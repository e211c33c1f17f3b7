"""The lecture's malaria CNN, end to end: load, resize, split by slide, train, evaluate, save.

    python -m fastconv.examples.malaria --data-dir ../shared/malaria --epochs 30 --save model.keras
    python -m fastconv.examples.malaria --data-dir ../shared/malaria --augment   # the lecture's augmentation
    python -m fastconv.examples.malaria                    # SYNTHETIC cells: no data needed

Without --data-dir (or $FASTCONV_MALARIA_DIR) it trains on synthetic stained cells
(fastconv.datasets.malaria.synthetic) and says so.  With real images, the cells are split by
slide (file names ``C{slide}...``): the test accuracy is measured on cells from slides the model
never saw, which is what a new patient's blood smear would be.

The model is the lecture's, written with its Keras code (fastconv.keras): Conv2D 32 3x3 same
ReLU, MaxPooling 2x2, Conv2D 64 3x3 ReLU, MaxPooling 2x2, Flatten, Dropout 0.5, Dense 1 sigmoid;
binary cross-entropy, Adam, batch 100, 10% of the training cells for validation, early stopping
on the validation loss (patience 5, keeping the best weights).  Figures go to --out: the model,
sample cells, training curves, the confusion matrix, the first layer's filters and the feature
maps of one cell.  Prints Keras-style progress and the final test accuracy; --save writes a model
that fastconv.keras.models.load_model restores.

``--augment`` trains on the lecture's augmented batches (ImageDataGenerator with rotation_range=40,
width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
horizontal_flip=True, fill_mode="nearest": new random transforms every epoch) and holds out whole
slides for the validation (about 10% of the training cells, split_by_slide), so that early
stopping watches cells from slides the model does not train on, as the test does.
"""
import argparse
import os
import sys
import time

import numpy as np

from fastconv.datasets import malaria
from fastconv.keras import Model, Sequential
from fastconv.keras.backend import clear_session
from fastconv.keras.callbacks import EarlyStopping
from fastconv.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.keras.models import load_model
from fastconv.keras.utils import plot_model, set_random_seed
from fastconv.preprocessing.image import ImageDataGenerator

LECTURE_AUGMENTATION = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                            zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")


def build_model(image_size=(100, 100)):
    """The lecture's CNN (56,257 parameters at 100x100)."""
    model = Sequential()
    model.add(Conv2D(filters=32, input_shape=(*image_size, 3), kernel_size=(3, 3), padding="same",
                     activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def load_data(args):
    """(images, labels, names, source): real cells from --data-dir or $FASTCONV_MALARIA_DIR, else synthetic."""
    size = (args.image_size, args.image_size)
    data_dir = args.data_dir or os.environ.get(malaria.MALARIA_DIR_ENV) or None
    if data_dir:
        data = malaria.load(data_dir, image_size=size, limit=args.limit, seed=args.seed)
        source = f"real cell images from {data_dir}"
    else:
        data = malaria.synthetic(args.limit or args.synthetic_size, image_size=size, seed=args.seed)
        source = "SYNTHETIC cells (no --data-dir given): fastconv.datasets.malaria.synthetic"
    return data.images, data.labels, data.names, source


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m fastconv.examples.malaria", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with Parasitized/ and Uninfected/ PNGs (default: "
                                           f"${malaria.MALARIA_DIR_ENV}, else synthetic cells)")
    parser.add_argument("--epochs", type=int, default=30, help="at most this many (early stopping ends sooner)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=100, help="cells are resized to N x N (default 100)")
    parser.add_argument("--limit", type=int, default=None, help="use a balanced subset of this many cells")
    parser.add_argument("--synthetic-size", type=int, default=2000, help="synthetic cells when no data (2000)")
    parser.add_argument("--test-size", type=float, default=0.2, help="fraction of cells (whole slides) for the test")
    parser.add_argument("--patience", type=int, default=5, help="early stopping patience on val_loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true",
                        help="train on the lecture's augmented batches, validate on held-out slides")
    parser.add_argument("--save", help="save the trained model here (e.g. model.keras)")
    parser.add_argument("--out", default=os.path.join("out", "malaria"), help="folder for the figures")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    set_random_seed(args.seed)
    started = time.perf_counter()
    x, y, names, source = load_data(args)
    print(f"{len(x)} cells ({int(np.sum(y == 0))} parasitized, {int(np.sum(y == 1))} uninfected), "
          f"{x.shape[1]}x{x.shape[2]}: {source}", flush=True)
    train_idx, test_idx = malaria.split_by_slide(names, test_size=args.test_size, seed=args.seed, labels=y)
    # Keras's validation_split takes the LAST fraction: shuffle so that it holds both classes.
    train_idx = np.random.default_rng(args.seed).permutation(train_idx)
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    n_slides = len({malaria.slide_of(n) for n in names[test_idx]})
    print(f"split by slide: {len(x_train)} training cells, {len(x_test)} test cells from {n_slides} "
          f"slides the model never sees", flush=True)

    clear_session()          # a fresh session, as when the lecture's notebook starts: layer names from conv2d
    model = build_model(x.shape[1:3])
    model.summary()
    figures = not args.no_figures
    if figures:
        from fastconv import plot

        os.makedirs(args.out, exist_ok=True)
        plot_model(model, os.path.join(args.out, "model.png"), show_shapes=True)
        plot.image_grid(x_test[:10], os.path.join(args.out, "cells.png"),
                        titles=[malaria.CLASS_NAMES[k] for k in y_test[:10]], ncols=5)

    t0 = time.perf_counter()
    early_stopping = EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    if args.augment:
        fit_idx, val_idx = malaria.split_by_slide(names[train_idx], test_size=0.1, seed=args.seed + 1,
                                                  labels=y_train)
        print(f"augmented training on {len(fit_idx)} cells, validation on {len(val_idx)} cells of other slides",
              flush=True)
        batches = ImageDataGenerator(**LECTURE_AUGMENTATION).flow(x_train[fit_idx], y_train[fit_idx],
                                                                   batch_size=args.batch_size, seed=args.seed)
        history = model.fit(batches, epochs=args.epochs, shuffle=False,
                            validation_data=(x_train[val_idx], y_train[val_idx]),
                            callbacks=[early_stopping], verbose=args.verbose)
    else:
        history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                            validation_split=0.1, callbacks=[early_stopping], verbose=args.verbose)
    train_seconds = time.perf_counter() - t0
    probabilities = model.predict(x_test, batch_size=args.batch_size, verbose=0)
    y_pred = (probabilities > 0.5).astype(int).reshape(y_test.shape)
    accuracy = float(np.mean(y_pred == y_test))
    epochs_run = len(history.history["loss"])
    print(f"\ntest accuracy on unseen slides: {accuracy:.4f} ({int(np.sum(y_pred == y_test))}/{len(y_test)}); "
          f"{epochs_run} epochs in {train_seconds:.1f} s ({train_seconds / epochs_run:.1f} s per epoch)", flush=True)

    if figures:
        plot.history(history, os.path.join(args.out, "history.png"))
        plot.confusion_matrix(y_test, y_pred, os.path.join(args.out, "confusion_matrix.png"),
                              class_names=malaria.CLASS_NAMES)
        W, b = model.get_layer("conv2d").get_weights()           # (3, 3, 3, 32) and (32,)
        plot.filters(W, os.path.join(args.out, "filters.png"))
        cell = x_test[:1]
        feature_maps = Model(inputs=model.inputs, outputs=model.layers[0].output).predict(cell, verbose=0)
        plot.feature_maps(feature_maps, os.path.join(args.out, "feature_maps.png"))
        print(f"figures in {args.out}")
    if args.save:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        model.save(args.save)
        restored = load_model(args.save)
        same = np.allclose(restored.predict(x_test[:50], verbose=0), probabilities[:50], rtol=1e-6, atol=1e-6)
        print(f"model saved to {args.save} (load_model restores it: {'yes' if same else 'NO'})")
    print(f"total {time.perf_counter() - started:.1f} s")
    return {"accuracy": accuracy, "history": history.history, "train_seconds": train_seconds,
            "epochs": epochs_run, "n_train": len(x_train), "n_test": len(x_test), "source": source,
            "model": model, "y_test": y_test, "y_pred": y_pred}


if __name__ == "__main__":
    main(sys.argv[1:])
