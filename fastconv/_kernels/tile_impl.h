/*
 * One register-tiled micro-kernel, instantiated per element type and instruction set by
 * tile.h (this file is included several times with different macros; it has no guard).
 *
 * The kernel computes one tile  C[m x nc] (=|+=) sum_t sum_k A_t[r, k] * B_t[k, j]  with
 *
 *     A_t[r, k] = a[a_off[t] + r * a_rs + k * a_ks]     (r < m <= MR, any strides)
 *     B_t[k, j] = b[b_off[t] + k * NR + j]               (a packed panel, NR columns)
 *     C[r, j]   = c[r * c_rs + j]                        (j < nc <= NR)
 *
 * Every convolution of fastconv is a sum of such tiles: the rows r are output pixels (or, for the
 * filter gradient, filter rows), the columns j a block of output channels, the taps t the (kh, kw)
 * positions of the filter and k the reduction channels.  The m x NR accumulators stay in vector
 * registers for the whole reduction; each step k loads NV vectors of B and broadcasts one value
 * of A per row, then does m x NV fused multiply-adds (the outer-product form of Goto's GEMM
 * micro-kernel and of the direct-convolution kernels of Georganas et al., SC 2018).
 *
 * Parameters (macros): FC_T element type, FC_IT the signed integer of its size (for masks),
 * FC_VBYTES vector width in bytes, FC_MR rows,
 * FC_NV vectors per row, FC_ID name suffix, FC_TARGET function attributes for the ISA.
 */

#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_FN(name) FC_CAT(name, FC_ID)
#define FC_VL ((int)(FC_VBYTES / sizeof(FC_T)))
#define FC_NR (FC_VL * FC_NV)

/* aligned(sizeof(T)): loads and stores through this type are unaligned vector moves. */
typedef FC_T FC_FN(vec) __attribute__((vector_size(FC_VBYTES), aligned(sizeof(FC_T))));
typedef FC_IT FC_FN(mask) __attribute__((vector_size(FC_VBYTES)));

/* rows: the tile height the code is unrolled for (1 or FC_MR, a compile-time constant at each
   call); m <= rows: the rows that exist.  Rows past m re-read row m - 1 (a valid address) and are
   not stored, so a partial tile runs the full-tile code instead of needing its own unrolling. */
static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(tile_body)(const int rows, const int m, int ntaps, const ptrdiff_t *a_off, const ptrdiff_t *b_off,
                 int kc, const FC_T *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const FC_T *b,
                 FC_T *c, ptrdiff_t c_rs, int nc, int beta, const FC_T *bias, int relu)
{
    typedef FC_FN(vec) vec;
    typedef FC_FN(mask) mask;
    vec acc[FC_MR][FC_NV];
    ptrdiff_t row_off[FC_MR];
    const vec zero = {0};

#pragma GCC unroll 24
    for (int r = 0; r < rows; r++) {
        row_off[r] = (r < m ? r : m - 1) * a_rs;
#pragma GCC unroll 4
        for (int v = 0; v < FC_NV; v++)
            acc[r][v] = zero;
    }

    for (int t = 0; t < ntaps; t++) {
        const FC_T *ap = a + a_off[t];
        const FC_T *bp = b + b_off[t];
        for (int k = 0; k < kc; k++) {
            vec bv[FC_NV];
#pragma GCC unroll 4
            for (int v = 0; v < FC_NV; v++)
                bv[v] = *(const vec *)(bp + v * FC_VL);
#pragma GCC unroll 24
            for (int r = 0; r < rows; r++) {
                const vec av = ap[row_off[r]] - zero;   /* broadcast (x - 0 is x, even for -0) */
#pragma GCC unroll 4
                for (int v = 0; v < FC_NV; v++)
                    acc[r][v] += av * bv[v];          /* contracted to an FMA where the ISA has one */
            }
            ap += a_ks;
            bp += FC_NR;
        }
    }

    /* Epilogue: C (=|+=) the accumulators, then the bias, then ReLU (relu 1) or ReLU6 (relu 2).
       The bias comes after C so that a reduction split into blocks that accumulate (the last one
       with the bias) ends as (sum of the blocks) + bias, bit for bit bias_add's result.  A partial
       vector of C is read and written lane by lane around one vector path (the bias is padded to
       whole panels and read as whole vectors): with the whole
       epilogue written twice (full and partial vectors), GCC 12 unswitched the copies and spilled
       accumulators of the reduction loop above to the stack (6x the object code, every
       convolution about 1.5x slower). */
#pragma GCC unroll 24
    for (int r = 0; r < rows; r++) {
        if (r >= m)
            break;
        FC_T *cr = c + r * c_rs;
#pragma GCC unroll 4
        for (int v = 0; v < FC_NV; v++) {
            vec val = acc[r][v];
            const int lanes = nc - v * FC_VL;
            if (beta) {
                vec cv;
                if (lanes >= FC_VL)
                    cv = *(const vec *)(cr + v * FC_VL);
                else {
                    cv = zero;
                    for (int l = 0; l < lanes; l++)
                        cv[l] = cr[v * FC_VL + l];
                }
                val += cv;
            }
            if (bias)
                val += *(const vec *)(bias + v * FC_VL);
            if (relu) {   /* max(x, 0) that keeps NaN, as tf.nn.relu does */
                const mask keep = (val > zero) | (val != val);
                val = (vec)((mask)val & keep);
            }
            if (relu == 2) {   /* and min(x, 6) that keeps NaN: ReLU6 */
                const vec six = zero + (FC_T)6;
                const mask below = (val < six) | (val != val);
                val = (vec)(((mask)val & below) | ((mask)six & ~below));
            }
            if (lanes >= FC_VL)
                *(vec *)(cr + v * FC_VL) = val;
            else
                for (int l = 0; l < lanes; l++)
                    cr[v * FC_VL + l] = val[l];
        }
    }
}

/* Three unrollings: a full tile, a single row (border pixels of the direct kernel), and a
   partial tile run at full height. */
static FC_TARGET void
FC_FN(tile)(int m, int ntaps, const ptrdiff_t *a_off, const ptrdiff_t *b_off, int kc,
            const void *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const void *b,
            void *c, ptrdiff_t c_rs, int nc, int beta, const void *bias, int relu)
{
#define FC_BODY(ROWS, M) FC_FN(tile_body)(ROWS, M, ntaps, a_off, b_off, kc, (const FC_T *)a, a_rs, a_ks, \
                             (const FC_T *)b, (FC_T *)c, c_rs, nc, beta, (const FC_T *)bias, relu)
    if (m == FC_MR)
        FC_BODY(FC_MR, FC_MR);
    else if (m == 1)
        FC_BODY(1, 1);
    else if (m > 0)
        FC_BODY(FC_MR, m);
#undef FC_BODY
}

#undef FC_CAT_
#undef FC_CAT
#undef FC_FN
#undef FC_VL
#undef FC_NR
