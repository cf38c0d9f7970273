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
// Part 0's share of a two-thread column split, in 1/kColumnShareOne (see column_share).
std::atomic<int> g_column_share{kColumnShareOne / 2};
}

int column_share() { return g_column_share.load(std::memory_order_relaxed); }

void set_column_share(int share) {
    const int lo = kColumnShareMin, hi = kColumnShareOne - kColumnShareMin;
    g_column_share.store(share < lo ? lo : share > hi ? hi : share, std::memory_order_relaxed);
}

void record_column_split(double seconds0, double work0, double seconds1, double work1) {
    if (!(seconds0 > 0 && seconds1 > 0 && work0 > 0 && work1 > 0)) return;
    const double rate0 = work0 / seconds0, rate1 = work1 / seconds1;
    const double f = rate0 / (rate0 + rate1);
    // Within the dead band (rates within about 20% of each other) the halves stay: one call's
    // timing jitter must not tilt the next call's split.
    if (f > 0.5 - kColumnShareBand && f < 0.5 + kColumnShareBand)
        set_column_share(kColumnShareOne / 2);
    else
        set_column_share(static_cast<int>(f * kColumnShareOne + 0.5));
}

bool flush_denormal() { return g_flush_denormal.load(std::memory_order_relaxed); }

void set_flush_denormal(bool enabled) {
    g_flush_denormal.store(enabled, std::memory_order_relaxed);
}

}  // namespace fastdense
