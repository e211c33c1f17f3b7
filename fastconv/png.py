"""fastconv's own decoder of 8-bit gray, RGB and RGBA PNG files (most image folders, the malaria
cells): the chunks parsed and the rows unfiltered by the kernels of ``fastconv/_imageload.pyx``,
the data inflated by zlib, the checksums checked as libpng does; both release the GIL, so files
decode on all cores.  Used by ``fastconv.keras``'s image datasets and by ImageDataGenerator's
``flow_from_directory``; other files go to Pillow there.
"""
import zlib

import numpy as np

from fastconv import _imageload


def gray_from_rgb_png(rgb):
    """libpng's RGB -> gray (png_set_rgb_to_gray with 0.299, 0.587 in 15-bit fixed point), which
    TensorFlow's decode_png(channels=1) calls; Pillow's "L" rounds otherwise."""
    r, g, b = (rgb[..., k].astype(np.uint32) for k in range(3))
    return ((9797 * r + 19234 * g + 3737 * b) >> 15).astype(np.uint8)[..., None]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The PNGs fastconv decodes itself (8-bit gray, RGB, RGBA, not interlaced): colour type -> bytes
# per pixel.  Other PNGs (palettes, gray + alpha, other depths, interlaced, transparency chunks)
# go to Pillow.
_PNG_PIXEL_BYTES = {0: 1, 2: 3, 6: 4}


def read_png(data):
    """The pixels of a PNG file's bytes as uint8 (height, width, 1, 3 or 4), or None when the
    file is not one of the kinds fastconv decodes itself.  The critical chunks' checksums are
    verified, as libpng does; a broken file raises ValueError.  Only the inflation (zlib) runs
    outside the kernels of fastconv/_imageload.pyx, and it too releases the GIL."""
    width, height, depth, colour, interlace, transparency, idat = _imageload.png_chunks(data)
    if depth != 8 or colour not in _PNG_PIXEL_BYTES or interlace or transparency:
        return None
    bpp = _PNG_PIXEL_BYTES[colour]
    view = memoryview(data)
    raw = zlib.decompress(view[idat[0][0]:idat[0][1]] if len(idat) == 1 else b"".join(view[a:b] for a, b in idat))
    if len(raw) != height * (1 + width * bpp):
        raise ValueError(f"the image data holds {len(raw)} bytes, not the {height * (1 + width * bpp)} of "
                         f"{width}x{height} pixels")
    out = np.empty((height, width, bpp), dtype=np.uint8)
    _imageload.png_unfilter(np.frombuffer(raw, np.uint8).reshape(height, 1 + width * bpp),
                            out.reshape(height, width * bpp), bpp)
    return out


def png_channels(pixels, channels):
    """8-bit gray / RGB / RGBA pixels as ``channels`` channels, as libpng's transformations
    under TensorFlow's decode_png: alpha stripped or added (255), gray replicated, RGB to gray."""
    have = pixels.shape[2]
    if have == channels:
        return pixels
    if channels == 1:
        return gray_from_rgb_png(pixels) if have >= 3 else pixels[..., :1]
    colour = pixels[..., :3] if have >= 3 else np.repeat(pixels, 3, axis=2)
    if channels == 3:
        return colour
    return np.concatenate([colour, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
