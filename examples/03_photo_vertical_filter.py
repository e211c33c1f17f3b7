"""Lecture: a real photograph convolved with the vertical-line filter.

    python examples/03_photo_vertical_filter.py [--image PHOTO] [--out out/03_photo_vertical_filter]

The photo is turned into one grey channel in [0, 1] and convolved (SAME) with the 3x3 vertical
line: each output pixel is the sum of its column of three. A vertical-edge filter
[[-1, 0, 1]] x 3 rows shows what "detecting" an orientation means. The convolution is timed
against the same call on the slow NumPy reference.
"""
import argparse
import os
import time

import numpy as np

import fastconv as fc
from fastconv import plot, reference

from lecture import grey, load_photo

VERTICAL_LINE = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
VERTICAL_EDGE = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an RGB photograph (default: scikit-image's rocket)")
    parser.add_argument("--out", default=os.path.join("out", "03_photo_vertical_filter"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    photo = grey(load_photo(args.image))
    x = photo[None, :, :, None]
    filters = np.stack([VERTICAL_LINE, VERTICAL_EDGE], axis=-1)[:, :, None, :]   # (3, 3, 1, 2)
    t0 = time.perf_counter()
    maps = fc.conv2d(x, filters, strides=1, padding="SAME")
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = reference.conv2d(x, filters, (1, 1), "SAME")
    t_slow = time.perf_counter() - t0
    print(f"photo {photo.shape}, feature maps {maps.shape}: fastconv {t_fast * 1e3:.1f} ms, "
          f"NumPy reference {t_slow * 1e3:.1f} ms")
    print("largest |difference| from the reference:", float(np.abs(maps - slow).max()))
    plot.image_grid([photo, maps[0, :, :, 0], np.abs(maps[0, :, :, 1])], os.path.join(args.out, "photo_filtered.png"),
                    titles=["grey photo", "* vertical line", "|* vertical edge|"], ncols=3)
    return {"photo": photo, "maps": maps, "reference": slow}


if __name__ == "__main__":
    main()
