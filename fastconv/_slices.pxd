# Deterministic reductions over the batch: a sum over many rows (a filter or bias gradient) is
# cut into at most MAX_SLICES slices fixed by the shapes, each summed by one thread into its own
# partial result, and the partials are then added in slice order: the same bits for any number
# of threads.  PARTIALS_BYTES bounds the memory of the partial results.
cdef enum:
    MAX_SLICES = 16
    PARTIALS_BYTES = 33554432
