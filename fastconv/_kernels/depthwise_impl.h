/*
 * Depthwise convolution rows: the inner loops of fastconv/_depthwise.pyx, instantiated per
 * element type and instruction set by depthwise.h (included several times; no guard).
 * Parameters: FC_T element type, FC_IT the signed integer of its size (masks), FC_VBYTES vector
 * width in bytes, FC_ID name suffix, FC_TARGET function attributes.
 *
 * Everything works on rows of CM = C * depth_multiplier channels, where channel j has its own
 * filter w[kh, kw, j]; the caller expands the input rows (channel c repeated depth_multiplier
 * times) when depth_multiplier > 1, so that source, filter and destination share one channel
 * index and one vector covers FC_VL consecutive channels of all three.
 *
 *   dw_row         dst[d, j] = act(bias[j] + sum over taps (a, b) of src_a[s(d, b), j] * w[a, b, j])
 *                  (forward, and the input gradient with the gather geometry of fc_dw_axis)
 *   dw_filter_row  partial[a, b, j] += sum over d of src_a[s(d, b), j] * dy[d, j]
 *                  (filter gradient, forward geometry; the kw taps of a row share each load
 *                  of dy and accumulate in registers along the whole row)
 *
 * The row kernel keeps a register tile of FC_DW_TILE destination pixels x one vector of channels:
 * each filter vector is loaded once per tap and used for all the tile's pixels, each source
 * vector once (the register blocking of the convolution micro-kernel, tile_impl.h, with the
 * channel axis in place of the output channels and no reduction over input channels).
 */
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_FN(name) FC_CAT(name, FC_ID)
#define FC_VL ((int)(FC_VBYTES / sizeof(FC_T)))

/* aligned(sizeof(T)): loads and stores through this type are unaligned vector moves. */
typedef FC_T FC_FN(dwvec) __attribute__((vector_size(FC_VBYTES), aligned(sizeof(FC_T))));
typedef FC_IT FC_FN(dwmask) __attribute__((vector_size(FC_VBYTES)));

/* The first `lanes` values at p (a full vector when lanes == FC_VL, a compile-time constant in
   the main loops), the others zero. */
static FC_TARGET inline __attribute__((always_inline)) FC_FN(dwvec)
FC_FN(dw_load)(const FC_T *p, const int lanes)
{
    if (lanes == FC_VL)
        return *(const FC_FN(dwvec) *)p;
    FC_FN(dwvec) v = {0};
    for (int l = 0; l < lanes; l++)
        v[l] = p[l];
    return v;
}

static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(dw_store)(FC_T *p, FC_FN(dwvec) v, const int lanes)
{
    if (lanes == FC_VL) {
        *(FC_FN(dwvec) *)p = v;
        return;
    }
    for (int l = 0; l < lanes; l++)
        p[l] = v[l];
}

/* relu: max(x, 0); relu6: min(max(x, 0), 6); both keep NaN, as tf.nn.relu and tf.nn.relu6. */
static FC_TARGET inline __attribute__((always_inline)) FC_FN(dwvec)
FC_FN(dw_activate)(FC_FN(dwvec) v, int act)
{
    typedef FC_FN(dwvec) vec;
    typedef FC_FN(dwmask) mask;
    const vec zero = {0};
    if (act == FC_DW_LINEAR)
        return v;
    v = (vec)((mask)v & ((v > zero) | (v != v)));
    if (act == FC_DW_RELU6) {
        const vec six = zero + 6;
        const mask over = v > six;
        v = (vec)(((mask)six & over) | ((mask)v & ~over));
    }
    return v;
}

/* One vector of channels (j .. j + lanes) of a tile of `rows` destinations, of which the first
   m exist (rows past m re-read the source of destination m - 1 and are not stored, so a short
   tile runs the full tile's code).  Tap lists: nv vertical taps (source row pointers src[i],
   filter row offsets wrow[i]) and nh horizontal taps (source column offsets scol[t] of the
   tile's first destination, filter offsets wcol[t]); destination r reads r * sstep further. */
