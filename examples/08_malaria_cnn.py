"""Lecture: a CNN that detects malaria in blood-cell images, end to end.

    python examples/08_malaria_cnn.py [--data-dir DIR] [--limit 2500] [--epochs 6] [--out out/08_malaria_cnn]

The lecture's run in under two minutes: 2,500 cells (as in the lecture) of the real NIH images
when they are found (--data-dir, $FASTCONV_MALARIA_DIR, or ../shared/malaria next to the project),
synthetic cells otherwise; split by slide; the lecture's model and fit; accuracy on unseen slides,
the confusion matrix, the filters and the feature maps of one cell. The full training job is
``python -m fastconv.examples.malaria`` (README).
"""
import argparse
import os

from fastconv.datasets import malaria
from fastconv.examples import malaria as job


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="the NIH cell images (default: found automatically)")
    parser.add_argument("--limit", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--out", default=os.path.join("out", "08_malaria_cnn"))
    args, rest = parser.parse_known_args(argv)
    data_dir = args.data_dir or malaria.default_data_dir()
    job_args = ["--limit", str(args.limit), "--epochs", str(args.epochs), "--image-size", str(args.image_size),
                "--out", args.out, "--save", os.path.join(args.out, "model.keras"), "--verbose", "2"]
    if data_dir is not None:
        job_args += ["--data-dir", str(data_dir)]
    return job.main(job_args + rest)


if __name__ == "__main__":
    main()
