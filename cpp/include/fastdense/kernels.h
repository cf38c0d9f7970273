// fastdense kernel API: the float32 forward/backward pairs a dense net's training step needs.
//
// Every ISA folder (ref/, avx2/, avx512/) implements the same table; dispatch.cpp picks one at
// import. Conventions (see shared design notes and llm.c): outputs first, then inputs, then
// sizes; all matrices are row-major and dense (leading dimension == number of columns); sizes
// are int64 and strictly positive (the bindings reject empty arrays before calling in).
//
// Determinism contract: every output element of a GEMM is one sequential FMA chain over the
// reduction index, starting from 0, in increasing index order; bias add, ReLU and masks are
// applied after the chain. The result therefore does not depend on the thread count, on how
// rows are split, or on the ISA (fmaf in ref/ is bitwise equal to a vector FMA lane).
#pragma once

#include <cstdint>

namespace fastdense {

// Integer class labels, either int32 or int64 (numpy's two common label dtypes), read
// without a conversion copy.
struct Labels {
    const void* data;
    bool is_int64;
};

// A free `static inline` function rather than a member: member functions are shared (COMDAT)
// across translation units, and this header is compiled with several -m flag sets.
static inline int64_t label_at(Labels l, int64_t i) {
    return l.is_int64 ? static_cast<const int64_t*>(l.data)[i]
                      : static_cast<const int32_t*>(l.data)[i];
}

// One SGD step's hyperparameters, for kernels that fuse the update into a GEMM epilogue
// (the rule is sgd_update's below, with grad_scale 1).
struct SgdStep {
    float lr, momentum, dampening, weight_decay;
    bool nesterov, first_step;
    float clip_value;  // <= 0 or inf: no clamp
};

// What gemm_parts_probe multiplies: X (M,K), W (K,N) and dY (M,N), as the three matmul
// kernels take them, in one of their forms.
enum class GemmForm { XW, DYWt, XtDY };  // Y = X·W, dX = dY·Wᵀ, dW = Xᵀ·dY
struct GemmProbeShape {
    GemmForm form;
    int64_t M, K, N;
};

struct KernelTable {
    const char* name;  // "ref", "avx2", "avx512"

    // Y(M,N) = X(M,K) · W(K,N) [+ b(N)] [then ReLU]. b may be null.
    void (*matmul_forward)(float* Y, const float* X, const float* W, const float* b,
                           int64_t M, int64_t K, int64_t N, bool relu);

    // matmul_forward, bitwise, for the training step's forward of a layer whose weights
    // matmul_backward_weight_sgd then updates: the threads may split K instead of the batch,
    // so that each reads only the weight rows it later updates (parallel.h,
    // forward_splits_k).
    void (*matmul_forward_train)(float* Y, const float* X, const float* W, const float* b,
                                 int64_t M, int64_t K, int64_t N, bool relu);

    // dX(M,K) = dY(M,N) · W(K,N)ᵀ, and where mask is given, dX[i,k] = 0 unless mask[i,k] > 0
    // (mask is the forward ReLU output or its pre-activation, shape (M,K)); may be null.
    void (*matmul_backward_input)(float* dX, const float* dY, const float* W, const float* mask,
                                  int64_t M, int64_t N, int64_t K);

    // dW(K,N) = X(M,K)ᵀ · dY(M,N), and db(N) = Σ_rows dY (summed in row order) when db is
    // not null. Overwrites dW and db.
    void (*matmul_backward_weight)(float* dW, float* db, const float* X, const float* dY,
                                   int64_t M, int64_t K, int64_t N);

    // matmul_backward_weight, then the SGD step of W(K,N) (and b(N), when db is not null)
    // with those gradients, each dW tile applied while it is still in cache. Bitwise equal to
    // matmul_backward_weight followed by sgd_update. buf_W/buf_b may be null without momentum.
    void (*matmul_backward_weight_sgd)(float* dW, float* db, const float* X, const float* dY,
                                       int64_t M, int64_t K, int64_t N, float* W, float* buf_W,
                                       float* b, float* buf_b, const SgdStep& sgd);

    // y = max(x, 0), elementwise over n values; NaN propagates. y may alias x.
    void (*relu_forward)(float* y, const float* x, int64_t n);

