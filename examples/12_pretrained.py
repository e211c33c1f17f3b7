"""Lecture: a network pre-trained on ImageNet classifies a photograph (the lecture's cell):

    model = ResNet50(weights="imagenet")
    x = preprocess_input(image[None])
    decode_predictions(model.predict(x), top=5)

    python examples/12_pretrained.py [--weights auto|imagenet|none|PATH] [--out out/12_pretrained]

The photograph is scikit-image's cat (skimage.data.chelsea(), offline).  ``--weights imagenet``
reads Keras's ResNet50 file from Keras's cache (~/.keras/models, or $KERAS_HOME), downloading it
when there is network; ``auto`` (the default) uses that file when it is already in the cache, else
none; ``PATH`` is a Keras weights file.  Without weights the script says so and shows the
architecture and the timing only: random weights predict nothing worth printing.
"""
import argparse
import os
import time

import numpy as np

from fastconv.keras.applications.resnet50 import ResNet50, decode_predictions, preprocess_input
from fastconv.keras.file_utils import keras_home
from fastconv.keras.utils import set_random_seed

IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"


def photograph(size=224):
    """scikit-image's cat, centre-cropped to a square and resized to size x size, pixels 0..255."""
    from skimage import data, transform
    image = data.chelsea()
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top:top + side, left:left + side]
    return transform.resize(square, (size, size), preserve_range=True, anti_aliasing=True).astype(np.float32)


def resolve_weights(choice):
    """(weights argument for ResNet50, sentence saying which)."""
    cached = os.path.join(keras_home(), "models", IMAGENET_FILE)
    if choice == "auto":
        choice = "imagenet" if os.path.exists(cached) else "none"
        if choice == "none":
            return None, f"no weights: Keras's {IMAGENET_FILE} is not in {os.path.dirname(cached)} (random weights)"
    if choice == "none":
        return None, "no weights asked for (random weights)"
    if choice == "imagenet":
        return "imagenet", f"ImageNet weights (Keras's {IMAGENET_FILE}, cache {os.path.dirname(cached)})"
    return choice, f"weights from {choice}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="auto", help="auto, imagenet, none, or a Keras weights file")
    parser.add_argument("--batch", type=int, default=8, help="images in the timed batch")
    parser.add_argument("--out", default=os.path.join("out", "12_pretrained"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    set_random_seed(0)

    weights, source = resolve_weights(args.weights)
    print(source)
    model = ResNet50(weights=weights)
    print(f"{model.name}: {len(model.layers)} layers, {model.count_params():,} parameters")
    image = photograph()
    x = preprocess_input(image[None])
    t0 = time.perf_counter()
    probabilities = model.predict(x, verbose=0)
    first = time.perf_counter() - t0
    batch = np.repeat(x, args.batch, axis=0)
    t0 = time.perf_counter()
    model.predict(batch, batch_size=args.batch, verbose=0)
    seconds = time.perf_counter() - t0
    print(f"predict: first image {first * 1e3:.0f} ms; a batch of {args.batch}: {seconds * 1e3:.0f} ms "
          f"({args.batch / seconds:.1f} images/s)")
    top5 = None
    if weights is None:
        print("no pre-trained weights: no predictions shown (pass --weights imagenet or a file)")
    else:
        top5 = decode_predictions(probabilities, top=5)[0]
        for rank, (wnid, label, score) in enumerate(top5, start=1):
            print(f"{rank}. {label} ({wnid}): {score:.4f}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image.astype(np.uint8))
    ax.set_axis_off()
    ax.set_title(top5[0][1] if top5 else "(no weights: no prediction)")
    fig.savefig(os.path.join(args.out, "photograph.png"), dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"model": model, "weights": weights, "source": source, "probabilities": probabilities, "top5": top5,
            "images_per_second": args.batch / seconds}


if __name__ == "__main__":
    main()
