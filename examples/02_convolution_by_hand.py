"""Lecture: convolution by hand. A 5x5 smiley convolved with a vertical and a horizontal line.

    python examples/02_convolution_by_hand.py [--out out/02_convolution_by_hand]

Each output pixel is the sum of the 3x3 neighbourhood times the filter (SAME padding: zeros
around the border). The script computes one pixel by hand, then all of them with fastconv.conv2d,
and prints the lecture's tables.
"""
import argparse
import os

import numpy as np

from fastconv import plot

from lecture import SMILEY, VERTICAL, convolve

BOTTOM_ROW = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1]])


def by_hand(image, kernel, i, j):
    """Output pixel (i, j) of a SAME 3x3 convolution, written out: pad, cut the window, multiply, sum."""
    padded = np.pad(image, 1)
    window = padded[i:i + 3, j:j + 3]
    return int((window * kernel).sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("out", "02_convolution_by_hand"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    print("pixel (2, 0) with the vertical line, by hand:", by_hand(SMILEY, VERTICAL, 2, 0))
    tables = {}
    for name, kernel in (("vertical", VERTICAL), ("bottom_row", BOTTOM_ROW)):
        z = convolve(SMILEY, kernel)
        tables[name] = z.astype(int)
        print(f"\nsmiley * {name} line (SAME):\n{tables[name]}")
    plot.image_grid([SMILEY, VERTICAL, tables["vertical"], BOTTOM_ROW, tables["bottom_row"]],
                    os.path.join(args.out, "smiley.png"),
                    titles=["smiley", "vertical line", "result", "bottom row", "result"], ncols=5)
    return {"tables": tables, "by_hand": by_hand(SMILEY, VERTICAL, 2, 0)}


if __name__ == "__main__":
    main()
