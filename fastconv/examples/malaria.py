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

``--base NAME`` (resnet50, mobilenet_v2, vgg16, densenet121, efficientnetb0) replaces the
lecture's CNN by transfer learning (fastconv.examples.transfer): the cells pass once through the
frozen Keras Application (no classifier, features averaged), a new classifier (dropout, one
sigmoid unit) trains on those features with early stopping on held-out slides, then the base's
last block is unfrozen and the whole model fine-tuned for ``--fine-tune-epochs`` with a learning
rate of 1e-5, BatchNormalization kept in inference mode.  ``--base-weights``: ``auto`` (Keras's
ImageNet file when it is in Keras's cache, ~/.keras/models or $KERAS_HOME/models, else RANDOM),
``imagenet`` (fetched through Keras's cache), ``none`` (RANDOM) or the path of a Keras weights
file; the run says which.  --save writes the whole model (base and classifier); it takes the
cells as the application's ``preprocess_input`` gives them (pixels 0..255).

    python -m fastconv.examples.malaria --data-dir ../shared/malaria --base resnet50 --save resnet50.keras
"""
import argparse
import os
import sys
import time

import numpy as np

from fastconv.datasets import malaria
from fastconv.examples import transfer
from fastconv.keras import Model, Sequential
from fastconv.keras.backend import clear_session
from fastconv.keras.callbacks import EarlyStopping
from fastconv.keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from fastconv.keras.models import load_model
from fastconv.keras.utils import plot_model, set_random_seed
from fastconv.preprocessing.image import ImageDataGenerator

DEFAULT_FINE_TUNE_EPOCHS = 2
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


def validation_by_slide(train_names, y_train, seed):
    """(fit, validation) positions among the training cells: about 10% of them, whole slides,
    for early stopping to watch cells of slides the model does not train on."""
    return malaria.split_by_slide(train_names, test_size=0.1, seed=seed + 1, labels=y_train)


def split(args, y, names):
    """(training, test) positions: whole slides for the test, the training cells shuffled."""
    train_idx, test_idx = malaria.split_by_slide(names, test_size=args.test_size, seed=args.seed, labels=y)
    # Keras's validation_split takes the LAST fraction: shuffle so that it holds both classes.
    return np.random.default_rng(args.seed).permutation(train_idx), test_idx


def train(model, args, x_train, y_train, train_names, callbacks=()):
    """Fit the lecture's CNN as the main job does, with early stopping on the validation loss:
    plain (the last 10% of the training cells for validation) or, with --augment, on the
    lecture's augmented batches with whole slides held out.  ``callbacks`` are added to the
    early stopping (benchmarks/bench_main_job.py times the run against Keras through one).
    Returns the History."""
    early_stopping = EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True)
    callbacks = [early_stopping, *callbacks]
    if not args.augment:
        return model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                         validation_split=0.1, callbacks=callbacks, verbose=args.verbose)
    fit_idx, val_idx = validation_by_slide(train_names, y_train, args.seed)
    print(f"augmented training on {len(fit_idx)} cells, validation on {len(val_idx)} cells of other slides",
          flush=True)
    batches = ImageDataGenerator(**LECTURE_AUGMENTATION).flow(x_train[fit_idx], y_train[fit_idx],
                                                               batch_size=args.batch_size, seed=args.seed)
    return model.fit(batches, epochs=args.epochs, shuffle=False, validation_data=(x_train[val_idx], y_train[val_idx]),
                     callbacks=callbacks, verbose=args.verbose)


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
    parser.add_argument("--base", default="none", choices=("none", *transfer.BASES),
                        help="transfer learning from this Keras Application (default none: the lecture's CNN)")
    parser.add_argument("--base-weights", help="with --base: auto (Keras's ImageNet file if it is in Keras's cache, "
                                               "else random; the default), imagenet, none (random) or PATH")
    parser.add_argument("--fine-tune-epochs", type=int,
                        help=f"with --base: epochs of fine-tuning (default {DEFAULT_FINE_TUNE_EPOCHS}; 0: none)")
    args = parser.parse_args(argv)
    if args.base == "none":
        given = [flag for flag, value in (("--base-weights", args.base_weights),
                                          ("--fine-tune-epochs", args.fine_tune_epochs)) if value is not None]
        if given:
            parser.error(f"{' and '.join(given)} apply to transfer learning only: give --base too")
        return args
    if args.augment:
        parser.error("--augment is not supported with --base (the base's features are extracted once)")
    if args.fine_tune_epochs is not None and args.fine_tune_epochs < 0:
        parser.error(f"--fine-tune-epochs must be >= 0. Received: {args.fine_tune_epochs}")
    args.base_weights = args.base_weights or "auto"
    args.fine_tune_epochs = DEFAULT_FINE_TUNE_EPOCHS if args.fine_tune_epochs is None else args.fine_tune_epochs
    try:
        transfer.check_image_size(transfer.get_spec(args.base), args.image_size)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    args = parse_args(argv)
    set_random_seed(args.seed)
    started = time.perf_counter()
    x, y, names, source = load_data(args)
    print(f"{len(x)} cells ({int(np.sum(y == 0))} parasitized, {int(np.sum(y == 1))} uninfected), "
          f"{x.shape[1]}x{x.shape[2]}: {source}", flush=True)
    train_idx, test_idx = split(args, y, names)
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    n_slides = len({malaria.slide_of(n) for n in names[test_idx]})
    print(f"split by slide: {len(x_train)} training cells, {len(x_test)} test cells from {n_slides} "
          f"slides the model never sees", flush=True)
    if args.base != "none":
        return run_transfer(args, x, y, names, train_idx, test_idx, source, started)

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
    history = train(model, args, x_train, y_train, names[train_idx])
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


def run_transfer(args, x, y, names, train_idx, test_idx, source, started):
    """--base: transfer learning on the same split (the test cells from unseen slides)."""
    fit_pos, val_pos = validation_by_slide(names[train_idx], y[train_idx], args.seed)
    fit_idx, val_idx = train_idx[fit_pos], train_idx[val_pos]
    print(f"transfer learning from {args.base}: the new classifier trains on {len(fit_idx)} cells, early stopping "
          f"watches {len(val_idx)} cells of other slides", flush=True)
    clear_session()
    result = transfer.transfer_learn(args.base, x, y, fit_idx, test_idx, val_idx=val_idx,
                                     base_weights=args.base_weights, epochs=args.epochs,
                                     fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size,
                                     patience=args.patience, verbose=args.verbose,
                                     log=lambda line: print(line, flush=True))
    print(result.summary, flush=True)
    x_test, y_test = result.x[test_idx], y[test_idx]
    y_pred = (result.probabilities > 0.5).astype(int).reshape(y_test.shape)
    accuracy = float(np.mean(y_pred == y_test))
    train_seconds = result.extract_seconds + result.head_seconds + result.fine_tune_seconds
    weights = ("ImageNet weights" if result.pretrained else
               "RANDOM weights, NOT pre-trained" if result.weights is None else f"weights from {result.weights}")
    print(f"\ntest accuracy on unseen slides: {accuracy:.4f} ({int(np.sum(y_pred == y_test))}/{len(y_test)}); "
          f"{args.base} base with {weights}; features, classifier and fine-tuning in {train_seconds:.1f} s",
          flush=True)
    if not args.no_figures:
        from fastconv import plot

        os.makedirs(args.out, exist_ok=True)
        plot.image_grid(x[test_idx[:10]], os.path.join(args.out, "cells.png"),
                        titles=[malaria.CLASS_NAMES[k] for k in y_test[:10]], ncols=5)
        plot.history(result.head_history, os.path.join(args.out, "history.png"))
        plot.confusion_matrix(y_test, y_pred, os.path.join(args.out, "confusion_matrix.png"),
                              class_names=malaria.CLASS_NAMES)
        print(f"figures in {args.out}")
    if args.save:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        result.model.save(args.save)
        restored = load_model(args.save)
        # The same cells in the same batches: a deep base's float32 sums depend on the batch's size.
        same = np.allclose(restored.predict(x_test[:50], verbose=0), result.model.predict(x_test[:50], verbose=0),
                           rtol=1e-6, atol=1e-6)
        print(f"model ({args.base} base and classifier) saved to {args.save}, its input the cells through "
              f"{args.base}'s preprocess_input (load_model restores it: {'yes' if same else 'NO'})")
    print(f"total {time.perf_counter() - started:.1f} s")
    return {"accuracy": accuracy, "y_test": y_test, "y_pred": y_pred, "x_test": x_test, "model": result.model,
            "transfer": result, "train_seconds": train_seconds, "n_train": len(train_idx), "n_test": len(test_idx),
            "n_fit": len(fit_idx), "n_validation": len(val_idx), "source": source}


if __name__ == "__main__":
    main(sys.argv[1:])
