/*
 * Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms of input tiles and output tiles (Lavin and
 * Gray, CVPR 2016), instantiated per element type and instruction set by winograd.h (no guard).
 * Parameters: FC_T element type, FC_ID name suffix, FC_TARGET function attributes.
 *
 * An m x m block of outputs of a 3x3 convolution reads an a x a tile d of the input, a = m + 2,
 * and Y = A^T [ (G g G^T) .* (B^T d B) ] A: a^2 products per channel pair instead of 9 m^2.
 * F(2x2, 3x3) (points 0, 1, -1, infinity):
 *
 *     B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
 *           [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
 *           [0 -1  1  0]         [1/2 -1/2  1/2]
 *           [0  1  0 -1]         [ 0    0    1 ]
 *
 * 16 products for 4 outputs (2.25x fewer than direct); only additions and subtractions, so the
 * error stays within a few ulps of the sums involved.  F(4x4, 3x3), with the points 0, 1, -1,
 * 1/2, -2, infinity (Barabasz et al., "Error analysis and improving the accuracy of Winograd
 * convolution for deep neural networks", ACM TOMS 2020: Lavin's 0, 1, -1, 2, -2 amplify rounding
 * more; simulated in float32 on 64 channels, the largest error fell from 4.2e-6 to 1.4e-6 of the
 * largest output):
 *
 *     B^T = [1 -3/2  -2   3/2  1  0]   G = [  1       0      0   ]   A^T = [1  1  1   1    1  0]
 *           [0  -1   1/2  5/2  1  0]       [ 1/3     1/3    1/3  ]         [0  1 -1  1/2  -2  0]
 *           [0   1  -5/2  1/2  1  0]       [-1/3     1/3   -1/3  ]         [0  1  1  1/4   4  0]
 *           [0  -2   -1    2   1  0]       [-16/15 -8/15  -4/15  ]         [0  1 -1  1/8  -8  1]
 *           [0  1/2  -1  -1/2  1  0]       [ 1/15  -2/15   4/15  ]
 *           [0   1  -3/2  -2  3/2 1]       [  0       0      1   ]
 *
 * 36 products for 16 outputs (4x fewer than direct), and fewer transformed values per output
 * (2.25 against 4 of F(2x2)); the larger coefficients cost accuracy (tests/test_conv_winograd.py).
 * The filter transform U = G g G^T is done once, when the plan's filters are packed
 * (pack_winograd_filters in _conv.pyx); here are the input transform V = B^T d B and the output
 * transform, vectorised over the contiguous channel axis.
 */
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_FN(name) FC_CAT(name, FC_ID)
/* The signed integer of FC_T's size (vector masks). */
#define FC_IT_OF_T __typeof__(__builtin_choose_expr(sizeof(FC_T) == 4, (int32_t)0, (int64_t)0))

/* F(2x2, 3x3).  V[xi * v_stride + c] for the 16 positions xi = 4 i + j of the tile whose top-left input pixel
   is (row0, col0) of the H x W x C image x; pixels outside the image read `zeros` (C zeros: the
   padding), so that the loop over channels has no branch.  Returns 0 when every value read is
   finite, 1 otherwise: the transform mixes pixels, so an infinity would turn into inf - inf = NaN where the
   direct convolution keeps it; the caller then computes the layer directly. */
static FC_TARGET int
FC_FN(wino2_input)(const FC_T *restrict x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t row0,
                  ptrdiff_t col0, const FC_T *restrict zeros, FC_T *restrict V, ptrdiff_t v_stride)
{
    const FC_T *px[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            const ptrdiff_t r = row0 + i, q = col0 + j;
            px[i][j] = (r >= 0 && r < H && q >= 0 && q < W) ? x + (r * W + q) * C : zeros;
        }
    int nonfinite = 0;   /* d - d is 0 for finite d, NaN for inf and NaN (an OR: vectorisable) */
    /* The 16 source pixels and V never overlap (V is the caller's buffer): no dependence. */
#pragma GCC ivdep
    for (ptrdiff_t c = 0; c < C; c++) {
        FC_T d[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                d[i][j] = px[i][j][c];
                nonfinite |= (d[i][j] - d[i][j]) != 0;
            }
        for (int j = 0; j < 4; j++) {          /* t = B^T d */
            t[0][j] = d[0][j] - d[2][j];
            t[1][j] = d[1][j] + d[2][j];
            t[2][j] = d[2][j] - d[1][j];
            t[3][j] = d[1][j] - d[3][j];
        }
        for (int i = 0; i < 4; i++) {          /* V = t B */
            V[(4 * i + 0) * v_stride + c] = t[i][0] - t[i][2];
            V[(4 * i + 1) * v_stride + c] = t[i][1] + t[i][2];
            V[(4 * i + 2) * v_stride + c] = t[i][2] - t[i][1];
            V[(4 * i + 3) * v_stride + c] = t[i][1] - t[i][3];
        }
    }
    return nonfinite;
}

