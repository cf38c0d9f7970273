// FMA throughput probe for AVX-512: the machine's measured FP32 peak, against which the
// benchmark suite states every figure. Twelve independent accumulator chains hide the FMA
// latency (4 cycles) across both FMA pipes (Zen 4 runs a ZMM FMA as two 256-bit halves).
#include <immintrin.h>

#include <cstdint>

namespace fastdense {
namespace avx512 {

double fma_probe(int64_t iters) {
    // iters rounds of 12 ZMM FMAs; returns the FLOPs done (2 per lane per FMA)
    __m512 acc[12];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
    for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
    // Keep the result observable so the loop is not removed.
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return 2.0 * 16 * 12 * static_cast<double>(iters);
}

}  // namespace avx512
}  // namespace fastdense
