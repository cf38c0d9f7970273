// Thread-count policy shared by every kernel: one OpenMP team, and no team at all for work
// too small to pay for waking it (a fork/join costs a few microseconds; a 784x100 GEMV-like
// batch-1 layer takes about as long in total).
//
// Everything here is `static inline` on purpose: this header is included by translation units
// compiled with different -m flags, and a shared (COMDAT) copy could be the AVX-512 one.
#pragma once

#include <atomic>
#include <cstdint>

#include "fastdense/fp_mode.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastdense {

// Work below this many multiply-adds (or element updates) runs on the calling thread.
constexpr int64_t kMinParallelWork = int64_t(1) << 18;

// Threads to use for `work` units that can be split into at most `max_parts` pieces.
static inline int threads_for(int64_t work, int64_t max_parts) {
#ifdef _OPENMP
    if (work < kMinParallelWork || max_parts < 2) return 1;
    int64_t t = omp_get_max_threads();
    if (t > max_parts) t = max_parts;
    return t < 1 ? 1 : static_cast<int>(t);
#else
    (void)work;
    (void)max_parts;
    return 1;
#endif
}

// [begin, end) of part `p` out of `parts` over `n` items, in whole multiples of `align`
// (the last part takes the remainder). Depends only on n, parts and align.
static inline void split_range(int64_t n, int parts, int p, int64_t align, int64_t* begin,
                               int64_t* end) {
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * p / parts, b1 = blocks * (p + 1) / parts;
    *begin = b0 * align < n ? b0 * align : n;
    *end = b1 * align < n ? b1 * align : n;
}

// Whether the training step's forward of an (M,K)·(K,N) layer splits K rather than the batch
// across the team (gemm_driver.h, gemm_split_k2): with the batch split both cores read all of
// W, then each writes half of it in the fused SGD of the weight gradient, whose threads split
// dW's K rows. Only for a team of exactly two (a wider team keeps the batch split) and
// 256 < K <= 8192 (from 257 the weight-gradient GEMM splits its K rows over the same two
// threads), and only for a batch of one. A batch of 32..256 rows split K too until the AVX2
// tile was measured on a Zen 3 guest whose two cores are ~190 ns apart (a cache line's round
// trip ~370 ns): there every unit's partial sums crossing from one core to the other cost more
// than the W lines the batch split shares; the 784-100-10 b100 step was 7-14% faster with the
// batch split (same-process A/B, fixed and gathered batches; units of 6x16, 6x48 and
// 6x100 alike), and b256 within noise. (On Zen 4, with the 12x32 tile, K split had won by
// 8-10%: docs/benchmarks.md.)
static inline bool forward_splits_k(int64_t M, int64_t K, int64_t N) {
#ifdef _OPENMP
    if (omp_get_max_threads() != 2 || K <= 256 || K > 8192) return false;
    // A batch of one (W of at least 64 Ki floats): too little arithmetic to share, but W is
    // read in the forward and then updated. Split, each core reads and updates only its own
    // half, from its own cache (784-100-10 b1: 20.7 -> 15.5 us); the one-thread forward
    // would leave all of W in one core's cache for the other to take.
    return M == 1 && K * N >= (int64_t(1) << 16);
#else
    (void)M;
    (void)K;
    (void)N;
    return false;
#endif
}

// Rows [0, n) of one GEMM handed out to a team of at most two threads from both ends: part 0
// claims from the front, part 1 from the back, each time a quarter of what is left (at least
// `min` rows), until the two meet. A core that runs slower for a while (on a shared host, a
// busy sibling hyperthread halves its FMA rate) then takes fewer rows, where a fixed half
// made the other core wait for it. Claims begin at multiples of `align` counted from row 0,
// so the register tiles are those of a static split, and with equal speeds each part ends
// near the middle, on rows it gathered or updated in the previous step. Which thread runs a
// row does not change its bits: each output is one FMA chain whatever the thread. (In an
// unnamed namespace, like everything here, so each ISA's translation unit has its own copy.)
namespace {
class TwoEndedRows {
  public:
    TwoEndedRows(int64_t n, int64_t align, int64_t min)
        : ends_(static_cast<uint64_t>(n) << 32), align_(align), min_(min) {}

    // The next rows [*begin, *end) for `part` (0 or 1); false once none are left.
    bool claim(int part, int64_t* begin, int64_t* end) {
        uint64_t s = ends_.load(std::memory_order_relaxed);
        for (;;) {
            const int64_t lo = static_cast<int64_t>(s & 0xffffffffu);
            const int64_t hi = static_cast<int64_t>(s >> 32);
            if (lo >= hi) return false;
            const int64_t want = (hi - lo) / 4 > min_ ? (hi - lo) / 4 : min_;
            int64_t b = lo, e = hi;
            if (part == 0) {
                const int64_t up = (lo + want + align_ - 1) / align_ * align_;
                e = up < hi ? up : hi;
            } else {
                const int64_t down = hi - want > lo ? (hi - want) / align_ * align_ : lo;
                b = down > lo ? down : lo;
            }
            const uint64_t next = part == 0 ? (s & ~uint64_t(0xffffffffu)) | uint64_t(e)
                                            : (uint64_t(b) << 32) | uint64_t(lo);
            if (ends_.compare_exchange_weak(s, next, std::memory_order_relaxed)) {
                *begin = b;
                *end = e;
                return true;
            }
        }
    }

  private:
    alignas(64) std::atomic<uint64_t> ends_;  // the front in the low 32 bits, the back above
    int64_t align_, min_;
};
}  // namespace

// Runs body(part, parts) on a team of t threads, or on the caller when t == 1 / no OpenMP.
// parts is the team size OpenMP actually granted. Every thread of the team runs in the
// caller's floating-point mode (fp_mode.h), so denormals are flushed, or not, whatever the
// thread count. (A function template with internal linkage, so each ISA's translation unit
// keeps its own copy.)
template <class Body>
static void run_parts(int t, const Body& body) {
#ifdef _OPENMP
    if (t > 1) {
        const unsigned csr = fp_mode_get();
#pragma omp parallel num_threads(t)
        {
            FpModeScope mode(csr);
            body(omp_get_thread_num(), omp_get_num_threads());
        }
        return;
    }
#else
    (void)t;
#endif
    body(0, 1);
}

}  // namespace fastdense
