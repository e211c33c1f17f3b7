"""Lecture: an AlexNet-style network (Krizhevsky et al., 2012) in Keras's code on fastconv.keras:
its summary (layer shapes and parameter counts, as Keras prints them) and one forward pass.

    python examples/10_alexnet_summary.py [--out out/10_alexnet_summary]

The weights are random (this is about the architecture: 62 million parameters, most of them in
the dense layers; the convolutions hold the computation).
"""
import argparse
import os
import time

import numpy as np

import fastconv.keras
from fastconv.keras.utils import plot_model, set_random_seed


def alexnet(input_shape=(227, 227, 3), classes=1000, keras=fastconv.keras):
    """The network, written with the Keras module given: fastconv.keras, or tensorflow.keras to
    compare (the code is the same; only the module differs)."""
    Sequential = keras.Sequential
    Conv2D, MaxPooling2D, Dense = keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.Dense
    Dropout, Flatten = keras.layers.Dropout, keras.layers.Flatten
    model = Sequential()
    model.add(Conv2D(96, (11, 11), strides=(4, 4), activation="relu", input_shape=input_shape))
    model.add(MaxPooling2D(pool_size=(3, 3), strides=(2, 2)))
    model.add(Conv2D(256, (5, 5), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(3, 3), strides=(2, 2)))
    model.add(Conv2D(384, (3, 3), padding="same", activation="relu"))
    model.add(Conv2D(384, (3, 3), padding="same", activation="relu"))
    model.add(Conv2D(256, (3, 3), padding="same", activation="relu"))
    model.add(MaxPooling2D(pool_size=(3, 3), strides=(2, 2)))
    model.add(Flatten())
    model.add(Dense(4096, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(4096, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(classes, activation="softmax"))
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4, help="images in the timed forward pass")
    parser.add_argument("--out", default=os.path.join("out", "10_alexnet_summary"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(0)

    model = alexnet()
    lines = []
    model.summary(print_fn=lines.append)
    print("\n".join(lines))
    plot_model(model, os.path.join(args.out, "alexnet.png"), show_shapes=True)
    x = np.random.default_rng(0).random((args.batch, 227, 227, 3), dtype=np.float32)
    t0 = time.perf_counter()
    probabilities = model.predict(x, verbose=0)
    seconds = time.perf_counter() - t0
    print(f"forward pass of {args.batch} images: {seconds * 1e3:.0f} ms, output {probabilities.shape}")
    return {"model": model, "summary": "\n".join(lines), "params": model.count_params(),
            "probabilities": probabilities}


if __name__ == "__main__":
    main()
