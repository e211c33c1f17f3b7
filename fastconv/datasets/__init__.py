"""Data sets of the lecture: :mod:`fastconv.datasets.malaria` (the NIH malaria cell images, a
slide-grouped split, and synthetic stand-ins).  Importing needs NumPy only; reading image files
needs Pillow (the ``examples`` extra)."""
from fastconv.datasets import malaria

__all__ = ["malaria"]
