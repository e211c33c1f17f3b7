"""Lecture: max and average pooling. A 2x2 window with stride 2 halves each side of a feature map,
keeping its largest (max) or mean (average) value.

    python examples/06_pooling.py [--image PHOTO] [--out out/06_pooling]
"""
import argparse
import importlib.util
import os

import numpy as np

import fastconv as fc
from fastconv import plot

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("feature_maps", os.path.join(_HERE, "05_feature_maps.py"))
_feature_maps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_feature_maps)

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

    maps = _feature_maps.main(["--out", args.out] + (["--image", args.image] if args.image else []))["maps"]
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