static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(dw_vector)(const int rows, const int m, const int lanes, ptrdiff_t j,
                 ptrdiff_t nv, const FC_T *const *src, const ptrdiff_t *wrow,
                 ptrdiff_t nh, const ptrdiff_t *scol, const ptrdiff_t *wcol, ptrdiff_t sstep,
                 const FC_T *w, const FC_T *bias, int act, FC_T *dst, ptrdiff_t dstep)
{
    typedef FC_FN(dwvec) vec;
    vec acc[FC_DW_TILE];
    ptrdiff_t roff[FC_DW_TILE];
    const vec zero = {0};
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        acc[r] = zero;
        roff[r] = (r < m ? r : m - 1) * sstep + j;
    }
    for (ptrdiff_t i = 0; i < nv; i++) {
        const FC_T *s = src[i];
        const FC_T *wr = w + wrow[i] + j;
        for (ptrdiff_t t = 0; t < nh; t++) {
            const vec wv = FC_FN(dw_load)(wr + wcol[t], lanes);
            const FC_T *sp = s + scol[t];
#pragma GCC unroll 8
            for (int r = 0; r < rows; r++)
                acc[r] += FC_FN(dw_load)(sp + roff[r], lanes) * wv;   /* an FMA where the ISA has one */
        }
    }
    const vec b = bias ? FC_FN(dw_load)(bias + j, lanes) : zero;
#pragma GCC unroll 8
    for (int r = 0; r < rows; r++) {
        if (r >= m)
            break;
        vec v = acc[r];
        if (bias)
            v += b;
        FC_FN(dw_store)(dst + r * dstep + j, FC_FN(dw_activate)(v, act), lanes);
    }
}

/* All channels of a tile: full vectors, then the last partial one. */
static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(dw_tile)(const int rows, int m, ptrdiff_t CM, ptrdiff_t nv, const FC_T *const *src, const ptrdiff_t *wrow,
               ptrdiff_t nh, const ptrdiff_t *scol, const ptrdiff_t *wcol, ptrdiff_t sstep,
               const FC_T *w, const FC_T *bias, int act, FC_T *dst, ptrdiff_t dstep)
{
    ptrdiff_t j = 0;
    for (; j + FC_VL <= CM; j += FC_VL)
        FC_FN(dw_vector)(rows, m, FC_VL, j, nv, src, wrow, nh, scol, wcol, sstep, w, bias, act, dst, dstep);
    if (j < CM)
        FC_FN(dw_vector)(rows, m, (int)(CM - j), j, nv, src, wrow, nh, scol, wcol, sstep, w, bias, act, dst, dstep);
}

/* One destination row of h->dst pixels x CM channels.  src_rows[i] (i < nv) are the source rows
   of the vertical taps (h->src pixels x CM channels each), wrow[i] their offsets into the
   filters w[kh, kw, CM].  The destinations are taken by phase class (d = x0 + k * down, which
   share their horizontal taps); inside each class the pixels whose taps all read inside the row
   go in register tiles, the border pixels one by one with the taps that stay inside.
   scratch: 4 * h->taps ptrdiff_t. */
