"""Lecture: data augmentation. One image becomes ten: rotated, shifted, sheared, zoomed, flipped.

    python examples/07_augmentation.py [--image PHOTO] [--out out/07_augmentation]

The generator has the options of Keras's ImageDataGenerator and gives the same image as Keras for
the same random draws; ``flow`` feeds such batches to ``model.fit``.
"""
import argparse
import os

import numpy as np

from fastconv import plot
from fastconv.preprocessing.image import ImageDataGenerator

from lecture import load_photo

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an RGB photograph (default: scikit-image's rocket)")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("out", "07_augmentation"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    img = load_photo(args.image).astype(np.float32) / 255.0
    datagen = ImageDataGenerator(rotation_range=30, width_shift_range=0.2, height_shift_range=0.2,
                                 shear_range=20, zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
    batches = datagen.flow(img[None], batch_size=1, seed=args.seed)
    augmented = np.concatenate([next(batches) for _ in range(args.count)])
    print(f"one image {img.shape} -> {augmented.shape[0]} augmented images {augmented.shape[1:]}")
    plot.image_grid([img] + list(augmented), os.path.join(args.out, "augmented.png"),
                    titles=["original"] + [str(i + 1) for i in range(args.count)], ncols=6)
    return {"image": img, "augmented": augmented}


if __name__ == "__main__":
    main()
