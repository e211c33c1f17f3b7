"""Bias kernels: y = x + b along a channel axis (with an optional ReLU) and its gradient.

Private module: fastconv/elementwise.py views the data as (outer, channels, inner), C-contiguous (inner
is 1 for channels-last data, H * W for NCHW), checks the shapes and allocates the outputs.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t

from fastconv._slices cimport MAX_SLICES


@cython.boundscheck(False)
@cython.wraparound(False)
def bias_add(const floating[:, :, ::1] x, const floating[::1] bias, floating[:, :, ::1] y, bint relu,
             int n_threads):
    """y[o, c, i] = x[o, c, i] + bias[c], then max(., 0) if relu (NaN kept, as tf.nn.relu)."""
    cdef ptrdiff_t n_outer = x.shape[0], C = x.shape[1], n_inner = x.shape[2]
    cdef ptrdiff_t o, c, i
    cdef floating v
    for o in prange(n_outer, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(C):
            for i in range(n_inner):
                v = x[o, c, i] + bias[c]
                if relu and v < 0:
                    v = 0
                y[o, c, i] = v


@cython.boundscheck(False)
@cython.wraparound(False)
def bias_grad(const floating[:, :, ::1] dy, floating[:, ::1] partials, floating[::1] db, int n_threads):
    """db[c] = sum over o and i of dy[o, c, i]; ``partials`` is (slices, C) scratch."""
    cdef ptrdiff_t n_outer = dy.shape[0], C = dy.shape[1], n_inner = dy.shape[2], G = partials.shape[0]
    cdef ptrdiff_t s, o, c, i
    cdef floating acc
    cdef floating *part
    cdef const floating *row
    for s in prange(G, nogil=True, schedule="static", num_threads=n_threads):
        part = &partials[s, 0]
        for c in range(C):
            part[c] = 0
        for o in range(s * n_outer // G, (s + 1) * n_outer // G):
            row = &dy[o, 0, 0]
            if n_inner == 1:
                # channels last: a whole row of channels at a time (vectorised)
                for c in range(C):
                    part[c] = part[c] + row[c]
            else:
                for c in range(C):
                    acc = 0
                    for i in range(n_inner):
                        acc = acc + row[c * n_inner + i]
                    part[c] = part[c] + acc
    for c in range(C):
        acc = 0
        for s in range(G):
            acc = acc + partials[s, c]
        db[c] = acc


def slices(ptrdiff_t outer):
    """Number of partial sums for ``outer`` rows."""
    return outer if outer < MAX_SLICES else MAX_SLICES


cdef enum:
    # Elements per task of the element-wise loops: fixed, so the split does not depend on threads.
    CHUNK = 65536


@cython.boundscheck(False)
@cython.wraparound(False)
def relu_grad(const floating[::1] gradients, const floating[::1] features, floating[::1] out, int n_threads):
    """out = gradients * (features > 0), element by element (TensorFlow's ReluGrad: a NaN
    gradient stays NaN even where the feature is not positive, as NaN * 0 is NaN)."""
    cdef ptrdiff_t size = out.shape[0]
    cdef ptrdiff_t nchunks = (size + CHUNK - 1) // CHUNK
    cdef ptrdiff_t chunk, i, end
    cdef floating one = 1, zero = 0
    for chunk in prange(nchunks, nogil=True, schedule="static", num_threads=n_threads):
        end = (chunk + 1) * CHUNK if (chunk + 1) * CHUNK < size else size
        for i in range(chunk * CHUNK, end):
            out[i] = gradients[i] * (one if features[i] > 0 else zero)