static FC_TARGET void
FC_FN(dw_row)(const fc_dw_axis *h, ptrdiff_t nv, const ptrdiff_t *wrow, const FC_T *const *src_rows,
              const FC_T *w, ptrdiff_t CM, const FC_T *bias, int act, FC_T *dst, ptrdiff_t *scratch)
{
    ptrdiff_t *htap = scratch, *hbase = scratch + h->taps, *scol = hbase + h->taps, *wcol = scol + h->taps;
    const ptrdiff_t classes = h->down < h->dst ? h->down : h->dst;
    const ptrdiff_t sstep = h->up * CM, dstep = h->down * CM;
    for (ptrdiff_t x0 = 0; x0 < classes; x0++) {
        /* ceil((dst - x0) / down), without the overflow of (dst - x0 + down - 1) for huge strides */
        const ptrdiff_t count = (h->dst - x0 - 1) / h->down + 1;
        /* The class's taps (exact division) and the interior [lo, hi) where all of them fit. */
        ptrdiff_t nh = 0, lo = 0, hi = count;
        for (ptrdiff_t t = 0; t < h->taps; t++) {
            const ptrdiff_t num = x0 * h->up + h->off0 + t * h->tstep;
            const ptrdiff_t base = fc_dw_floor_div(num, h->down);
            if (base * h->down != num)
                continue;
            htap[nh] = t;
            hbase[nh] = base;
            nh++;
            const ptrdiff_t first = fc_dw_ceil_div(-base, h->up);
            const ptrdiff_t end = fc_dw_floor_div(h->src - 1 - base, h->up) + 1;
            lo = first > lo ? first : lo;
            hi = end < hi ? end : hi;
        }
        lo = lo < count ? lo : count;
        hi = hi > lo ? hi : lo;
        FC_T *dclass = dst + x0 * CM;
        for (ptrdiff_t t = 0; t < nh; t++)
            wcol[t] = htap[t] * CM;
        for (ptrdiff_t k = lo; k < hi; k += FC_DW_TILE) {
            const int m = (int)(hi - k < FC_DW_TILE ? hi - k : FC_DW_TILE);
            for (ptrdiff_t t = 0; t < nh; t++)
                scol[t] = (hbase[t] + k * h->up) * CM;
            FC_FN(dw_tile)(FC_DW_TILE, m, CM, nv, src_rows, wrow, nh, scol, wcol, sstep, w, bias, act,
                           dclass + k * dstep, dstep);
        }
        for (ptrdiff_t k = 0; k < count; k++) {
            if (k == lo)
                k = hi;
            if (k >= count)
                break;
            ptrdiff_t n = 0;
            for (ptrdiff_t t = 0; t < nh; t++) {
                const ptrdiff_t s = hbase[t] + k * h->up;
                if (s >= 0 && s < h->src) {
                    scol[n] = s * CM;
                    wcol[n] = htap[t] * CM;
                    n++;
                }
            }
            FC_FN(dw_tile)(1, 1, CM, nv, src_rows, wrow, n, scol, wcol, 0, w, bias, act, dclass + k * dstep, 0);
        }
    }
}

/* Filter gradient of one vector of channels (j .. j + lanes) for `taps` consecutive horizontal
   taps b0 .. b0 + taps - 1 of one vertical tap: p[t * CM] += sum over the outputs d of
   src[s(d, b0 + t) * CM] * dy[d * CM], where s(d, b) = d * up + off0 + b * tstep.  One output
   gradient vector serves all the taps; the outputs [lo, hi), where every tap reads inside the
   row, go two at a time into two sets of accumulators (independent FMA chains), the border
   outputs one by one with the taps that stay inside.  The summation order depends on the shapes
   alone. */