/* F(2x2, 3x3).  The 2x2 outputs of one tile from its 16 products M[xi * m_stride + o] (o < K channels), plus
   bias (K values, or zeros) and ReLU (NaN kept), into rows row0, row0 + 1 and columns col0,
   col0 + 1 of the OH x OW x K image y; outputs past the image's edge go to `sink` (K scratch
   values), so that the loop over channels has no branch. */
static FC_TARGET void
FC_FN(wino2_output)(const FC_T *restrict M, ptrdiff_t m_stride, ptrdiff_t K, const FC_T *restrict bias,
                   int relu, FC_T *restrict y, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t row0, ptrdiff_t col0,
                   FC_T *restrict sink)
{
    FC_T *out[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            out[i][j] = (row0 + i < OH && col0 + j < OW) ? y + ((row0 + i) * OW + col0 + j) * K : sink;
    for (ptrdiff_t o = 0; o < K; o++) {
        FC_T m[4][4], s[2][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                m[i][j] = M[(4 * i + j) * m_stride + o];
        for (int j = 0; j < 4; j++) {          /* s = A^T m */
            s[0][j] = m[0][j] + m[1][j] + m[2][j];
            s[1][j] = m[1][j] - m[2][j] - m[3][j];
        }
        for (int i = 0; i < 2; i++) {          /* Y = s A */
            FC_T v0 = s[i][0] + s[i][1] + s[i][2] + bias[o];
            FC_T v1 = s[i][1] - s[i][2] - s[i][3] + bias[o];
            if (relu) {
                v0 = v0 > 0 ? v0 : (v0 != v0 ? v0 : (FC_T)0);
                v1 = v1 > 0 ? v1 : (v1 != v1 ? v1 : (FC_T)0);
            }
            out[i][0][o] = v0;
            out[i][1][o] = v1;
        }
    }
}

/* F(4x4, 3x3), written with vectors of channels: GCC does not vectorise the 6x6 transforms
   itself (36 pointers and 72 temporaries per channel; the scalar code took 34% of a 56x56 64->64
   layer's time against the GEMM's 24%).  Each transform is two passes of 1-D transforms, through
   a 6x6 block of vectors on the stack (L1): columns, then rows.  A partial vector of channels at
   the end is read and written lane by lane around the same code. */
typedef FC_T FC_FN(wvec) __attribute__((vector_size(FC_VBYTES), aligned(sizeof(FC_T))));
typedef FC_IT_OF_T FC_FN(wmask) __attribute__((vector_size(FC_VBYTES)));
#define FC_WVL ((ptrdiff_t)(FC_VBYTES / sizeof(FC_T)))

static FC_TARGET inline __attribute__((always_inline)) FC_FN(wvec)
FC_FN(wload)(const FC_T *p, ptrdiff_t lanes)
{
    FC_FN(wvec) v = {0};
    if (lanes == FC_WVL)
        return *(const FC_FN(wvec) *)p;
    for (ptrdiff_t l = 0; l < lanes; l++)
        v[l] = p[l];
    return v;
}

static FC_TARGET inline __attribute__((always_inline)) void
FC_FN(wstore)(FC_T *p, FC_FN(wvec) v, ptrdiff_t lanes)
{
    if (lanes == FC_WVL)
        *(FC_FN(wvec) *)p = v;
    else
        for (ptrdiff_t l = 0; l < lanes; l++)
            p[l] = v[l];
}

/* u = B^T (d0 .. d5) */
#define FC_WINO4_BT(u, d) do { \
        u[0] = d[0] - d[2] - d[2] + d[4] + (FC_T)1.5 * (d[3] - d[1]); \
        u[1] = d[4] - d[1] + (FC_T)0.5 * d[2] + (FC_T)2.5 * d[3]; \
        u[2] = d[4] + d[1] - (FC_T)2.5 * d[2] + (FC_T)0.5 * d[3]; \
        u[3] = d[4] - d[2] + 2 * (d[3] - d[1]); \
        u[4] = d[4] - d[2] - (FC_T)0.5 * (d[3] - d[1]); \
        u[5] = d[5] + d[1] - d[3] - d[3] + (FC_T)1.5 * (d[4] - d[2]); \
    } while (0)

/* u = A^T (m0 .. m5) */
#define FC_WINO4_AT(u, m) do { \
        const FC_FN(wvec) sum12 = m[1] + m[2], diff12 = m[1] - m[2]; \
        u[0] = m[0] + sum12 + m[3] + m[4]; \
        u[1] = diff12 + (FC_T)0.5 * m[3] - 2 * m[4]; \
        u[2] = sum12 + (FC_T)0.25 * m[3] + 4 * m[4]; \
        u[3] = diff12 + (FC_T)0.125 * m[3] - 8 * m[4] + m[5]; \
    } while (0)

