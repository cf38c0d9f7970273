// Input checks that would cost a pass over a whole dataset in numpy.
#pragma once

#include <cstdint>

namespace fastdense {

// Index of the first NaN or infinity in x[0..n), or -1 if every value is finite. One
// read-only pass, split across the kernel threads (memory-bound: a 60000x784 float32
// training set is 188 MB).
int64_t first_non_finite(const float* x, int64_t n);

}  // namespace fastdense
