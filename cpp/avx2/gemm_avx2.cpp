// AVX2+FMA GEMM: a 6x16 register micro-kernel plugged into the shared Goto/BLIS driver.
// Built with -mavx2 -mfma (CMake), used only when CPUID and XGETBV both say so.
//
// Why 6x16: 6 rows x two YMM vectors of columns is 12 accumulators; with the two B vectors
// and one broadcast that is 15 of the 16 YMM registers (the BLIS/OpenBLAS Haswell shape).
#include <immintrin.h>

#include <cstdint>

#include "avx2/lanes.h"
#include "common/tile_epilogue.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace avx2 {
namespace {

struct Ukernel {
    static constexpr int MR = 6, NR = 16;
    // A 16-wide B micro-panel of KC rows (32 KiB) streams through L1; the MC x KC A block
    // (192 KiB) stays in L2; packed B (NC x KC, 2 MiB) in L3, and so does the M x NC block of
    // C that every K block loads and stores again, up to M = 4096 (16 MiB; Zen 3 has 32 MiB
    // of L3). With NC = 4096 that block of a 4096³ GEMM was 64 MiB and went to memory:
    // NC = 1024 was 1.05-1.07x there on 1 thread, 1.02-1.08x on 2, within noise at 2048³;
    // MC = 192 was not better (same-process A/B on a Zen 3 guest).
    // KC = 512 rather than 256 (which kept the B panel in L1, 16 KiB): half the passes over
    // C. One build with the K block switched at run time, interleaved samples, Zen 3 guest:
    // 1 thread 512³ 1.02-1.03x, 1024³ 1.02-1.04x, 2048³ 1.02-1.07x, 4096³ X·W 1.04x,
    // 256x1024·1024x1024 1.00-1.05x, 100x784·784x100 1.00-1.02x (X·W, 784 = 512 + 272:
    // 1.02x); 2 threads 512³ and 1024³ 1.04-1.06x, 256x784·784x1024 1.00-1.03x; steps
    // 784-100-10 b100 1.01x, 784-1024-1024-10 b256 1.01x, 4096-4096-4096-10 b1024 1.03x.
    // KC = 384 and 448 were 1-4% slower than 512, 640 no faster. (Earlier, compared as two
    // builds, 512 had looked within that harness's 1.5-3% bias.)
    static constexpr int64_t KC = 512, MC = 96, NC = 1024;

    // The driver prefetches the next tile's C rows into L2 when C is larger than L2: same-
    // process A/B on a Zen 3 guest, 1 thread: 512³ 1.02-1.05x, 1024³ and 2048³ 0.98-1.08x;
    // 2 threads: 1024³ and 2048³ 1.03-1.07x; the next B panel as well: 0.94-0.98x.
    static constexpr bool kPrefetchC = true;

    // B loads are full-width: the driver packs a partial-width right-edge panel, zero-padded
    // to NR, so a tile may read all NR floats of any panel narrower than NR.
    static constexpr bool kMaskedB = false;
    // A batch of one or two rows is latency-bound in the 6x16 tile: each k adds one FMA to
    // only 2R accumulators, and the next k must wait for them (4 cycles on Zen 3, with two
    // FMA pipes: 8 chains in flight keep them busy). run_wide walks 64 / R columns at once
    // instead (8 independent chains), still one FMA per k per element.
    static constexpr int kWideRows = 2;

    template <int R>
    static void run_wide(int64_t kc, const float* Ap, const float* B, int64_t ldb, float* C,
                         int64_t ldc, bool accumulate, int64_t nc) {
        // Ap is (kc, MR) packed (R rows used), B is (kc, nc) with row stride ldb (read in
        // place), C is (R, nc) with row stride ldc
        // 8 chains per pass: 64 columns for one row, 32 for two
        constexpr int NV = 8 / R;
        int64_t j0 = 0;
        for (; j0 + 8 * NV <= nc; j0 += 8 * NV)
            wide<R, NV, false>(kc, Ap, B + j0, ldb, C + j0, ldc, accumulate, 8 * NV);
        const int64_t rest = nc - j0;
        float* c = C + j0;
        const float* b = B + j0;
        switch ((rest + 7) / 8) {  // the last columns: as many vectors as they need
            case 1: return wide<R, 1, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 2: return wide<R, 2, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 3: return wide<R, 3, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 4: return wide<R, 4, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 5: return wide<R, 5 < NV ? 5 : NV, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 6: return wide<R, 6 < NV ? 6 : NV, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 7: return wide<R, 7 < NV ? 7 : NV, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            case 8: return wide<R, NV, true>(kc, Ap, b, ldb, c, ldc, accumulate, rest);
            default: return;  // nothing left
        }
    }

