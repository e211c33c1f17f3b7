"""Lecture: max and average pooling. A 2x2 window with stride 2 halves each side of a feature map,
keeping its largest (max) or mean (average) value.

    python examples/06_pooling.py [--image PHOTO] [--out out/06_pooling]
"""
import argparse
import os

import numpy as np

import fastconv as fc
from fastconv import plot

from lecture import edge_maps, grey, load_photo

TABLE = np.array([[1, 1, 2, 4],
                  [5, 6, 7, 8],
                  [3, 2, 1, 0],
                  [1, 2, 3, 4]], dtype=np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an RGB photograph (default: scikit-image's rocket)")
    parser.add_argument("--out", default=os.path.join("out", "06_pooling"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    x = TABLE[None, :, :, None]
    max_table = fc.max_pool2d(x, ksize=2, strides=2, padding="VALID")[0, :, :, 0]
    avg_table = fc.avg_pool2d(x, ksize=2, strides=2, padding="VALID")[0, :, :, 0]
    print(f"input\n{TABLE}\nmax pooling 2x2/2\n{max_table}\naverage pooling 2x2/2\n{avg_table}")

    maps = edge_maps(grey(load_photo(args.image))[None, :, :, None])   # the maps of example 05
    pooled_max = fc.max_pool2d(maps, 2, 2, "VALID")
    pooled_avg = fc.avg_pool2d(maps, 2, 2, "VALID")
    print("feature maps", maps.shape, "-> pooled", pooled_max.shape)
    plot.image_grid([maps[0, :, :, 0], pooled_max[0, :, :, 0], pooled_avg[0, :, :, 0]],
                    os.path.join(args.out, "pooling.png"), titles=["feature map", "max pool", "average pool"],
                    ncols=3)
    return {"max_table": max_table, "avg_table": avg_table, "maps": maps, "pooled_max": pooled_max,
            "pooled_avg": pooled_avg}


if __name__ == "__main__":
    main()
