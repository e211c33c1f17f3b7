"""Lecture: stacked feature maps. Several filters on one image give one output channel each;
a second layer convolves all of them at once.

    python examples/05_feature_maps.py [--image PHOTO] [--out out/05_feature_maps]
"""
import argparse
import os

import numpy as np

import fastconv as fc
from fastconv import plot

from lecture import EDGE_FILTERS as FILTERS, edge_maps, grey, load_photo

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an RGB photograph (default: scikit-image's rocket)")
    parser.add_argument("--out", default=os.path.join("out", "05_feature_maps"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    photo = grey(load_photo(args.image))[None, :, :, None]
    maps = edge_maps(photo)             # FILTERS (3, 3, 1, 4), SAME, ReLU: (1, H, W, 4)
    print("input", photo.shape, "-> first layer", maps.shape)
    # A second layer sees all four maps: each of its filters is (3, 3, 4) and sums over them.
    second = np.random.default_rng(0).standard_normal((3, 3, 4, 8)).astype(np.float32) / 6
    deeper = fc.conv2d(maps, second, 2, "SAME", activation="relu")     # (1, H/2, W/2, 8)
    print("first layer -> second layer (8 filters, stride 2)", deeper.shape)
    plot.filters(FILTERS, os.path.join(args.out, "filters.png"), annotate=True)
    plot.feature_maps(maps, os.path.join(args.out, "feature_maps.png"), ncols=4)
    plot.feature_maps(deeper, os.path.join(args.out, "second_layer_maps.png"), ncols=4)
    return {"maps": maps, "deeper": deeper, "photo": photo}


if __name__ == "__main__":
    main()
