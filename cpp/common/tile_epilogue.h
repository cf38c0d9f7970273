// What a register tile applies to its finished accumulators before storing them, when it
// holds the last K block of its C tile: the forward's bias and ReLU, or the backward's ReLU
// mask. In the same order and with the same float operations as the driver's scalar epilogue
// (c + bias, then c < 0 ? 0 : c; or mask > 0 ? c : 0), so the bits do not depend on which of
// the two applied it.
#pragma once

#include <cstdint>

namespace fastdense {

struct TileEpilogue {
    const float* bias = nullptr;  // this tile's first column of the (N) bias, or null
    const float* mask = nullptr;  // this tile's (0, 0) in a C-shaped mask, or null
    int64_t ldm = 0;              // the mask's row stride
    bool relu = false;
};

}  // namespace fastdense
