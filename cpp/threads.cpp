// The kernels' thread count: OpenMP's, so OMP_NUM_THREADS works as users expect, and
// settable from Python. Without OpenMP everything runs on the calling thread. Also the
// process-wide denormal switch that fp_mode.h applies to every kernel call.
#include <atomic>

#include "fastdense/fp_mode.h"
#include "fastdense/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastdense {

int num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

namespace {
std::atomic<bool> g_flush_denormal{true};
}

bool flush_denormal() { return g_flush_denormal.load(std::memory_order_relaxed); }

void set_flush_denormal(bool enabled) {
    g_flush_denormal.store(enabled, std::memory_order_relaxed);
}

}  // namespace fastdense
