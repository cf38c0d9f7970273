// Input checks (see checks.h). Plain C++: a memory-bound scan needs no ISA-specific code, and
// the compiler vectorises the exponent test below with the baseline flags.
#include "fastdense/checks.h"

#include <cstdint>
#include <cstring>

#include "fastdense/parallel.h"

namespace fastdense {
namespace {

// Blocks of this many floats are tested with a branch-free OR of the exponent test, so the
// loop vectorises; only a block that fails is scanned again for the exact index.
constexpr int64_t kBlock = 4096;
constexpr int kMaxCheckParts = 64;  // threads that split one scan, at most

bool non_finite(uint32_t bits) {
    return (bits & 0x7f800000u) == 0x7f800000u;  // exponent all ones: inf or NaN
}

int64_t scan(const float* x, int64_t b, int64_t e) {
    // x[b..e): the first non-finite index, or -1
    for (int64_t i = b; i < e; i += kBlock) {
        const int64_t end = e - i < kBlock ? e : i + kBlock;
        uint32_t any = 0;
        for (int64_t j = i; j < end; ++j) {
            uint32_t bits;
            std::memcpy(&bits, x + j, sizeof bits);
            any |= non_finite(bits);
        }
        if (any)
            for (int64_t j = i; j < end; ++j) {
                uint32_t bits;
                std::memcpy(&bits, x + j, sizeof bits);
                if (non_finite(bits)) return j;
            }
    }
    return -1;
}

}  // namespace

int64_t first_non_finite(const float* x, int64_t n) {
    // x is (n)
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    const int t = threads_for(n * 8, blocks < kMaxCheckParts ? blocks : kMaxCheckParts);
    int64_t found[kMaxCheckParts];
    for (int p = 0; p < t; ++p) found[p] = -1;  // also for parts a smaller team leaves out
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, kBlock, &b, &e);
        if (b < e) found[p] = scan(x, b, e);
    });
    for (int p = 0; p < t; ++p)
        if (found[p] >= 0) return found[p];  // parts are in index order
    return -1;
}

}  // namespace fastdense
