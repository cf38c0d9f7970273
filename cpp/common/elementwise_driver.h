// The orchestration of the non-GEMM kernels shared by every ISA: thread ranges, the row split of
// softmax cross-entropy with its row-order mean, the SGD step's range split and the fixed
// chunking of the sum of squares. Only the single-threaded pieces differ per ISA; each ISA's
// elementwise_*.cpp defines them in its anonymous namespace, then defines FASTDENSE_ISA_NS and
// includes this file, so every exported kernel lives in that ISA's namespace and is compiled
// with that ISA's flags only.
//
// The ISA file must provide (each on the calling thread only):
//   void relu_forward_range(float* y, const float* x, int64_t n);       y = max(x, 0)
//   void relu_backward_range(float* dx, const float* dy, const float* y, int64_t n);
//   void softmax_row(float* loss, float* d, const float* z, int64_t y, int64_t C,
//                    float grad_scale);                                  one row; d may be null
//   double chunk_sum_squares(const float* x, int64_t len);               x at a multiple of 16
//   void sgd_range(float* param, float* buf, const float* grad, int64_t n, const SgdStep& s,
//                  float grad_scale);                                    buf null without momentum
// and may provide, defining FASTDENSE_ISA_SOFTMAX_ROWS (otherwise the rows go one by one
// through softmax_row):
//   void softmax_rows(float* losses, float* d, const float* z, Labels labels, int64_t b,
//                     int64_t e, int64_t C, float grad_scale);           rows [b, e) of (., C)
//                                                                        arrays; d may be null
// Everything here that decides the bits is ISA-independent: the elementwise kernels do not care
// where a range starts, and both reductions end in an order fixed by the sizes alone.
//
#ifndef FASTDENSE_ISA_NS
#error "define FASTDENSE_ISA_NS before including elementwise_driver.h"
#endif

#include <cstdint>

#include "fastdense/exp_poly.h"
#include "fastdense/kernels.h"
#include "fastdense/parallel.h"

namespace fastdense {
namespace FASTDENSE_ISA_NS {
namespace {

// Thread ranges start on 16-float (64-byte) boundaries so no two threads share a cache line.
constexpr int64_t kAlign = 16;


// Runs range(b, e) on each thread's kAlign-aligned part of [0, n), skipping empty parts.
template <class Range>
void for_ranges(int64_t n, const Range& range) {
    // n: element count; the parts depend only on n and the team size.
    run_parts(threads_for(n, (n + kAlign - 1) / kAlign), [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, kAlign, &b, &e);
        if (b < e) range(b, e);
    });
}

}  // namespace

void relu_forward(float* y, const float* x, int64_t n) {
    // x is (n), y is (n) and may alias x.
    for_ranges(n, [&](int64_t b, int64_t e) { relu_forward_range(y + b, x + b, e - b); });
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
    // dy, y are (n), dx is (n) and may alias dy.
    for_ranges(n, [&](int64_t b, int64_t e) {
        relu_backward_range(dx + b, dy + b, y + b, e - b);
    });
}

double softmax_xent(float* losses, float* dlogits, const float* logits, Labels labels,
                    int64_t M, int64_t C, float grad_scale) {
    // logits is (M,C), labels (M), losses (M), dlogits (M,C) or null.
    run_parts(threads_for(M * C, M), [&](int p, int parts) {
        int64_t b, e;
        split_range(M, parts, p, 1, &b, &e);
#ifdef FASTDENSE_ISA_SOFTMAX_ROWS
        if (b < e) softmax_rows(losses, dlogits, logits, labels, b, e, C, grad_scale);
#else
        for (int64_t i = b; i < e; ++i)
            softmax_row(losses + i, dlogits ? dlogits + i * C : nullptr, logits + i * C,
                        label_at(labels, i), C, grad_scale);
#endif
    });
    // Row order, in double, after the team joined: the mean cannot depend on the split.
    double total = 0.0;
    for (int64_t i = 0; i < M; ++i) total += static_cast<double>(losses[i]);
    return total / static_cast<double>(M);
}

void sgd_block(float* param, float* buf, const float* grad, int64_t rows, int64_t cols,
               int64_t ld, const SgdStep& s) {
    // param, buf (null without momentum) and grad are (rows, cols) blocks with row stride ld;
    // on the calling thread (the GEMM's SGD epilogue, already inside its team).
    float* b = s.momentum != 0.0f ? buf : nullptr;
    if (cols == ld) {
        sgd_range(param, b, grad, rows * cols, s, 1.0f);
        return;
    }
    for (int64_t i = 0; i < rows; ++i)
        sgd_range(param + i * ld, b ? b + i * ld : nullptr, grad + i * ld, cols, s, 1.0f);
}

void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n, float lr,
                float momentum, float dampening, float weight_decay, bool nesterov,
                bool first_step, float grad_scale, float clip_value) {
    // param, grad are (n); momentum_buf is (n), or null when momentum == 0.
    const SgdStep s{lr, momentum, dampening, weight_decay, nesterov, first_step, clip_value};
    float* buf = momentum != 0.0f ? momentum_buf : nullptr;
    for_ranges(n, [&](int64_t b, int64_t e) {
        sgd_range(param + b, buf ? buf + b : nullptr, grad + b, e - b, s, grad_scale);
    });
}

double sum_squares(const float* x, int64_t n) {
    // x is (n); the result is a double.
    const int64_t chunk = reduce_order::ssq_chunk(n);
    const int64_t nchunks = (n + chunk - 1) / chunk;
    double sums[reduce_order::kSsqMaxChunks];
    run_parts(threads_for(n, nchunks), [&](int p, int parts) {
        int64_t c0, c1;
        split_range(nchunks, parts, p, 1, &c0, &c1);
        for (int64_t c = c0; c < c1; ++c) {
            int64_t len = n - c * chunk < chunk ? n - c * chunk : chunk;
            sums[c] = chunk_sum_squares(x + c * chunk, len);
        }
    });
    // Chunk sums left to right: the same additions whichever thread produced each one.
    double total = 0.0;
    for (int64_t c = 0; c < nchunks; ++c) total += sums[c];
    return total;
}

}  // namespace FASTDENSE_ISA_NS
}  // namespace fastdense
