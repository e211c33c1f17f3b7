"""The kernels of image_dataset_from_directory: PNG chunk parsing and row unfiltering, and a
bilinear resize with the arithmetic of ``tf.image.resize``.

Private module: fastconv/keras/image_dataset.py inflates the image data (zlib), computes the
resize taps (TensorFlow's ``compute_interpolation_weights`` with half-pixel centres, in
float32), checks the shapes and allocates the outputs; bounds checks are off here
because of that (a FASTCONV_DEBUG=1 build turns them on).  One image is small work: each loop
runs in the calling thread with the GIL released, and image datasets decode and resize several
images at once on their own threads.

PNG chunks (PNG specification, section 5): after the 8-byte signature, chunks of a 4-byte
big-endian length, a 4-byte type, the data and a CRC-32 of type and data.  The critical chunks
(IHDR, PLTE, IDAT) have their CRC checked, as libpng does.

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
import zlib

from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport abs as c_abs


cdef inline unsigned int be32(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]


def png_chunks(const unsigned char[::1] data):
    """The layout of a PNG file's bytes: ``(width, height, bit_depth, colour_type, interlace,
    has_tRNS, idat)`` with ``idat`` the (start, stop) of each IDAT chunk's data.  A ValueError
    for a file cut short, a critical chunk that fails its CRC, or no IHDR."""
    cdef ptrdiff_t pos = 8, n = data.shape[0], length, end
    if n < 8 + 12 + 13:
        raise ValueError(f"{n} bytes are too few for a PNG file")
    cdef const unsigned char *base = &data[0]
    cdef const unsigned char *kind
    cdef bint transparency = False
    cdef object header = None
    idat = []
    while pos + 8 <= n:
        length = be32(base + pos)
        kind = base + pos + 4
        name = bytes(kind[:4])
        end = pos + 8 + length
        if end + 4 > n:
            raise ValueError(f"the {name.decode('latin1')} chunk is cut short")
        if name in (b"IHDR", b"PLTE", b"IDAT") and zlib.crc32(data[pos + 4:end]) != be32(base + end):
            raise ValueError(f"the {name.decode('latin1')} chunk fails its CRC check")
        if name == b"IHDR" and length >= 13:
            header = (be32(base + pos + 8), be32(base + pos + 12), base[pos + 16], base[pos + 17], base[pos + 20])
        elif name == b"IDAT":
            idat.append((pos + 8, end))
        elif name == b"tRNS":
            transparency = True
        elif name == b"IEND":
            break
        pos = end + 4
    if header is None:
        raise ValueError("no IHDR chunk")
    return header + (transparency, idat)


cdef inline int paeth(int a, int b, int c) noexcept nogil:
    # |p - a|, |p - b|, |p - c| for p = a + b - c, written so that the compiler selects without
    # branches (the choice is data dependent and unpredictable).
    cdef int pa = c_abs(b - c), pb = c_abs(a - c), pc = c_abs(a + b - 2 * c)
    cdef int b_or_c = b if pb <= pc else c
    return a if (pa <= pb and pa <= pc) else b_or_c


cdef void paeth_row3(const unsigned char *row, const unsigned char *above, unsigned char *dst,
                     ptrdiff_t width) noexcept nogil:
    """A Paeth row of RGB pixels (the filter of most rows of photographs) with the left and
    upper-left pixels kept in registers: three independent chains, one per channel."""
    cdef int a0 = 0, a1 = 0, a2 = 0, c0 = 0, c1 = 0, c2 = 0, b0, b1, b2
    cdef ptrdiff_t i
    for i in range(0, width, 3):
        b0 = above[i]
        b1 = above[i + 1]
        b2 = above[i + 2]
        a0 = (row[i] + paeth(a0, b0, c0)) & 0xFF
        a1 = (row[i + 1] + paeth(a1, b1, c1)) & 0xFF
        a2 = (row[i + 2] + paeth(a2, b2, c2)) & 0xFF
        dst[i] = <unsigned char>a0
        dst[i + 1] = <unsigned char>a1
        dst[i + 2] = <unsigned char>a2
        c0, c1, c2 = b0, b1, b2


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
        elif kind == 4 and bpp == 3:
            paeth_row3(row, above, dst, width)
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


cdef inline float lerp2(float tl, float tr, float bl, float br, float xl, float yl) noexcept nogil:
    """TensorFlow's compute_lerp, in its order of operations."""
    cdef float top = tl + (tr - tl) * xl
    cdef float bottom = bl + (br - bl) * xl
    return top + (bottom - top) * yl


def bilinear_uint8(const unsigned char[:, :, ::1] src, float[:, :, ::1] out,
                   const ptrdiff_t[::1] y_lo, const ptrdiff_t[::1] y_hi, const float[::1] y_lerp,
                   const ptrdiff_t[::1] x_lo, const ptrdiff_t[::1] x_hi, const float[::1] x_lerp):
    """Resize ``src`` (H, W, C) uint8 into ``out`` (h, w, C) float32 with the taps given."""
    cdef ptrdiff_t i, j, k
    cdef ptrdiff_t n_rows = out.shape[0], n_cols = out.shape[1], n_channels = out.shape[2]
    cdef const unsigned char *upper_row
    cdef const unsigned char *lower_row
    cdef float *dst
    cdef float xl, yl
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
                if n_channels == 3:  # RGB, unrolled
                    dst[3 * j] = lerp2(upper_row[left], upper_row[right], lower_row[left], lower_row[right], xl, yl)
                    dst[3 * j + 1] = lerp2(upper_row[left + 1], upper_row[right + 1], lower_row[left + 1],
                                           lower_row[right + 1], xl, yl)
                    dst[3 * j + 2] = lerp2(upper_row[left + 2], upper_row[right + 2], lower_row[left + 2],
                                           lower_row[right + 2], xl, yl)
                    continue
                for k in range(n_channels):
                    dst[j * n_channels + k] = lerp2(upper_row[left + k], upper_row[right + k], lower_row[left + k],
                                                    lower_row[right + k], xl, yl)