    // dx = dy where y > 0, else 0 (y is the forward output or input). dx may alias dy.
    void (*relu_backward)(float* dx, const float* dy, const float* y, int64_t n);

    // Softmax cross-entropy of logits(M,C) against integer labels (assumed in [0, C); the
    // bindings check). losses[i] = log Σ_j exp(z_ij − m_i) + m_i − z_iy (never log(softmax)).
    // If dlogits is not null: dlogits[i,j] = (softmax(z_i)_j − [j == y_i]) · grad_scale.
    // Returns the mean of losses, summed in row order in double precision.
    double (*softmax_xent)(float* losses, float* dlogits, const float* logits, Labels labels,
                           int64_t M, int64_t C, float grad_scale);

    // One PyTorch-rule SGD step on n parameters, in place:
    //   g = grad·grad_scale, clamped to ±clip_value (clip_value <= 0 or inf: no clamp)
    //   g += weight_decay·θ
    //   if momentum != 0: buf = first_step ? g : momentum·buf + (1−dampening)·g
    //                     g = nesterov ? g + momentum·buf : buf
    //   θ -= lr·g
    // momentum_buf may be null when momentum == 0.
    void (*sgd_update)(float* param, float* momentum_buf, const float* grad, int64_t n,
                       float lr, float momentum, float dampening, float weight_decay,
                       bool nesterov, bool first_step, float grad_scale, float clip_value);

    // Σ x², accumulated in double in a fixed order (for gradient-norm clipping).
    double (*sum_squares)(const float* x, int64_t n);

    // Benchmark probe: `iters` rounds of independent FMA chains on this thread, as fast as the
    // ISA allows. Returns the floating-point operations done (the peak the suite compares to).
    double (*fma_probe)(int64_t iters);

    // Benchmark probe: `reps` passes of the GEMM's innermost loop alone (the register tile on
    // packed operands already in cache) on this thread. Returns the floating-point operations
    // done: the ceiling of the ISA's GEMM, to which the suite compares whole GEMMs.
    double (*tile_probe)(int64_t reps);

    // Benchmark probe: `reps` one-thread GEMMs of `shape` on this thread, the single-thread
    // path of the matmul kernel for shape.form, whole (part 0) or without the costs around the
    // register tile: 1 without packing (the tiles read the buffers the first call of this
    // shape packed), 2 without the caller's C (each tile loads and stores a private tile, one
    // of a ring that stays in L1), 3 without either. The results of parts 1-3 are
    // meaningless; their time is the point. Returns the floating-point operations done. Null
    // for ISAs without a packed GEMM (ref).
    double (*gemm_parts_probe)(const GemmProbeShape& shape, int part, int64_t reps);
};

// One table per ISA; avx2/avx512 exist only when compiled in (see CMake options).
extern const KernelTable ref_kernels;
extern const KernelTable avx2_kernels;
extern const KernelTable avx512_kernels;

// Threads used by the kernels (OpenMP team size; 1 when built without OpenMP).
int num_threads();
void set_num_threads(int n);

// A two-thread GEMM that splits C's columns (gemm_driver.h) gives part 0 column_share() /
// kColumnShareOne of the column panels, and reports both parts' times afterwards with
// record_column_split. On a shared host one core runs slower for up to ~100 ms at a time (a
// busy sibling hyperthread on the host: chains of FMAs through memory 1.4-1.6x slower in a
// probe on a Zen 3 guest, docs/benchmarks.md), and a fixed half made the other core wait for
// it: the next call gives each part work in proportion to the rates the last one measured,
// or halves where the rates were within kColumnShareBand of equal.
// The share stays within [kColumnShareMin, kColumnShareOne - kColumnShareMin]. Which thread
// computes a column never changes its bits. (Process-wide: it follows the cores' speeds,
// not a shape.)
constexpr int kColumnShareOne = 1024, kColumnShareMin = 256;
constexpr double kColumnShareBand = 0.05;
int column_share();
void set_column_share(int share);  // clamped; tests pin the next split with it
void record_column_split(double seconds0, double work0, double seconds1, double work1);

}  // namespace fastdense
