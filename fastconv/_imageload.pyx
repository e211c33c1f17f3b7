"""The kernels of image_dataset_from_directory: PNG row unfiltering and a bilinear resize with the
arithmetic of ``tf.image.resize``.

Private module: fastconv/keras/image_dataset.py parses the PNG chunks, inflates the image data
(zlib), computes the resize taps (TensorFlow's ``compute_interpolation_weights`` with half-pixel
centres, in float32), checks the shapes and allocates the outputs; bounds checks are off here
because of that (a FASTCONV_DEBUG=1 build turns them on).  One image is small work: each loop
runs in the calling thread with the GIL released, and image datasets decode and resize several
images at once on their own threads.

PNG unfiltering (PNG specification, section 9): each row of the inflated data starts with its
filter type, and byte x of the row is reconstructed from a (the byte ``bpp`` to the left), b (the
byte above) and c (above and to the left), 0 outside the image::

    0 None: x    1 Sub: x + a    2 Up: x + b    3 Average: x + (a + b) // 2    4 Paeth: x + paeth(a, b, c)

all modulo 256, where paeth picks whichever of a, b, c is closest to a + b - c (ties: a, then b).

Bilinear resize: output pixel (i, j), channel k, is TensorFlow's ``compute_lerp`` in float32::

    top    = src[y_lo[i], x_lo[j], k] + (src[y_lo[i], x_hi[j], k] - src[y_lo[i], x_lo[j], k]) * x_lerp[j]
    bottom = src[y_hi[i], x_lo[j], k] + (src[y_hi[i], x_hi[j], k] - src[y_hi[i], x_lo[j], k]) * x_lerp[j]
    out[i, j, k] = top + (bottom - top) * y_lerp[i]

the same operations in the same order, so the result equals TensorFlow's bit for bit.
"""
cimport cython
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport abs as c_abs


cdef inline int paeth(int a, int b, int c) noexcept nogil:
    # |p - a|, |p - b|, |p - c| for p = a + b - c, written so that the compiler selects without
    # branches (the choice is data dependent and unpredictable).
    cdef int pa = c_abs(b - c), pb = c_abs(a - c), pc = c_abs(a + b - 2 * c)
    cdef int b_or_c = b if pb <= pc else c
    return a if (pa <= pb and pa <= pc) else b_or_c


cdef int unfilter_rows(const unsigned char[:, ::1] filtered, unsigned char[:, ::1] out,
                       const unsigned char *zeros, ptrdiff_t bpp) noexcept nogil:
    """Reconstruct every row (``zeros``: a row of zeros, the row above the first); returns the
    index of the first row with an unknown filter, or -1.  The first ``bpp`` bytes of a row,
    which have no left neighbour, are done apart so that the main loops have no tests."""
    cdef ptrdiff_t r, i, width = out.shape[1]
    cdef const unsigned char *row
    cdef unsigned char *dst
    cdef const unsigned char *above
    cdef int kind
    for r in range(out.shape[0]):
        kind = filtered[r, 0]
        row = &filtered[r, 1]
        dst = &out[r, 0]
        above = &out[r - 1, 0] if r > 0 else zeros
        if kind == 0:
            for i in range(width):
                dst[i] = row[i]
        elif kind == 1:
            for i in range(bpp):
                dst[i] = row[i]
            for i in range(bpp, width):
                dst[i] = <unsigned char>(row[i] + dst[i - bpp])
        elif kind == 2:
            for i in range(width):
                dst[i] = <unsigned char>(row[i] + above[i])
        elif kind == 3:
            for i in range(bpp):
                dst[i] = <unsigned char>(row[i] + (above[i] >> 1))
            for i in range(bpp, width):
                dst[i] = <unsigned char>(row[i] + ((dst[i - bpp] + above[i]) >> 1))
        elif kind == 4:
            for i in range(bpp):
                dst[i] = <unsigned char>(row[i] + above[i])  # paeth(0, b, 0) = b
            for i in range(bpp, width):
                dst[i] = <unsigned char>(row[i] + paeth(dst[i - bpp], above[i], above[i - bpp]))
        else:
            return <int>r
    return -1


def png_unfilter(const unsigned char[:, ::1] filtered, unsigned char[:, ::1] out, ptrdiff_t bpp):
    """Unfilter the inflated rows ``filtered`` (rows, 1 + width * bpp) into ``out`` (rows,
    width * bpp); a ValueError names the first row with an unknown filter type."""
    cdef int bad
    cdef unsigned char[::1] zeros = bytearray(out.shape[1])
    with nogil:
        bad = unfilter_rows(filtered, out, &zeros[0], bpp)
    if bad >= 0:
        raise ValueError(f"row {bad} has the unknown PNG filter type {filtered[bad, 0]}")


def bilinear_uint8(const unsigned char[:, :, ::1] src, float[:, :, ::1] out,
                   const ptrdiff_t[::1] y_lo, const ptrdiff_t[::1] y_hi, const float[::1] y_lerp,
                   const ptrdiff_t[::1] x_lo, const ptrdiff_t[::1] x_hi, const float[::1] x_lerp):
    """Resize ``src`` (H, W, C) uint8 into ``out`` (h, w, C) float32 with the taps given."""
    cdef ptrdiff_t i, j, k
    cdef ptrdiff_t n_rows = out.shape[0], n_cols = out.shape[1], n_channels = out.shape[2]
    cdef const unsigned char *upper_row
    cdef const unsigned char *lower_row
    cdef float *dst
    cdef float tl, tr, bl, br, top, bottom, xl, yl
    cdef ptrdiff_t left, right
    with nogil:
        for i in range(n_rows):
            upper_row = &src[y_lo[i], 0, 0]
            lower_row = &src[y_hi[i], 0, 0]
            yl = y_lerp[i]
            dst = &out[i, 0, 0]
            for j in range(n_cols):
                left = x_lo[j] * n_channels
                right = x_hi[j] * n_channels
                xl = x_lerp[j]
                for k in range(n_channels):
                    tl = upper_row[left + k]
                    tr = upper_row[right + k]
                    bl = lower_row[left + k]
                    br = lower_row[right + k]
                    top = tl + (tr - tl) * xl
                    bottom = bl + (br - bl) * xl
                    dst[j * n_channels + k] = top + (bottom - top) * yl
