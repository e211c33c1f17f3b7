/*
 * Winograd F(2x2, 3x3) transforms of input tiles and output tiles (Lavin and Gray, CVPR 2016),
 * instantiated per element type and instruction set by winograd.h (no guard).
 * Parameters: FC_T element type, FC_ID name suffix, FC_TARGET function attributes.
 *
 * A 2x2 block of outputs of a 3x3 convolution reads a 4x4 tile d of the input.  With
 *
 *     B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
 *           [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
 *           [0 -1  1  0]         [1/2 -1/2  1/2]
 *           [0  1  0 -1]         [ 0    0    1 ]
 *
 * the outputs are Y = A^T [ (G g G^T) .* (B^T d B) ] A: 16 products per channel pair instead of
 * 36.  The filter transform U = G g G^T is done once, when the plan's filters are packed
 * (pack_winograd_filters in _conv.pyx); here are the input transform V = B^T d B and the output
 * transform, vectorised over the contiguous channel axis.
 * Only additions and subtractions: the error stays within a few ulps of the sums involved.
 */
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define FC_FN(name) FC_CAT(name, FC_ID)

/* V[xi * v_stride + c] for the 16 positions xi = 4 i + j of the tile whose top-left input pixel
   is (row0, col0) of the H x W x C image x; pixels outside the image read `zeros` (C zeros: the
   padding), so that the loop over channels has no branch.  Returns 0 when every value read is
   finite, 1 otherwise: the transform mixes pixels, so an infinity would turn into inf - inf = NaN where the
   direct convolution keeps it; the caller then computes the layer directly. */
static FC_TARGET int
FC_FN(wino_input)(const FC_T *restrict x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t row0,
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

/* The 2x2 outputs of one tile from its 16 products M[xi * m_stride + o] (o < K channels), plus
   bias (K values, or zeros) and ReLU (NaN kept), into rows row0, row0 + 1 and columns col0,
   col0 + 1 of the OH x OW x K image y; outputs past the image's edge go to `sink` (K scratch
   values), so that the loop over channels has no branch. */
static FC_TARGET void
FC_FN(wino_output)(const FC_T *restrict M, ptrdiff_t m_stride, ptrdiff_t K, const FC_T *restrict bias,
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

#undef FC_CAT_
#undef FC_CAT
#undef FC_FN
