"""Lecture: transfer learning on the malaria cells.  A ResNet50 pre-trained on ImageNet, its
classifier removed and its layers frozen, turns each cell into 2,048 features; a new classifier
learns from them (features extracted once with predict, as Keras's guide does).  Then the top
of the base is unfrozen and the whole model fine-tuned with a low learning rate (BatchNormalization
kept in inference mode).  Against it: the lecture's CNN trained from scratch on the same cells.

    python examples/13_transfer_learning.py [--weights auto|imagenet|none|PATH] [--limit 600]
        [--image-size 64] [--epochs 20] [--fine-tune-epochs 1] [--out out/13_transfer_learning]
        [--base resnet50|mobilenet_v2|vgg16|densenet121|efficientnetb0]

The cells are the NIH images when found (as examples/08_malaria_cnn.py finds them), else
synthetic ones; the split keeps each slide on one side.  The base's weights: Keras's ImageNet
file when it is in Keras's cache (``auto``, the default) or asked for (``imagenet``), a Keras
weights file (``PATH``), else random (``none``), and the script says which: a random base shows
the procedure, not the gain of pre-training.  The procedure is fastconv.examples.transfer's,
the one the main job runs with ``python -m fastconv.examples.malaria --base resnet50``.
"""
import argparse
import os
import time

from fastconv.datasets import malaria
from fastconv.examples import transfer
from fastconv.examples.malaria import build_model
from fastconv.keras.utils import set_random_seed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="resnet50", choices=sorted(transfer.BASES))
    parser.add_argument("--weights", default="auto", help="auto, imagenet, none or the path of a Keras weights file")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the new classifier and of the CNN")
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("out", "13_transfer_learning"))
    args = parser.parse_args(argv)
    transfer.check_image_size(transfer.get_spec(args.base), args.image_size)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(args.seed)
    size = (args.image_size, args.image_size)

    data, data_source = malaria.load_or_synthetic(args.data_dir, image_size=size, limit=args.limit, seed=args.seed)
    train, test = malaria.split_by_slide(data.names, test_size=0.2, seed=args.seed, labels=data.labels)
    images, labels = data.images, data.labels.astype("float32")
    print(f"cells: {data_source}; {len(train)} for training, {len(test)} for testing (split by slide)")

    # 1-2. Frozen base, features once, a new classifier on them; then the top of the base fine-tuned.
    result = transfer.transfer_learn(args.base, images, labels, train, test, base_weights=args.weights,
                                     epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs,
                                     batch_size=args.batch)
    print("\n".join(result.summary.splitlines()[-4:]))  # the counts: Total, Trainable, Non-trainable

    # 3. The lecture's CNN from scratch.
    cnn = build_model(size)
    t0 = time.perf_counter()
    cnn.fit(images[train], labels[train], batch_size=args.batch, epochs=args.epochs, verbose=0)
    cnn_seconds = time.perf_counter() - t0
    cnn_accuracy = transfer.accuracy(cnn.predict(images[test], verbose=0), labels[test])
    print(f"lecture CNN from scratch ({cnn.count_params():,} parameters, {cnn_seconds:.1f} s): "
          f"test accuracy {cnn_accuracy:.3f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    names = ["frozen base\n+ classifier", "fine-tuned", "CNN from\nscratch"]
    accuracies = [result.frozen_accuracy, result.accuracy, cnn_accuracy]
    ax.bar(names, accuracies, color=["tab:blue", "tab:green", "tab:gray"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    source = result.weights_source
    ax.set_title(source if len(source) < 50 else source[:47] + "...", fontsize=8)
    fig.savefig(os.path.join(args.out, "accuracy.png"), dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"data_source": data_source, "base_source": result.weights_source, "weights": result.weights,
            "n_train": len(train), "n_test": len(test), "features": result.features,
            "frozen_accuracy": result.frozen_accuracy, "fine_tuned_accuracy": result.accuracy,
            "cnn_accuracy": cnn_accuracy, "model": result.model, "base": result.base, "head": result.head,
            "unfrozen_layers": result.unfrozen_layers, "trainable": result.trainable_params,
            "non_trainable": result.non_trainable_params, "summary": result.summary}


if __name__ == "__main__":
    main()
