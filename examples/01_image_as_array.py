"""Lecture: an image is an array. Its shape, its dtype, its three colour channels and their histograms.

    python examples/01_image_as_array.py [--image PHOTO] [--out out/01_image_as_array]

Without --image it uses a photograph that ships with scikit-image (no download).
"""
import argparse
import os

from fastconv import plot

from lecture import load_photo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", help="an RGB photograph (default: scikit-image's rocket)")
    parser.add_argument("--out", default=os.path.join("out", "01_image_as_array"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    img = load_photo(args.image)
    print("shape:", img.shape, "dtype:", img.dtype, "min:", img.min(), "max:", img.max())
    red, green, blue = img[:, :, 0], img[:, :, 1], img[:, :, 2]
    means = [float(c.mean()) for c in (red, green, blue)]
    print("mean of the red, green, blue channels:", [round(m, 1) for m in means])
    print("top-left 3x3 pixels of the red channel:\n", red[:3, :3])
    plot.image_channels(img, os.path.join(args.out, "channels.png"))
    plot.channel_histograms(img, os.path.join(args.out, "histograms.png"))
    print("figures saved in", args.out)
    return {"shape": img.shape, "dtype": str(img.dtype), "channel_means": means, "image": img}


if __name__ == "__main__":
    main()