    template <int R, int NV, bool MASKED>
    static void wide(int64_t kc, const float* Ap, const float* B, int64_t ldb, float* C,
                     int64_t ldc, bool accumulate, int64_t w) {
        // as run_wide, w <= 8 * NV columns; MASKED: the last vector holds only the columns
        // left of w, loaded through a lane mask and stored by store_first (nothing past
        // column w is read or written)
        const int64_t tail = w - 8 * (NV - 1);  // 1..8 lanes of the last vector
        const __m256i m = lane_mask(MASKED ? tail : 8);
        auto load = [&](const float* p, int v) {
            return MASKED && v == NV - 1 ? _mm256_maskload_ps(p + 8 * v, m)
                                         : _mm256_loadu_ps(p + 8 * v);
        };
        __m256 c[R][NV];
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < NV; ++v)
                c[i][v] = accumulate ? load(C + i * ldc, v) : _mm256_setzero_ps();
        for (int64_t k = 0; k < kc; ++k) {
            __m256 b[NV];
            for (int v = 0; v < NV; ++v) b[v] = load(B, v);
            for (int i = 0; i < R; ++i) {
                const __m256 a = _mm256_broadcast_ss(Ap + i);
                for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
            }
            Ap += MR;
            B += ldb;
        }
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < NV; ++v) {
                if (MASKED && v == NV - 1) store_first(C + i * ldc + 8 * v, c[i][v], tail);
                else _mm256_storeu_ps(C + i * ldc + 8 * v, c[i][v]);
            }
    }

    // run() applies the bias, ReLU and mask epilogues itself: to its registers on a full tile,
    // on the way out of the scratch tile on a partial one.
    static constexpr bool kFusedEpilogue = true;
    // No column-wise narrow edge per tile (see the AVX-512 kernel); narrow_block below runs
    // one over a whole block of packed rows instead.
    static constexpr int kNarrowCols = 0;
    static constexpr int64_t kNarrowMinK = 16;
    static constexpr int kNarrowBlockCols = 4;

    // A right edge of at most 4 columns over a block of packed A (mc rows in MR-row slivers,
    // k-major): the vectors run down a sliver's rows (6 of 8 lanes), so a k costs one FMA per
    // column, and two slivers at a time keep 2 x nr chains in flight. The 8-wide edge tile
    // cost 6 FMAs, 6 broadcasts and a load per k for nr x 6 results, about as much as a
    // 16-wide panel: with N = 100, 10-12% of an X·W went to 4 columns of 100. Each
    // element is still one FMA chain over k in order, and a*b == b*a exactly, so the bits
    // are those of the row tiles. C goes in and out through a transposed scratch tile; the
    // driver applies the bias, ReLU or mask afterwards (its scalar epilogue).
    // Same-process A/B on a Zen 3 guest, 1 thread: X·W 100x784·784x100 1.02-1.05x,
    // 32x784·784x100 1.02-1.07x, 256x1024·1024x100 1.07x; Xᵀ·dY (dW of 784x100) 1.00-1.04x;
    // the 784-100-10 step at batch 100 on 2 threads 1.00-1.04x, bitwise-equal.
    static void narrow_block(int64_t kc, const float* Ap, int64_t mc, const float* B,
                             int64_t ldb, float* C, int64_t ldc, bool accumulate, int nr) {
        // Ap is mc rows packed (sliver s at Ap + s * MR * kc), B is (kc, nr <= 4) with row
        // stride ldb, C is (mc, nr) with row stride ldc
        switch (nr) {
            case 1: return narrow_cols<1>(kc, Ap, mc, B, ldb, C, ldc, accumulate);
            case 2: return narrow_cols<2>(kc, Ap, mc, B, ldb, C, ldc, accumulate);
            case 3: return narrow_cols<3>(kc, Ap, mc, B, ldb, C, ldc, accumulate);
            default: return narrow_cols<4>(kc, Ap, mc, B, ldb, C, ldc, accumulate);
        }
    }

    template <int NC>
    static void narrow_cols(int64_t kc, const float* Ap, int64_t mc, const float* B,
                            int64_t ldb, float* C, int64_t ldc, bool accumulate) {
        // two slivers at a time; the last 1-11 rows as one or two
        for (int64_t r = 0; r < mc; r += 2 * MR) {
            const int64_t rows = mc - r < 2 * MR ? mc - r : 2 * MR;
            float* c = C + r * ldc;
            if (rows > MR) columns<NC, 2>(kc, Ap + r * kc, rows, B, ldb, c, ldc, accumulate);
            else columns<NC, 1>(kc, Ap + r * kc, rows, B, ldb, c, ldc, accumulate);
        }
    }

    template <int NC, int S>
    static void columns(int64_t kc, const float* Ap, int64_t rows, const float* B,
                        int64_t ldb, float* C, int64_t ldc, bool accumulate) {
        // S slivers of packed A from Ap (kc * MR floats apart), `rows` rows in all
        // (<= S * MR); C is (rows, NC); c[s][j] holds column j of sliver s. Lanes 6 and 7
        // of a sliver's vector are loaded as zeros and dropped.
        alignas(32) float t[S][NC][8] = {};
        __m256i m[S];
        for (int s = 0; s < S; ++s) m[s] = lane_mask(rows - s * MR < MR ? rows - s * MR : MR);
        auto each_row = [&](auto f) {  // f(row, s, i) for the rows of C
            for (int s = 0; s < S; ++s)
                for (int i = 0; i < MR && s * MR + i < rows; ++i) f(s * MR + i, s, i);
        };
        __m256 c[S][NC];
        if (accumulate)
            each_row([&](int64_t row, int s, int i) {
                for (int j = 0; j < NC; ++j) t[s][j][i] = C[row * ldc + j];
            });
        for (int s = 0; s < S; ++s)
            for (int j = 0; j < NC; ++j) c[s][j] = _mm256_load_ps(t[s][j]);
        // (four k per pass: 1.02-1.03x on those shapes, as for the tiles' eight)
#pragma GCC unroll 4
        for (int64_t k = 0; k < kc; ++k) {
            __m256 a[S];
            for (int s = 0; s < S; ++s) a[s] = _mm256_maskload_ps(Ap + s * kc * MR + k * MR, m[s]);
            for (int j = 0; j < NC; ++j) {
                const __m256 b = _mm256_broadcast_ss(B + k * ldb + j);
                for (int s = 0; s < S; ++s) c[s][j] = _mm256_fmadd_ps(a[s], b, c[s][j]);
            }
        }
        for (int s = 0; s < S; ++s)
            for (int j = 0; j < NC; ++j) _mm256_store_ps(t[s][j], c[s][j]);
        each_row([&](int64_t row, int s, int i) {
            for (int j = 0; j < NC; ++j) C[row * ldc + j] = t[s][j][i];
        });
    }

    // run() reads a caller's A in place (lda != 0) where a block has at most 2 column panels
    // (32 columns), and a caller's row-major B where it has at most 12 rows (two slivers; a
    // batch of one or two is run_wide's, which always reads B in place). Past that, packing
    // both, with the vector copies of pack_rows and pack_b, costs less than the in-place
    // tiles lose (in place, an Xᵀ sliver takes a line of its own every k, from rows 3 KiB
    // apart, and with B's rows 400 B apart half the 16-float loads straddle two lines, where
    // packed panels are contiguous). On a Zen 3 guest, 1 thread, same-process A/B:
    // 100x784·784x100 X·W 1.03x, dY·Wᵀ 1.03x, Xᵀ·dY 1.08x, 100x100·100x10 unchanged; a
    // 784-100-10 step at batch 100 on 2 threads 1.05-1.09x, at 1, 32 and 256 unchanged.
    // (With packing's scalar copies, reading in place had won up to 8 panels and 128 rows.)
    static constexpr bool kDirectAT = true;
    static constexpr int64_t kDirectATPanels = 2;
    static constexpr int64_t kDirectAPanels = 2;
    static constexpr int64_t kDirectBMaxRows = 12;

    // pack_rows packs a full MR-row sliver of a row-major A, or a full NR-wide panel of a
    // transposed B, by 8x8 transposes in registers (the driver's scalar loops store one float
    // at a time).
    static constexpr bool kPackRows = true;

    template <int ROWS>
    static void pack_rows(float* dst, const float* src, int64_t lda, int64_t kc) {
        // src is (ROWS, kc) with row stride lda; dst[k*ROWS + i] = src[i*lda + k]
        // Groups of up to 8 rows by 8 k: after the transpose, o[j] holds the group's rows at
        // k + j, which is 8 floats of the panel at (k + j)*ROWS (6 of them for a 6-row
        // sliver: its o[j] overlap, each store's 2 extra lanes overwritten by the next one,
        // and the last stores only its 6).
        static_assert(ROWS == 6 || ROWS % 8 == 0, "a 6-row sliver or whole groups of 8 rows");
        constexpr int G = ROWS < 8 ? ROWS : 8;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            for (int g = 0; g < ROWS; g += G) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i)
                    r[i] = i < G ? _mm256_loadu_ps(src + (g + i) * lda + k) : _mm256_setzero_ps();
                __m256 o[8];
                transpose8(r, o);
                float* d = dst + k * ROWS + g;
                if (G == 8) {
                    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d + j * ROWS, o[j]);
                } else {
                    for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + j * ROWS, o[j]);
                    _mm_storeu_ps(d + 7 * ROWS, _mm256_castps256_ps128(o[7]));
                    _mm_storel_pi(reinterpret_cast<__m64*>(d + 7 * ROWS + 4),
                                  _mm256_extractf128_ps(o[7], 1));
                }
            }
        }
        for (; k < kc; ++k)
            for (int i = 0; i < ROWS; ++i) dst[k * ROWS + i] = src[i * lda + k];
    }

    // o[j][i] = r[i][j]: an 8x8 transpose (unpack pairs of rows, shuffle pairs of pairs,
    // then swap 128-bit halves).
    [[gnu::always_inline]] static inline void transpose8(const __m256* r, __m256* o) {
        __m256 t[8], s[8];
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
            s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
        }
        for (int j = 0; j < 4; ++j) {
            o[j] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x20);
            o[j + 4] = _mm256_permute2f128_ps(s[j], s[j + 4], 0x31);
        }
    }

    template <int R>
    static void run(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb,
                    float* C, int64_t ldc, bool accumulate, int nr, const TileEpilogue* epi) {
        // A is (R, kc): packed k-major with stride MR when lda == 0, the caller's k-major
        // matrix (Xᵀ of a row-major X), -lda floats between consecutive k, when lda < 0, else
        // the caller's row-major matrix with row stride lda; B is (kc, 16) with row stride
        // ldb (all 16 readable, zero past nr), C is (R, nr) with row stride ldc; epi, when not
        // null, is applied before the store
        if (lda == 0) by_width<R>(kc, APacked{A}, B, ldb, C, ldc, accumulate, nr, epi);
        else if (lda < 0) by_width<R>(kc, AColumns{A, -lda}, B, ldb, C, ldc, accumulate, nr, epi);
        else by_width<R>(kc, ARows{A, lda}, B, ldb, C, ldc, accumulate, nr, epi);
    }

    // The ways a tile reads A(i, k): from a packed panel, or in place from the caller's
    // k-major (Xᵀ) or row-major matrix.
    struct APacked {
        const float* p;
        const float* at(int i) const { return p + i; }
        void next() { p += MR; }
    };
    struct AColumns {  // k-major in place (Xᵀ of a row-major X): A(i, k) = p[k * ks + i]
        const float* p;
        int64_t ks;
        const float* at(int i) const { return p + i; }
        void next() { p += ks; }
    };
    struct ARows {
        const float* p;
        int64_t ld;
        const float* at(int i) const { return p + i * ld; }
        void next() { ++p; }
    };

    // A right edge narrower than NR runs on a scratch tile (AVX2 has no cheap masked store;
    // Zen 3 microcodes VMASKMOVPS to memory), with one vector per row where it is at most 8
    // wide: half the FMAs, none of them for columns that are dropped (N = 100 leaves 4). The
    // epilogue runs in the tile's registers as on a full tile, on copies of the bias and mask
    // padded with zeros to NR columns (the caller's arrays may end at column nr), and the
    // rows go in and out by copy_first (lanes.h): element by element, with the epilogue's
    // tests per element, they took a third of a 100x100·100x10 X·W with bias.
    template <int R, class AP>
    static void by_width(int64_t kc, AP Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                         bool accumulate, int nr, const TileEpilogue* epi) {
        if (nr == NR) {
            tile<R, 2>(kc, Ap, B, ldb, C, ldc, accumulate, epi);
            return;
        }
        static_assert(NR <= 16, "copy_first copies at most 16 floats");
        alignas(32) float t[R * NR];  // lanes past nr are computed and dropped
        if (accumulate) {  // the tile loads t: zeros past nr (finite, never subnormal)
            for (int i = 0; i < R * NR; ++i) t[i] = 0.0f;
            for (int i = 0; i < R; ++i) copy_first(t + i * NR, C + i * ldc, nr);
        }
        TileEpilogue padded;
        alignas(32) float bias[NR];
        alignas(32) float mask[R * NR];
        if (epi) {
            padded = *epi;
            if (epi->bias) {
                for (int j = 0; j < NR; ++j) bias[j] = 0.0f;
                copy_first(bias, epi->bias, nr);
                padded.bias = bias;
            }
            if (epi->mask) {  // zeros past nr: those lanes are dropped anyway
                for (int i = 0; i < R * NR; ++i) mask[i] = 0.0f;
                for (int i = 0; i < R; ++i)
                    copy_first(mask + i * NR, epi->mask + i * epi->ldm, nr);
                padded.mask = mask;
                padded.ldm = NR;
            }
            epi = &padded;
        }
        if (nr <= 8) tile<R, 1>(kc, Ap, B, ldb, t, NR, accumulate, epi);
        else tile<R, 2>(kc, Ap, B, ldb, t, NR, accumulate, epi);
        for (int i = 0; i < R; ++i) copy_first(C + i * ldc, t + i * NR, nr);
    }

    template <int R, int NV, class AP>
    static void tile(int64_t kc, AP Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                     bool accumulate, const TileEpilogue* epi) {
        // as run(), the first 8 * NV columns, all of them stored
        __m256 c[R][NV];
        if (accumulate) {
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v) c[i][v] = _mm256_loadu_ps(C + i * ldc + 8 * v);
        } else {
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i)
                for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_ps();
        }
        // Eight k per pass: the same instructions in the same order, with one loop test and
        // one set of pointer increments per 8 k. On a Zen 3 guest, 1 thread, same-process
        // A/B: 1024³ and 2048³ 1.05-1.09x in all three forms, 100x784·784x100 1.08-1.10x,
        // 100x100·100x10 1.00-1.07x; 4 or 16 k per pass 0.97-1.01x against 8.
