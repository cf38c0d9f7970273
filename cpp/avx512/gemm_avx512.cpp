// AVX-512 GEMM: a 12x32 register micro-kernel plugged into the shared Goto/BLIS driver.
// Built with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma (CMake), used only when CPUID and
// XGETBV both say so (dispatch.cpp).
//
// Why 12x32: C rows x two ZMM vectors of columns gives 24 accumulators, leaving 8 of the 32
// ZMM registers for the two B vectors and the A broadcast. Per k that is 24 FMAs against
// 2 loads and 12 broadcasts, enough to keep Zen 4's FMA pipes busy (it executes a 512-bit op
// as two 256-bit halves, so the peak equals AVX2's; the gain is the register count). This is
// the transpose of AOCL-BLIS's packed 32x12 Zen 4 kernel: we store C row-major, so our vector
// dimension is N.
#include <immintrin.h>

#include <cstdint>

#include "common/tile_epilogue.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace avx512 {
namespace {

struct Ukernel {
    static constexpr int MR = 12, NR = 32;
    // Measured on Zen 4 (a 1-thread sweep of KC, MC, NC at 100..1024): a long KC amortises the load/store of the C tile
    // and the packing loops best. The 32-wide B micro-panel (KC x 32, 64 KiB) streams from L2
    // alongside the 12 x KC A sliver (24 KiB); MC x KC of packed A (192 KiB) stays in L2 and
    // NC x KC of packed B (8 MiB) in L3. KC = 256 and MC = 192 were 3-8% slower at 1024^3.
    static constexpr int64_t KC = 512, MC = 96, NC = 4096;

    // Loads of B are masked too, so a partial-width panel of the caller's matrix can be read
    // in place (masked-off lanes never fault): the driver need not pack it.
    static constexpr bool kMaskedB = true;

    // A batch of one or two rows is latency-bound in the 12x32 tile: each k adds one FMA to
    // only 2R accumulators, and the next k must wait for them (4 cycles). run_wide walks up to
    // 128 columns at once instead (8R independent chains), still one FMA per k per element.
    static constexpr int kWideRows = 2;

    // run() applies the bias, ReLU and mask epilogues to its registers (TileEpilogue).
    static constexpr bool kFusedEpilogue = true;

    // A right edge this narrow, with a k this long, runs column-wise from packed A (narrow()).
    static constexpr int kNarrowCols = 8;
    static constexpr int64_t kNarrowMinK = 16;
    static constexpr int kNarrowBlockCols = 0;  // narrow() runs per tile instead

    // run() reads a k-major A (Xᵀ of a row-major X) in place when lda < 0.
    static constexpr bool kDirectAT = true;
    static constexpr int64_t kDirectATPanels = int64_t(1) << 40;  // any number
    // Row-major A and B in place wherever the driver's own limits allow.
    static constexpr int64_t kDirectAPanels = int64_t(1) << 40;
    static constexpr int64_t kDirectBMaxRows = int64_t(1) << 40;

    // pack_rows packs a full MR-row sliver of a row-major A, or a full NR-wide panel of a
    // transposed B (the driver's scalar loops moved one float at a time: 5% of a 1024^3 X·W).
    static constexpr bool kPackRows = true;
    // No C prefetch: it was measured on AVX2 (Zen 3) only.
    static constexpr bool kPrefetchC = false;

