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

#include "fastdense/kernels.h"

namespace fastdense {
namespace avx512 {
namespace {

struct Ukernel {
    static constexpr int MR = 12, NR = 32;
    // KC: a 32-wide B micro-panel of KC rows (32 KiB) stays in L1 while the MC x KC block of A
    // (192 KiB) streams from L2; NC x KC of packed B (4 MiB) sits in L3.
    static constexpr int64_t KC = 256, MC = 192, NC = 4096;

    template <int R>
    static void run(int64_t kc, const float* Ap, const float* B, int64_t ldb, float* C,
                    int64_t ldc, bool accumulate, int nr) {
        // Ap is (kc, MR) packed (R rows used), B is (kc, 32) with row stride ldb,
        // C is (R, nr) with row stride ldc
        // Masked loads and stores handle a narrow right edge in place: no scratch tile, and
        // masked-off lanes of C are never touched.
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
        const __mmask16 m1 =
            nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : static_cast<__mmask16>((1u << (nr - 16)) - 1);
        __m512 c[R][2];
        if (accumulate) {
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) {
                c[i][0] = _mm512_maskz_loadu_ps(m0, C + i * ldc);
                c[i][1] = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);
            }
        } else {
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) c[i][0] = c[i][1] = _mm512_setzero_ps();
        }
        for (int64_t k = 0; k < kc; ++k) {
            const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
#pragma GCC unroll 12
            for (int i = 0; i < R; ++i) {
                const __m512 a = _mm512_set1_ps(Ap[i]);
                c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
                c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
            }
            Ap += MR;
            B += ldb;
        }
#pragma GCC unroll 12
        for (int i = 0; i < R; ++i) {
            _mm512_mask_storeu_ps(C + i * ldc, m0, c[i][0]);
            _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c[i][1]);
        }
    }
};

}  // namespace
}  // namespace avx512
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx512
#include "common/gemm_driver.h"
