"""Lecture: strides. The filter jumps by s pixels; SAME padding gives ceil(n / s) outputs per axis.

    python examples/04_strides.py [--out out/04_strides]
"""
import argparse
import importlib.util
import os

import numpy as np

from fastconv import plot

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("by_hand", os.path.join(_HERE, "02_convolution_by_hand.py"))
_by_hand = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_by_hand)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("out", "04_strides"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    results = {}
    for strides, padding in ((1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")):
        z = _by_hand.convolve(_by_hand.SMILEY, _by_hand.VERTICAL, strides=strides, padding=padding).astype(int)
        results[(strides, padding)] = z
        print(f"\nstrides={strides}, padding={padding}: output {z.shape}\n{z}")
    plot.image_grid(list(results.values()), os.path.join(args.out, "strides.png"),
                    titles=[f"s={s} {p}" for s, p in results], ncols=4)
    return {"outputs": results}


if __name__ == "__main__":
    main()