    template <int ROWS>
    static void pack_rows(float* dst, const float* src, int64_t lda, int64_t kc) {
        // src is (ROWS, kc) with row stride lda; dst[k*ROWS + i] = src[i*lda + k]
        // Groups of 4 rows x 16 k: a 4x4 transpose inside each 128-bit lane leaves, in u[j],
        // lane L = rows 0..3 at k = 4L + j, which is 4 floats of the panel at (4L + j)*MR.
        int64_t k = 0;
        for (; k + 16 <= kc; k += 16) {
            for (int g = 0; g < ROWS / 4; ++g) {
                const float* s = src + 4 * g * lda + k;
                const __m512 r0 = _mm512_loadu_ps(s), r1 = _mm512_loadu_ps(s + lda);
                const __m512 r2 = _mm512_loadu_ps(s + 2 * lda), r3 = _mm512_loadu_ps(s + 3 * lda);
                const __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
                const __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
                const __m512 u[4] = {
                    _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
                    _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
                    _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
                    _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
                float* d = dst + k * ROWS + 4 * g;
                for (int j = 0; j < 4; ++j) {
                    _mm_storeu_ps(d + j * ROWS, _mm512_castps512_ps128(u[j]));
                    _mm_storeu_ps(d + (4 + j) * ROWS, _mm512_extractf32x4_ps(u[j], 1));
                    _mm_storeu_ps(d + (8 + j) * ROWS, _mm512_extractf32x4_ps(u[j], 2));
                    _mm_storeu_ps(d + (12 + j) * ROWS, _mm512_extractf32x4_ps(u[j], 3));
                }
            }
        }
        for (; k < kc; ++k)
            for (int i = 0; i < ROWS; ++i) dst[k * ROWS + i] = src[i * lda + k];
    }

    template <int R>
    static void run_wide(int64_t kc, const float* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, bool accumulate, int64_t nc) {
        // Ap is (kc, MR) packed (R rows used), B is (kc, nc) with row stride ldb (read in
        // place, masked), C is (R, nc) with row stride ldc
        constexpr int NV = 8;
        for (int64_t j0 = 0; j0 < nc; j0 += 16 * NV) {
            __mmask16 m[NV];
            for (int v = 0; v < NV; ++v) {
                const int64_t w = nc - j0 - 16 * v;
                m[v] = w >= 16 ? 0xFFFF : w <= 0 ? 0 : static_cast<__mmask16>((1u << w) - 1);
            }
            __m512 c[R][NV];
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v)
                    c[i][v] = accumulate ? _mm512_maskz_loadu_ps(m[v], C + i * ldc + j0 + 16 * v)
                                         : _mm512_setzero_ps();
            const float* a = Ap;
            const float* b = B + j0;
            for (int64_t k = 0; k < kc; ++k) {
                for (int i = 0; i < R; ++i) {
                    const __m512 ai = _mm512_set1_ps(a[i]);
                    for (int v = 0; v < NV; ++v)
                        c[i][v] = _mm512_fmadd_ps(ai, _mm512_maskz_loadu_ps(m[v], b + 16 * v),
                                                  c[i][v]);
                }
                a += MR;
                b += ldb;
            }
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v)
                    _mm512_mask_storeu_ps(C + i * ldc + j0 + 16 * v, m[v], c[i][v]);
        }
    }

    template <int R>
    [[gnu::always_inline]] static inline void run(int64_t kc, const float* A, int64_t lda,
                                                  const float* B, int64_t ldb, float* C,
                                                  int64_t ldc, bool accumulate, int nr,
                                                  const TileEpilogue* epi) {
        // A is (R, kc): packed k-major with stride MR when lda == 0; the caller's k-major
        // matrix (Xᵀ of a row-major X), -lda floats between consecutive k, when lda < 0;
        // else the caller's row-major matrix with row stride lda. B is (kc, nr <= 32) with row
        // stride ldb, C is (R, nr) with row stride ldc; epi, when not null, is applied before
        // the store.
        if (lda <= 0) {
            const int64_t ks = lda == 0 ? MR : -lda;
            if (nr <= kNarrowCols && kc >= kNarrowMinK)
                narrow<R>(kc, A, ks, B, ldb, C, ldc, accumulate, nr, epi);
            else if (lda == 0) by_width<R>(kc, APacked{A}, B, ldb, C, ldc, accumulate, nr, epi);
            else by_width<R>(kc, AColumns{A, ks}, B, ldb, C, ldc, accumulate, nr, epi);
        } else {
            by_width<R>(kc, ARows{A, lda}, B, ldb, C, ldc, accumulate, nr, epi);
        }
    }

