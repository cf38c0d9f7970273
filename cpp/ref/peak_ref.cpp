// FMA throughput probe for the scalar reference: what the fallback path can reach.
#include <cmath>
#include <cstdint>

namespace fastdense {
namespace ref {

double fma_probe(int64_t iters) {
    // iters rounds of 8 independent scalar fmaf chains; returns the FLOPs done
    float acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = static_cast<float>(i);
    for (int64_t it = 0; it < iters; ++it)
        for (int i = 0; i < 8; ++i) acc[i] = std::fmaf(acc[i], 0.999999f, 1e-7f);
    float s = 0;
    for (int i = 0; i < 8; ++i) s += acc[i];
    volatile float sink = s;
    (void)sink;
    return 2.0 * 8 * static_cast<double>(iters);
}

}  // namespace ref
}  // namespace fastdense
