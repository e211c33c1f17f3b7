"""What several of the lecture's scripts share: the smiley and the vertical line of the
convolution tables, the photograph, and the edge filters of the feature maps.

The scripts import it as ``lecture`` (Python puts the running script's folder, examples/, on the path).
"""
import numpy as np

import fastconv as fc

SMILEY = np.array([[0, 1, 0, 1, 0],
                   [0, 1, 0, 1, 0],
                   [0, 0, 0, 0, 0],
                   [1, 0, 0, 0, 1],
                   [0, 1, 1, 1, 0]])
VERTICAL = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]])

# Four 3x3 edge and line detectors, stacked along the last axis: HWIO filters (3, 3, 1, 4).
EDGE_FILTERS = np.stack([
    [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],     # vertical edge
    [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],     # horizontal edge
    [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]],     # diagonal edge
    [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],    # Laplacian: spots and outlines
], axis=-1).astype(np.float32)[:, :, None, :]


def convolve(image, kernel, strides=1, padding="SAME"):
    """A 2-D image and a 2-D kernel through conv2d's 4-D layout: [batch, H, W, channels] and
    [kh, kw, in, out]."""
    return fc.conv2d(image[None, :, :, None], kernel[:, :, None, None], strides=strides, padding=padding)[0, :, :, 0]


def load_photo(path=None):
    """An RGB photograph as a (H, W, 3) uint8 array: the file given, or scikit-image's rocket."""
    if path:
        from fastconv.preprocessing.image import img_to_array, load_img

        return img_to_array(load_img(path), dtype="uint8")
    from skimage import data

    return data.rocket()


def grey(img):
    """ITU-R 601 luma of an RGB uint8 image, as float32 in [0, 1]."""
    return (img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0


def edge_maps(images):
    """A first layer of feature maps: (N, H, W, 1) grey images through EDGE_FILTERS (SAME) and a
    ReLU, (N, H, W, 4)."""
    return fc.conv2d(images, EDGE_FILTERS, 1, "SAME", activation="relu")