    // A full 32-column tile loads B unmasked: on Intel cores with two 512-bit FMA pipes a
    // zero-masked load cost the tile 4-8% (a scratch harness on a Xeon, model 207: 172 vs
    // 161 GFLOP/s at best, packed operands in L1/L2); a right edge of 17-31 columns keeps
    // the masks, and one of at most 16 runs with one vector per row: half the FMAs, nothing
    // computed to be dropped (N = 100 leaves 4, N = 10 leaves 10).
    template <int R, class AP>
    [[gnu::always_inline]] static inline void by_width(int64_t kc, AP Ap, const float* B,
                                                       int64_t ldb, float* C, int64_t ldc,
                                                       bool accumulate, int nr,
                                                       const TileEpilogue* epi) {
        if (nr <= 16) tile<R, 1, false>(kc, Ap, B, ldb, C, ldc, accumulate, nr, epi);
        else if (nr == NR) tile<R, 2, true>(kc, Ap, B, ldb, C, ldc, accumulate, nr, epi);
        else tile<R, 2, false>(kc, Ap, B, ldb, C, ldc, accumulate, nr, epi);
    }

    // A right edge of at most kNarrowCols columns from a k-major A (packed, ks = MR, or Xᵀ
    // in place; the driver packs a row-major A for such blocks, see macro_block): the vectors run
    // down the R rows of one column instead of along a row, so a k costs one FMA per column
    // (4) instead of one per row (12). Each element is still one FMA chain over k in order,
    // and a*b == b*a exactly, so the bits are those of the row-vector tile. (With A read in
    // place, gathering a column of A per k by masked broadcasts cost more than it saved; for
    // a short k, as in a batch-1 weight gradient, the transposed store costs more too.)
    template <int R>
    static void narrow(int64_t kc, const float* Ap, int64_t ks, const float* B, int64_t ldb,
                       float* C, int64_t ldc, bool accumulate, int nr, const TileEpilogue* epi) {
        switch (nr) {
            case 1: return columns<R, 1>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 2: return columns<R, 2>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 3: return columns<R, 3>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 4: return columns<R, 4>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 5: return columns<R, 5>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 6: return columns<R, 6>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            case 7: return columns<R, 7>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
            default: return columns<R, 8>(kc, Ap, ks, B, ldb, C, ldc, accumulate, epi);
        }
    }

