// A whole training step of a Dense/ReLU stack with softmax cross-entropy and SGD, as one call:
// forward GEMMs with fused bias+ReLU, the fused loss, the backward GEMMs (ReLU mask fused into
// dY·Wᵀ, bias gradient with Xᵀ·dY), optional gradient clipping and the SGD update. It only
// sequences kernels from the active table, so it has no ISA-specific code of its own; its
// point is that Python crosses into C++ once per step instead of 3·L + 1 times.
#pragma once

#include <cstdint>
#include <vector>

#include "fastdense/kernels.h"

namespace fastdense {

struct DenseParams {
    float* W;   // (in, out)
    float* b;   // (out) or null
    float* dW;  // (in, out)
    float* db;  // (out) or null when b is null
    float* buf_W;  // momentum buffers, or null without momentum
    float* buf_b;
    int64_t in, out;
    bool relu;  // ReLU after this layer
};

enum class Clip { None = 0, Value = 1, Norm = 2, GlobalNorm = 3 };

struct SgdParams {
    float lr, momentum, dampening, weight_decay;
    bool nesterov, first_step;
    Clip clip;
    double clip_threshold;  // double: the norm coefficient is computed in double, as in optim.py
};

struct StepResult {
    double loss;      // mean cross-entropy of the batch
    int64_t correct;  // rows whose first arg-max logit equals the label
    bool updated;     // false when the loss was not finite: weights left untouched
};

// Wall seconds of a step's phases, summed over the steps that ran to the update while
// StepWorkspace::timing was on (MLPTrainer.phase_seconds): what a profile taken from Python
// cannot see inside the one call. Off, the step reads no clock.
struct StepTimes {
    int64_t steps = 0;
    std::vector<double> forward;   // per layer
    double loss = 0;               // softmax cross-entropy, its gradient, the correct count
    std::vector<double> backward;  // per layer: input gradient (none for the first), weight
                                   // gradient, and the layer's update when it is fused
    double update = 0;             // norm clipping and the update, when not fused
    // Steps whose second layer's backward ran on two threads (the split in train_step.cpp),
    // and the second thread's wait for the loss, then its share of that input gradient.
    int64_t split_steps = 0;
    double split_wait = 0, split_input_gradient = 0;
};

// Scratch activations and gradients for a batch of M rows, grown on demand and kept.
struct StepWorkspace {
    std::vector<std::vector<float>> acts, grads;
    std::vector<float> losses;
    std::vector<float> x;     // a gathered batch (gather_batch), (rows, layers[0].in)
    std::vector<int64_t> y;   // its labels
    int64_t rows = 0;
    bool timing = false;      // accumulate `times`
    StepTimes times, step_times;  // the sums; this step's, added to them when it completes
    void reserve(const std::vector<DenseParams>& layers, int64_t M);
};

// Copies rows idx[0..M) of X_all (., layers[0].in) and y_all into ws.x and ws.y, each thread
// the part the first layer's forward GEMM then reads on it (its rows, or with the split-K
// training forward its columns), so a shuffled batch goes from the dataset straight into the
// cache that uses it. idx must be in range (the caller checks).
void gather_batch(const std::vector<DenseParams>& layers, StepWorkspace& ws, const float* X_all,
                  Labels y_all, const int64_t* idx, int64_t M);

// Rows idx[0..n) of X_all (., width): the batch after this one, for the step to fetch from
// memory while it has a thread to spare.
struct RowPrefetch {
    const float* X_all;
    const int64_t* idx;
    int64_t n, width;
};

// One training step on X (M, layers[0].in) and labels y. With `next`, the second thread
// prefetches those rows while the step's small layers run single-threaded (when they do).
StepResult mlp_train_step(const std::vector<DenseParams>& layers, StepWorkspace& ws,
                          const float* X, Labels y, int64_t M, const SgdParams& sgd,
                          const RowPrefetch* next = nullptr);

}  // namespace fastdense
