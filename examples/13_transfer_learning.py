"""Lecture: transfer learning on the malaria cells.  A ResNet50 pre-trained on ImageNet, its
classifier removed and its layers frozen, turns each cell into 2,048 features; a new classifier
learns from them (features extracted once with predict, as Keras's guide does).  Then the top
of the base is unfrozen and the whole model fine-tuned with a low learning rate (BatchNormalization
kept in inference mode).  Against it: the lecture's CNN trained from scratch on the same cells.

    python examples/13_transfer_learning.py [--weights auto|imagenet|none|PATH] [--limit 600]
        [--image-size 64] [--epochs 20] [--fine-tune-epochs 1] [--out out/13_transfer_learning]

The cells are the NIH images when found (as examples/08_malaria_cnn.py finds them), else
synthetic ones; the split keeps each slide on one side.  The base's weights: Keras's ImageNet
file when it is in Keras's cache (``auto``, the default) or asked for (``imagenet``), a Keras
weights file (``PATH``), else random (``none``), and the script says which: a random base shows
the procedure, not the gain of pre-training.
"""
import argparse
import os
import time

import numpy as np

import fastconv.keras as keras
from fastconv.datasets import malaria
from fastconv.examples.malaria import build_model
from fastconv.keras.applications.resnet50 import ResNet50, preprocess_input
from fastconv.keras.file_utils import keras_home
from fastconv.keras.utils import set_random_seed

NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
UNFROZEN_LAYERS = 12   # the last block of conv5 (its third bottleneck), as the guide's "top of the base"


def resolve_weights(choice):
    cached = os.path.join(keras_home(), "models", NOTOP_FILE)
    if choice == "auto":
        if not os.path.exists(cached):
            return None, f"RANDOM base: Keras's {NOTOP_FILE} is not in {os.path.dirname(cached)}"
        choice = "imagenet"
    if choice == "none":
        return None, "RANDOM base (--weights none)"
    if choice == "imagenet":
        return "imagenet", f"ImageNet base (Keras's {NOTOP_FILE})"
    return choice, f"base weights from {choice}"


def _accuracy(probabilities, labels):
    return float(np.mean((probabilities.ravel() > 0.5) == labels))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the new classifier and of the CNN")
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("out", "13_transfer_learning"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(args.seed)
    size = (args.image_size, args.image_size)

    data, data_source = malaria.load_or_synthetic(args.data_dir, image_size=size, limit=args.limit, seed=args.seed)
    train, test = malaria.split_by_slide(data.names, test_size=0.2, seed=args.seed, labels=data.labels)
    images, labels = data.images, data.labels.astype(np.float32)
    print(f"cells: {data_source}; {len(train)} for training, {len(test)} for testing (split by slide)")
    weights, base_source = resolve_weights(args.weights)
    print(base_source)

    # 1. Frozen base: features once, then a new classifier on them.
    base = ResNet50(include_top=False, weights=weights, input_shape=(*size, 3), pooling="avg")
    base.trainable = False
    x = preprocess_input(images * 255.0)
    t0 = time.perf_counter()
    features = base.predict(x, batch_size=args.batch, verbose=0)
    extract_seconds = time.perf_counter() - t0
    head = keras.Sequential([keras.Input((features.shape[1],)), keras.layers.Dropout(0.2),
                             keras.layers.Dense(1, activation="sigmoid")])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    head.fit(features[train], labels[train], batch_size=args.batch, epochs=args.epochs, verbose=0)
    frozen_accuracy = _accuracy(head.predict(features[test], verbose=0), labels[test])
    print(f"frozen base + new classifier: test accuracy {frozen_accuracy:.3f} "
          f"(features of {len(x)} cells in {extract_seconds:.1f} s)")

    # 2. Fine-tuning: the base's last layers unfrozen, the new classifier on top, a low learning rate.
    inputs = keras.Input((*size, 3))
    outputs = head(base(inputs, training=False))
    model = keras.Model(inputs, outputs)
    base.trainable = True
    for layer in base.layers[:-UNFROZEN_LAYERS]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy", metrics=["accuracy"])
    lines = []
    model.summary(print_fn=lines.append)
    summary = "\n".join(lines)
    print("\n".join(summary.splitlines()[-4:]))  # the counts: Total, Trainable, Non-trainable
    t0 = time.perf_counter()
    model.fit(x[train], labels[train], batch_size=args.batch, epochs=args.fine_tune_epochs, verbose=0)
    fine_tune_seconds = time.perf_counter() - t0
    fine_tuned_accuracy = _accuracy(model.predict(x[test], batch_size=args.batch, verbose=0), labels[test])
    print(f"fine-tuned ({UNFROZEN_LAYERS} layers unfrozen, {args.fine_tune_epochs} epoch(s), "
          f"{fine_tune_seconds:.1f} s): test accuracy {fine_tuned_accuracy:.3f}")

    # 3. The lecture's CNN from scratch.
    cnn = build_model(size)
    t0 = time.perf_counter()
    cnn.fit(images[train], labels[train], batch_size=args.batch, epochs=args.epochs, verbose=0)
    cnn_seconds = time.perf_counter() - t0
    cnn_accuracy = _accuracy(cnn.predict(images[test], verbose=0), labels[test])
    print(f"lecture CNN from scratch ({cnn.count_params():,} parameters, {cnn_seconds:.1f} s): "
          f"test accuracy {cnn_accuracy:.3f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    names = ["frozen base\n+ classifier", "fine-tuned", "CNN from\nscratch"]
    accuracies = [frozen_accuracy, fine_tuned_accuracy, cnn_accuracy]
    ax.bar(names, accuracies, color=["tab:blue", "tab:green", "tab:gray"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.set_title(base_source if len(base_source) < 50 else base_source[:47] + "...", fontsize=8)
    fig.savefig(os.path.join(args.out, "accuracy.png"), dpi=100, bbox_inches="tight")
    plt.close(fig)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"data_source": data_source, "base_source": base_source, "weights": weights, "n_train": len(train),
            "n_test": len(test), "features": features, "frozen_accuracy": frozen_accuracy,
            "fine_tuned_accuracy": fine_tuned_accuracy, "cnn_accuracy": cnn_accuracy, "model": model,
            "base": base, "head": head, "trainable": trainable, "non_trainable": non_trainable,
            "summary": summary}


if __name__ == "__main__":
    main()