    template <int R, int NC>
    static void columns(int64_t kc, const float* Ap, int64_t ks, const float* B, int64_t ldb,
                        float* C, int64_t ldc, bool accumulate, const TileEpilogue* epi) {
        // Ap is (kc, R) k-major, ks floats between consecutive k (MR when packed), B is
        // (kc, NC) with row stride ldb, C is (R, NC)
        // with row stride ldc; c[j] holds column j, transposed in and out through t
        const __mmask16 rows = static_cast<__mmask16>((1u << R) - 1);
        alignas(64) float t[NC][16];
        __m512 c[NC];
        if (accumulate) {
            for (int i = 0; i < R; ++i)
                for (int j = 0; j < NC; ++j) t[j][i] = C[i * ldc + j];
            for (int j = 0; j < NC; ++j) c[j] = _mm512_maskz_load_ps(rows, t[j]);
        } else {
            for (int j = 0; j < NC; ++j) c[j] = _mm512_setzero_ps();
        }
        for (int64_t k = 0; k < kc; ++k) {
            const __m512 a = _mm512_maskz_loadu_ps(rows, Ap);  // A(0..R-1, k)
            for (int j = 0; j < NC; ++j)
                c[j] = _mm512_fmadd_ps(a, _mm512_set1_ps(B[j]), c[j]);
            Ap += ks;
            B += ldb;
        }
        for (int j = 0; j < NC; ++j) _mm512_store_ps(t[j], c[j]);
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < NC; ++j) {
                float v = t[j][i];
                if (epi) {  // the scalar epilogue, on the way out
                    if (epi->bias) v = v + epi->bias[j];
                    if (epi->relu) v = v < 0.0f ? 0.0f : v;
                    if (epi->mask) v = epi->mask[i * epi->ldm + j] > 0.0f ? v : 0.0f;
                }
                C[i * ldc + j] = v;
            }
    }

    // The ways a tile reads A(i, k): from a packed panel, or in place from the caller's
    // k-major (Xᵀ) or row-major matrix. (APacked is AColumns with ks = MR, kept apart for its
    // compile-time stride: with AColumns{A, MR} for packed panels too, the 784-100-10 b100
    // step was 2.5-3% slower in A/B.)
    struct APacked {
        const float* p;
        float at(int i) const { return p[i]; }
        void next() { p += MR; }
    };
    struct AColumns {  // k-major in place: A(i, k) = p[k * ks + i]
        const float* p;
        int64_t ks;
        float at(int i) const { return p[i]; }
        void next() { p += ks; }
    };
    struct ARows {
        const float* p;
        int64_t ld;
        float at(int i) const { return p[i * ld]; }
        void next() { ++p; }
    };

    template <int R, int NV, bool FULL, class AP>
    static void tile(int64_t kc, AP Ap, const float* B, int64_t ldb, float* C,
                     int64_t ldc, bool accumulate, int nr, const TileEpilogue* epi) {
        // as run(), with NV vectors of 16 columns per row (FULL: nr == 16 * NV)
        // Masked loads and stores handle a narrow right edge in place: masked-off lanes of B
        // are not read and those of C are never touched.
        __mmask16 m[NV];
        for (int v = 0; v < NV; ++v) {
            const int w = nr - 16 * v;
            m[v] = w >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << w) - 1);
        }
        __m512 c[R][NV];
        if (accumulate) {
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v)
                    c[i][v] = _mm512_maskz_loadu_ps(m[v], C + i * ldc + 16 * v);
        } else {
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v) c[i][v] = _mm512_setzero_ps();
        }
        for (int64_t k = 0; k < kc; ++k) {
            __m512 b[NV];
            for (int v = 0; v < NV; ++v)
                b[v] = FULL ? _mm512_loadu_ps(B + 16 * v) : _mm512_maskz_loadu_ps(m[v], B + 16 * v);
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) {
                const __m512 a = _mm512_set1_ps(Ap.at(i));
                for (int v = 0; v < NV; ++v) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
            }
            Ap.next();
            B += ldb;
        }
        if (epi) {
            // c + bias, then ReLU as max(0, c): MAXPS returns its second operand when either
            // is NaN, and for -0.0, like the scalar c < 0 ? 0 : c. The mask keeps c where
            // mask > 0 (ordered: a NaN mask blocks).
            const __m512 zero = _mm512_setzero_ps();
            // (Every loop over the accumulators is unrolled, or they would live on the stack.)
            if (epi->bias) {
#pragma GCC unroll 2
                for (int v = 0; v < NV; ++v) {
                    const __m512 bv = _mm512_maskz_loadu_ps(m[v], epi->bias + 16 * v);
#pragma GCC unroll 12
                    for (int i = 0; i < R; ++i) c[i][v] = _mm512_add_ps(c[i][v], bv);
                }
            }
            if (epi->relu)
#pragma GCC unroll 12
                for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
                    for (int v = 0; v < NV; ++v) c[i][v] = _mm512_max_ps(zero, c[i][v]);
            if (epi->mask)
#pragma GCC unroll 12
                for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
                    for (int v = 0; v < NV; ++v) {
                        const __m512 mv =
                            _mm512_maskz_loadu_ps(m[v], epi->mask + i * epi->ldm + 16 * v);
                        c[i][v] = _mm512_maskz_mov_ps(
                            _mm512_cmp_ps_mask(mv, zero, _CMP_GT_OQ), c[i][v]);
                    }
        }
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(C + i * ldc + 16 * v, m[v], c[i][v]);
    }
};

}  // namespace
}  // namespace avx512
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx512
#include "common/gemm_driver.h"
