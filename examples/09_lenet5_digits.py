"""Lecture: LeNet-5 on handwritten digits, with the lecture's Keras code on fastconv.keras.

    python examples/09_lenet5_digits.py [--epochs 30] [--mnist mnist.npz] [--out out/09_lenet5_digits]

Offline by default: scikit-learn's 1,797 bundled 8x8 digits, upscaled to 32x32 (bilinear, with
fastconv's warp kernel), 20% held out for the test. With --mnist, an MNIST file in Keras's .npz
layout (x_train, y_train, x_test, y_test; 28x28 padded to 32x32).
"""
import argparse
import os
import time

import numpy as np

from fastconv import plot
from fastconv.image import affine_transform
from fastconv.keras import Sequential
from fastconv.keras.layers import AveragePooling2D, Conv2D, Dense, Flatten
from fastconv.keras.utils import set_random_seed, to_categorical


def upscale(images, size):
    """(N, h, w) -> (N, size, size, 1) by bilinear interpolation, pixel centres aligned."""
    n, h, w = images.shape
    scale_r, scale_c = h / size, w / size
    # output (i, j) reads input ((i + 0.5) * h / size - 0.5, (j + 0.5) * w / size - 0.5)
    matrix = np.array([[scale_r, 0, 0.5 * scale_r - 0.5], [0, scale_c, 0.5 * scale_c - 0.5]])
    return affine_transform(images[..., None].astype(np.float32), matrix, order=1, fill_mode="nearest",
                            output_shape=(size, size))


def load_digits(seed, mnist=None):
    """(x_train, y_train, x_test, y_test) as float32 images in [0, 1] of 32x32x1 and int labels."""
    if mnist:
        with np.load(mnist, allow_pickle=False) as f:
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        pad = ((0, 0), (2, 2), (2, 2))
        return (np.pad(x_train, pad)[..., None] / np.float32(255), y_train,
                np.pad(x_test, pad)[..., None] / np.float32(255), y_test)
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = digits.images / np.float32(16)                 # 0..16 grey levels -> [0, 1]
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = len(images) // 5
    test, train = order[:n_test], order[n_test:]
    return upscale(images[train], 32), digits.target[train], upscale(images[test], 32), digits.target[test]


def lenet5():
    """The lecture's LeNet-5."""
    model = Sequential()
    model.add(Conv2D(6, (3, 3), activation="relu", input_shape=(32, 32, 1)))
    model.add(AveragePooling2D())
    model.add(Conv2D(16, (3, 3), activation="relu"))
    model.add(AveragePooling2D())
    model.add(Flatten())
    model.add(Dense(120, activation="relu"))
    model.add(Dense(84, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loss", choices=("categorical_crossentropy", "sparse_categorical_crossentropy"),
                        default="categorical_crossentropy")
    parser.add_argument("--mnist", help="an MNIST .npz file (Keras's layout) instead of scikit-learn's digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("out", "09_lenet5_digits"))
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(args.seed)

    x_train, y_train, x_test, y_test = load_digits(args.seed, args.mnist)
    print(f"{len(x_train)} training and {len(x_test)} test digits of {x_train.shape[1:]}")
    model = lenet5()
    model.compile(loss=args.loss, optimizer="adam", metrics=["accuracy"])
    model.summary()
    targets = to_categorical(y_train, 10) if args.loss == "categorical_crossentropy" else y_train
    t0 = time.perf_counter()
    history = model.fit(x_train, targets, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
                        verbose=args.verbose)
    seconds = time.perf_counter() - t0
    y_pred = np.argmax(model.predict(x_test, verbose=0), axis=1)
    accuracy = float(np.mean(y_pred == y_test))
    print(f"test accuracy: {accuracy:.4f} ({int(np.sum(y_pred == y_test))}/{len(y_test)}), "
          f"training {seconds:.1f} s")
    plot.image_grid(x_test[:20], os.path.join(args.out, "digits.png"),
                    titles=[f"{p} ({t})" for p, t in zip(y_pred[:20], y_test[:20])], ncols=10)
    plot.history(history, os.path.join(args.out, "history.png"))
    plot.confusion_matrix(y_test, y_pred, os.path.join(args.out, "confusion_matrix.png"))
    return {"accuracy": accuracy, "seconds": seconds, "history": history.history, "model": model}


if __name__ == "__main__":
    main()