#pragma GCC unroll 8
        for (int64_t k = 0; k < kc; ++k) {
            __m256 b[NV];
            for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(B + 8 * v);
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) {
                const __m256 a = _mm256_broadcast_ss(Ap.at(i));
                for (int v = 0; v < NV; ++v) c[i][v] = _mm256_fmadd_ps(a, b[v], c[i][v]);
            }
            Ap.next();
            B += ldb;
        }
        if (epi) {
            // c + bias, then ReLU as max(0, c): MAXPS returns its second operand when either
            // is NaN, and for -0.0, like the scalar c < 0 ? 0 : c. The mask keeps c where
            // mask > 0 (ordered: a NaN mask blocks) and gives +0.0 elsewhere.
            const __m256 zero = _mm256_setzero_ps();
            if (epi->bias) {
#pragma GCC unroll 2
                for (int v = 0; v < NV; ++v) {
                    const __m256 bv = _mm256_loadu_ps(epi->bias + 8 * v);
#pragma GCC unroll 6
                    for (int i = 0; i < R; ++i) c[i][v] = _mm256_add_ps(c[i][v], bv);
                }
            }
            if (epi->relu)
#pragma GCC unroll 6
                for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
                    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_max_ps(zero, c[i][v]);
            if (epi->mask)
#pragma GCC unroll 6
                for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
                    for (int v = 0; v < NV; ++v) {
                        const __m256 mv = _mm256_loadu_ps(epi->mask + i * epi->ldm + 8 * v);
                        c[i][v] = _mm256_and_ps(_mm256_cmp_ps(mv, zero, _CMP_GT_OQ), c[i][v]);
                    }
        }
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i)
            for (int v = 0; v < NV; ++v) _mm256_storeu_ps(C + i * ldc + 8 * v, c[i][v]);
    }
};

}  // namespace
}  // namespace avx2
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx2
#include "common/gemm_driver.h"
