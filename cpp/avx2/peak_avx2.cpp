// FMA throughput probe for AVX2: twelve independent YMM accumulator chains cover the FMA
// latency on two pipes.
#include <immintrin.h>

#include <cstdint>

namespace fastdense {
namespace avx2 {

double fma_probe(int64_t iters) {
    // iters rounds of 12 YMM FMAs; returns the FLOPs done (2 per lane per FMA)
    __m256 acc[12];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    volatile float sink = lanes[0];
    (void)sink;
    return 2.0 * 8 * 12 * static_cast<double>(iters);
}

}  // namespace avx2
}  // namespace fastdense