/* F(4x4, 3x3): as wino2_input, for the 36 positions xi = 6 i + j of the 6x6 tile at (row0, col0). */
static FC_TARGET int
FC_FN(wino4_input)(const FC_T *restrict x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t row0,
                   ptrdiff_t col0, const FC_T *restrict zeros, FC_T *restrict V, ptrdiff_t v_stride)
{
    typedef FC_FN(wvec) vec;
    typedef FC_FN(wmask) mask;
    const FC_T *px[6][6];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            const ptrdiff_t r = row0 + i, q = col0 + j;
            px[i][j] = (r >= 0 && r < H && q >= 0 && q < W) ? x + (r * W + q) * C : zeros;
        }
    const vec zero = {0};
    mask nonfinite = (mask)(zero != zero);   /* d - d is 0 for finite d, NaN for inf and NaN */
    for (ptrdiff_t c = 0; c < C; c += FC_WVL) {
        const ptrdiff_t lanes = C - c < FC_WVL ? C - c : FC_WVL;
        vec t[6][6];    /* t[j] = B^T d[:, j]: column j */
        for (int j = 0; j < 6; j++) {
            vec d[6];
            for (int i = 0; i < 6; i++) {
                d[i] = FC_FN(wload)(px[i][j] + c, lanes);
                nonfinite |= (d[i] - d[i]) != zero;
            }
            FC_WINO4_BT(t[j], d);
        }
        for (int i = 0; i < 6; i++) {    /* row i of V = (B^T d) B */
            vec row[6], v[6];
            for (int j = 0; j < 6; j++)
                row[j] = t[j][i];
            FC_WINO4_BT(v, row);
            for (int j = 0; j < 6; j++)
                FC_FN(wstore)(V + (6 * i + j) * v_stride + c, v[j], lanes);
        }
    }
    int any = 0;
    for (ptrdiff_t l = 0; l < FC_WVL; l++)
        any |= nonfinite[l] != 0;
    return any;
}

/* F(4x4, 3x3): as wino2_output, the 4x4 outputs of one tile from its 36 products, into rows
   row0 .. row0 + 3 and columns col0 .. col0 + 3 of y. */
static FC_TARGET void
FC_FN(wino4_output)(const FC_T *restrict M, ptrdiff_t m_stride, ptrdiff_t K, const FC_T *restrict bias,
                    int relu, FC_T *restrict y, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t row0, ptrdiff_t col0,
                    FC_T *restrict sink)
{
    typedef FC_FN(wvec) vec;
    typedef FC_FN(wmask) mask;
    FC_T *out[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[i][j] = (row0 + i < OH && col0 + j < OW) ? y + ((row0 + i) * OW + col0 + j) * K : sink;
    const vec zero = {0};
    for (ptrdiff_t o = 0; o < K; o += FC_WVL) {
        const ptrdiff_t lanes = K - o < FC_WVL ? K - o : FC_WVL;
        const vec b = FC_FN(wload)(bias + o, lanes);
        vec s[6][4];    /* s[j] = A^T m[:, j]: column j */
        for (int j = 0; j < 6; j++) {
            vec m[6];
            for (int i = 0; i < 6; i++)
                m[i] = FC_FN(wload)(M + (6 * i + j) * m_stride + o, lanes);
            FC_WINO4_AT(s[j], m);
        }
        for (int i = 0; i < 4; i++) {    /* row i of Y = (A^T m) A, plus the bias, ReLU (NaN kept) */
            vec row[6], v[4];
            for (int j = 0; j < 6; j++)
                row[j] = s[j][i];
            FC_WINO4_AT(v, row);
            for (int j = 0; j < 4; j++) {
                vec val = v[j] + b;
                if (relu) {
                    const mask keep = (val > zero) | (val != val);
                    val = (vec)((mask)val & keep);
                }
                FC_FN(wstore)(out[i][j] + o, val, lanes);
            }
        }
    }
}

#undef FC_WINO4_BT
#undef FC_WINO4_AT
#undef FC_WVL

#undef FC_CAT_
#undef FC_CAT
#undef FC_FN
#undef FC_IT_OF_T
