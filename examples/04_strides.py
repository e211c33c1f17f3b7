"""Lecture: strides. The filter jumps by s pixels; SAME padding gives ceil(n / s) outputs per axis.

    python examples/04_strides.py [--out out/04_strides]
"""
import argparse
import os

from fastconv import plot

from lecture import SMILEY, VERTICAL, convolve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("out", "04_strides"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    results = {}
    for strides, padding in ((1, "SAME"), (2, "SAME"), (1, "VALID"), (2, "VALID")):
        z = convolve(SMILEY, VERTICAL, strides=strides, padding=padding).astype(int)
        results[(strides, padding)] = z
        print(f"\nstrides={strides}, padding={padding}: output {z.shape}\n{z}")
    plot.image_grid(list(results.values()), os.path.join(args.out, "strides.png"),
                    titles=[f"s={s} {p}" for s, p in results], ncols=4)
    return {"outputs": results}


if __name__ == "__main__":
    main()
