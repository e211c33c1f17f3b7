/*
 * Pooling rows: the inner loops of fastconv/_pooling.pyx, instantiated per element type and
 * instruction set by pool.h (included several times with different macros; no guard).
 * Parameters: FC_T element type, FC_ID name suffix, FC_TARGET function attributes.
 *
 * Each function does one row of its output: an output row (forward) or an input row (backward,
 * a gather over the windows that cover it), so that the caller's threads write disjoint rows.
 * The loops over the contiguous channel axis are branch-free selects, which the compiler turns
 * into vector compares and blends (AVX2 has blends; SSE2 would leave them scalar).
 */
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_FN(name) FC_CAT(name, FC_ID)

/* y[ow, c] = max of the window of (oh, ow); the maximum starts at `lowest` and only a strictly
   greater element replaces it (NaN never wins, the first of equal maxima wins). With arg, also
   the flat index (ih * W + iw) * C + c of that element, the window's first element by default. */
static FC_TARGET void
FC_FN(max_row)(const fc_window *g, const FC_T *restrict x, ptrdiff_t oh, FC_T lowest,
               FC_T *restrict y, int32_t *restrict arg)
{
    const ptrdiff_t C = g->C, W = g->W;
    const ptrdiff_t h0 = fc_clip_lo(oh * g->sh - g->pt), h1 = fc_clip_hi(oh * g->sh - g->pt, g->kh, g->H);
    for (ptrdiff_t ow = 0; ow < g->OW; ow++) {
        const ptrdiff_t w0 = fc_clip_lo(ow * g->sw - g->pl), w1 = fc_clip_hi(ow * g->sw - g->pl, g->kw, W);
        FC_T *restrict yo = y + ow * C;
        for (ptrdiff_t c = 0; c < C; c++)
            yo[c] = lowest;
        if (arg) {
            int32_t *restrict ao = arg + ow * C;
            const int32_t first = (int32_t)((h0 * W + w0) * C);
            for (ptrdiff_t c = 0; c < C; c++)
                ao[c] = first + (int32_t)c;
            for (ptrdiff_t ih = h0; ih < h1; ih++)
                for (ptrdiff_t iw = w0; iw < w1; iw++) {
                    const FC_T *restrict xi = x + (ih * W + iw) * C;
                    const int32_t base = (int32_t)((ih * W + iw) * C);
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const int better = xi[c] > yo[c];
                        yo[c] = better ? xi[c] : yo[c];
                        ao[c] = better ? base + (int32_t)c : ao[c];
                    }
                }
        } else {
            for (ptrdiff_t ih = h0; ih < h1; ih++)
                for (ptrdiff_t iw = w0; iw < w1; iw++) {
                    const FC_T *restrict xi = x + (ih * W + iw) * C;
                    for (ptrdiff_t c = 0; c < C; c++)
                        yo[c] = xi[c] > yo[c] ? xi[c] : yo[c];
                }
        }
    }
}

/* y[ow, c] = mean of the window of (oh, ow) over its real (non-padded) elements. */
static FC_TARGET void
FC_FN(avg_row)(const fc_window *g, const FC_T *restrict x, ptrdiff_t oh, FC_T *restrict y)
{
    const ptrdiff_t C = g->C, W = g->W;
    const ptrdiff_t h0 = fc_clip_lo(oh * g->sh - g->pt), h1 = fc_clip_hi(oh * g->sh - g->pt, g->kh, g->H);
    for (ptrdiff_t ow = 0; ow < g->OW; ow++) {
        const ptrdiff_t w0 = fc_clip_lo(ow * g->sw - g->pl), w1 = fc_clip_hi(ow * g->sw - g->pl, g->kw, W);
        FC_T *restrict yo = y + ow * C;
        for (ptrdiff_t c = 0; c < C; c++)
            yo[c] = 0;
        for (ptrdiff_t ih = h0; ih < h1; ih++)
            for (ptrdiff_t iw = w0; iw < w1; iw++) {
                const FC_T *restrict xi = x + (ih * W + iw) * C;
                for (ptrdiff_t c = 0; c < C; c++)
                    yo[c] += xi[c];
            }
        const FC_T scale = (FC_T)1 / (FC_T)((h1 - h0) * (w1 - w0));
        for (ptrdiff_t c = 0; c < C; c++)
            yo[c] *= scale;
    }
}

/* dx[iw, c] of input row ih = the sum of grad over the windows covering (ih, iw) whose argmax is
   (ih, iw, c) (or, when arg is NULL, grad / window size over all covering windows: average).
   Returns how many argmax entries named an element of this row: summed over the rows, every
   entry of a genuine argmax is counted exactly once (it names an element of its own window),
   which is how the caller checks an argmax it was given. */
static FC_TARGET ptrdiff_t
FC_FN(grad_row)(const fc_window *g, const FC_T *restrict grad, const int32_t *restrict arg,
                ptrdiff_t ih, FC_T *restrict dx)
{
    ptrdiff_t matched = 0;
    const ptrdiff_t C = g->C, W = g->W;
    const ptrdiff_t oh0 = fc_covering_lo(ih, g->pt, g->kh, g->sh), oh1 = fc_covering_hi(ih, g->pt, g->sh, g->OH);
    for (ptrdiff_t iw = 0; iw < W; iw++) {
        FC_T *restrict d = dx + iw * C;
        const ptrdiff_t ow0 = fc_covering_lo(iw, g->pl, g->kw, g->sw), ow1 = fc_covering_hi(iw, g->pl, g->sw, g->OW);
        const int32_t here = (int32_t)((ih * W + iw) * C);
        for (ptrdiff_t c = 0; c < C; c++)
            d[c] = 0;
        for (ptrdiff_t oh = oh0; oh < oh1; oh++)
            for (ptrdiff_t ow = ow0; ow < ow1; ow++) {
                const FC_T *restrict gi = grad + (oh * g->OW + ow) * C;
                if (arg) {
                    const int32_t *restrict ai = arg + (oh * g->OW + ow) * C;
                    int32_t hits = 0;
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const int hit = ai[c] == here + (int32_t)c;
                        d[c] += hit ? gi[c] : (FC_T)0;
                        hits += hit;
                    }
                    matched += hits;
                } else {
                    const ptrdiff_t rows = fc_clip_hi(oh * g->sh - g->pt, g->kh, g->H) - fc_clip_lo(oh * g->sh - g->pt);
                    const ptrdiff_t cols = fc_clip_hi(ow * g->sw - g->pl, g->kw, W) - fc_clip_lo(ow * g->sw - g->pl);
                    const FC_T scale = (FC_T)1 / (FC_T)(rows * cols);
                    for (ptrdiff_t c = 0; c < C; c++)
                        d[c] += gi[c] * scale;
                }
            }
    }
    return matched;
}

#undef FC_CAT_
#undef FC_CAT
#undef FC_FN
