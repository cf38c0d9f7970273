// AVX2+FMA GEMM: a 6x16 register micro-kernel plugged into the shared Goto/BLIS driver.
// Built with -mavx2 -mfma (CMake), used only when CPUID and XGETBV both say so.
//
// Why 6x16: 6 rows x two YMM vectors of columns is 12 accumulators; with the two B vectors
// and one broadcast that is 15 of the 16 YMM registers (the BLIS/OpenBLAS Haswell shape).
#include <immintrin.h>

#include <cstdint>

#include "common/tile_epilogue.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace avx2 {
namespace {

struct Ukernel {
    static constexpr int MR = 6, NR = 16;
    // A 16-wide B micro-panel of KC rows (16 KiB) stays in L1; the MC x KC A block (96 KiB)
    // in L2; packed B (NC x KC, 4 MiB) in L3.
    static constexpr int64_t KC = 256, MC = 96, NC = 4096;

    // B loads are full-width: the driver packs a partial-width right-edge panel.
    static constexpr bool kMaskedB = false;
    // No separate kernel for one- or two-row batches (see the AVX-512 run_wide).
    static constexpr int kWideRows = 0;
    template <int R>
    static void run_wide(int64_t, const float*, const float*, int64_t, float*, int64_t, bool,
                         int64_t) {}

    // The driver applies the epilogues after the tile (run's epi is always null), and packs
    // row-major A with its scalar loop.
    static constexpr bool kFusedEpilogue = false;
    // No column-wise narrow edge (see the AVX-512 kernel).
    static constexpr int kNarrowCols = 0;
    static constexpr int64_t kNarrowMinK = 0;
    static constexpr bool kPackRows = false;
    // A k-major A (Xᵀ) is always packed: run's lda is never negative. (Read in place, with
    // this tile's 16-wide panels reusing each 6-row sliver twice as often, it was 9-14%
    // slower at 256x784ᵀ·256x1024 and 1000³, though 34% faster at 100x100ᵀ·100x10.)
    static constexpr bool kDirectAT = false;
    template <int ROWS>
    static void pack_rows(float*, const float*, int64_t, int64_t) {}

    template <int R>
    static void run(int64_t kc, const float* A, int64_t lda, const float* B, int64_t ldb,
                    float* C, int64_t ldc, bool accumulate, int nr, const TileEpilogue*) {
        // A is (R, kc): packed k-major with stride MR when lda == 0, else the caller's
        // row-major matrix with row stride lda; B is (kc, 16) with row stride ldb,
        // C is (R, nr) with row stride ldc
        if (lda == 0) edge<R>(kc, APacked{A}, B, ldb, C, ldc, accumulate, nr);
        else edge<R>(kc, ARows{A, lda}, B, ldb, C, ldc, accumulate, nr);
    }

    // The two ways a tile reads A(i, k): from a packed panel, or in place from row-major rows.
    struct APacked {
        const float* p;
        const float* at(int i) const { return p + i; }
        void next() { p += MR; }
    };
    struct ARows {
        const float* p;
        int64_t ld;
        const float* at(int i) const { return p + i * ld; }
        void next() { ++p; }
    };

    template <int R, class AP>
    static void edge(int64_t kc, AP Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                     bool accumulate, int nr) {
        if (nr < NR) {
            // AVX2 has no cheap masked store: run the full width on a scratch tile and copy
            // the valid columns (edge panels only).
            alignas(32) float tile[R * NR];
            if (accumulate)
                for (int i = 0; i < R; ++i)
                    for (int j = 0; j < nr; ++j) tile[i * NR + j] = C[i * ldc + j];
            full<R>(kc, Ap, B, ldb, tile, NR, accumulate);
            for (int i = 0; i < R; ++i)
                for (int j = 0; j < nr; ++j) C[i * ldc + j] = tile[i * NR + j];
            return;
        }
        full<R>(kc, Ap, B, ldb, C, ldc, accumulate);
    }

    template <int R, class AP>
    static void full(int64_t kc, AP Ap, const float* B, int64_t ldb, float* C, int64_t ldc,
                     bool accumulate) {
        // as run(), all 16 columns
        __m256 c[R][2];
        if (accumulate) {
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) {
                c[i][0] = _mm256_loadu_ps(C + i * ldc);
                c[i][1] = _mm256_loadu_ps(C + i * ldc + 8);
            }
        } else {
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm256_setzero_ps();
        }
        for (int64_t k = 0; k < kc; ++k) {
            const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
#pragma GCC unroll 6
            for (int i = 0; i < R; ++i) {
                const __m256 a = _mm256_broadcast_ss(Ap.at(i));
                c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
                c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
            }
            Ap.next();
            B += ldb;
        }
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
            _mm256_storeu_ps(C + i * ldc, c[i][0]);
            _mm256_storeu_ps(C + i * ldc + 8, c[i][1]);
        }
    }
};

}  // namespace
}  // namespace avx2
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx2
#include "common/gemm_driver.h"
