// The first lanes of a ymm register, for the AVX2 kernels' tails (elementwise_avx2.cpp and
// gemm_avx2.cpp): a lane mask for loads, and stores that write only the lanes asked for.
// Included only by translation units compiled with -mavx2 -mfma; everything is inline in an
// anonymous namespace, so no copy can be shared with another ISA's code.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace fastdense {
namespace avx2 {
namespace {

inline __m256i lane_mask(int64_t rem) {
    // rem: valid elements from this ymm on (may be <= 0 or >= 8); lane l set iff l < rem.
    int32_t r = rem < 0 ? 0 : rem > 8 ? 8 : static_cast<int32_t>(rem);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Stores lanes [0, rem) of v at p (all 8 for rem >= 8, none for rem <= 0). Not VMASKMOVPS:
// Zen 3 microcodes its store form, which made a 10-class softmax row (two masked tails)
// cost as much as a 16-class one; plain 128/64/32-bit stores of the lanes do not.
inline void store_first(float* p, __m256 v, int64_t rem) {
    if (rem >= 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 h = _mm256_castps256_ps128(v);
    if (rem >= 4) {
        _mm_storeu_ps(p, h);
        h = _mm256_extractf128_ps(v, 1);
        p += 4;
        rem -= 4;
    }
    if (rem >= 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
        h = _mm_movehl_ps(h, h);
        p += 2;
        rem -= 2;
    }
    if (rem >= 1) _mm_store_ss(p, h);
}

// dst[0:n] = src[0:n] for 0 <= n <= 16, touching no float past n on either side.
inline void copy_first(float* dst, const float* src, int64_t n) {
    if (n > 8) {
        _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
        dst += 8;
        src += 8;
        n -= 8;
    }
    store_first(dst, _mm256_maskload_ps(src, lane_mask(n)), n);
}

}  // namespace
}  // namespace avx2
}  // namespace fastdense