static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(dw_filter_taps)(const int taps, const int lanes, const fc_dw_axis *h, ptrdiff_t b0, ptrdiff_t lo, ptrdiff_t hi,
                      const FC_T *src, const FC_T *dy, ptrdiff_t CM, FC_T *p)
{
    typedef FC_FN(dwvec) vec;
    const vec zero = {0};
    vec even[FC_DW_TILE], odd[FC_DW_TILE];
    const ptrdiff_t tap_step = h->tstep * CM, out_step = h->up * CM;
#pragma GCC unroll 8
    for (int t = 0; t < taps; t++)
        even[t] = odd[t] = zero;
    ptrdiff_t d = lo;
    const FC_T *s = src + (lo * h->up + h->off0 + b0 * h->tstep) * CM;
    for (; d + 2 <= hi; d += 2) {
        const vec g0 = FC_FN(dw_load)(dy + d * CM, lanes), g1 = FC_FN(dw_load)(dy + (d + 1) * CM, lanes);
#pragma GCC unroll 8
        for (int t = 0; t < taps; t++) {
            even[t] += FC_FN(dw_load)(s + t * tap_step, lanes) * g0;
            odd[t] += FC_FN(dw_load)(s + t * tap_step + out_step, lanes) * g1;
        }
        s += 2 * out_step;
    }
    for (ptrdiff_t k = 0; k < h->dst; k++) {
        if (k == lo)
            k = d;   /* the interior's odd last output, if any, then the right border */
        if (k >= h->dst)
            break;
        const vec g = FC_FN(dw_load)(dy + k * CM, lanes);
#pragma GCC unroll 8
        for (int t = 0; t < taps; t++) {
            const ptrdiff_t col = k * h->up + h->off0 + (b0 + t) * h->tstep;
            if (col >= 0 && col < h->src)
                even[t] += FC_FN(dw_load)(src + col * CM, lanes) * g;
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < taps; t++)
        FC_FN(dw_store)(p + t * CM, FC_FN(dw_load)(p + t * CM, lanes) + (even[t] + odd[t]), lanes);
}

/* All channels of `taps` horizontal taps: full vectors, then the last partial one. */
static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(dw_filter_channels)(const int taps, const fc_dw_axis *h, ptrdiff_t b0, ptrdiff_t lo, ptrdiff_t hi,
                          const FC_T *src, const FC_T *dy, ptrdiff_t CM, FC_T *p)
{
    ptrdiff_t j = 0;
    for (; j + FC_VL <= CM; j += FC_VL)
        FC_FN(dw_filter_taps)(taps, FC_VL, h, b0, lo, hi, src + j, dy + j, CM, p + j);
    if (j < CM)
        FC_FN(dw_filter_taps)(taps, (int)(CM - j), h, b0, lo, hi, src + j, dy + j, CM, p + j);
}

/* Filter gradient of one output row dy (h->dst pixels x CM), forward geometry (h->down == 1):
   for each vertical tap i (filter row offset wrow[i], input row src_rows[i]) and horizontal tap
   b, partial[wrow[i] + b * CM + j] += the products over the outputs whose tap b reads inside.
   The horizontal taps go FC_DW_TILE at a time, each group compiled for its size. */
static FC_TARGET void
FC_FN(dw_filter_row)(const fc_dw_axis *h, ptrdiff_t nv, const ptrdiff_t *wrow, const FC_T *const *src_rows,
                     const FC_T *dy, ptrdiff_t CM, FC_T *partial)
{
    for (ptrdiff_t b0 = 0; b0 < h->taps; b0 += FC_DW_TILE) {
        const int taps = (int)(h->taps - b0 < FC_DW_TILE ? h->taps - b0 : FC_DW_TILE);
        /* The outputs [lo, hi) where the taps b0 .. b0 + taps - 1 all read inside the row. */
        ptrdiff_t lo = 0, hi = h->dst;
        for (ptrdiff_t b = b0; b < b0 + taps; b++) {
            const ptrdiff_t base = h->off0 + b * h->tstep;
            const ptrdiff_t first = fc_dw_ceil_div(-base, h->up);
            const ptrdiff_t end = fc_dw_floor_div(h->src - 1 - base, h->up) + 1;
            lo = first > lo ? first : lo;
            hi = end < hi ? end : hi;
        }
        lo = lo < h->dst ? lo : h->dst;
        hi = hi > lo ? hi : lo;
        for (ptrdiff_t i = 0; i < nv; i++) {
            FC_T *p = partial + wrow[i] + b0 * CM;
            switch (taps) {
#define FC_DW_TAPS_CASE(n) \
            case n: FC_FN(dw_filter_channels)(n, h, b0, lo, hi, src_rows[i], dy, CM, p); break;
            FC_DW_TAPS_CASE(1) FC_DW_TAPS_CASE(2) FC_DW_TAPS_CASE(3) FC_DW_TAPS_CASE(4)
            FC_DW_TAPS_CASE(5) FC_DW_TAPS_CASE(6) FC_DW_TAPS_CASE(7) FC_DW_TAPS_CASE(8)
#undef FC_DW_TAPS_CASE
            }
        }
    }
}

#undef FC_CAT_
#undef FC_CAT
#undef FC_FN
#undef FC_VL
