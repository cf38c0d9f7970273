// Scalar reference GEMMs: no intrinsics, compiled with no -m flags, so it runs on any x86-64
// (and any other CPU). It is the fallback and the oracle: each output element is the same
// sequential fmaf chain over the reduction index that the vector micro-kernels compute lane by
// lane, so the vector ISAs must match it bitwise. Loops are ordered for unit-stride access;
// the order of the chain itself never changes.
#include <cmath>
#include <cstdint>

#include "fastdense/kernels.h"
#include "fastdense/parallel.h"

namespace fastdense {
namespace ref {
namespace {

// row(i) for i in [0, n), in contiguous shares over t threads (run_parts: each thread in the
// caller's floating-point mode).
template <class Row>
void rows_in_parallel(int t, int64_t n, const Row& row) {
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, 1, &b, &e);
        for (int64_t i = b; i < e; ++i) row(i);
    });
}

}  // namespace

void matmul_forward(float* Y, const float* X, const float* W, const float* b, int64_t M,
                    int64_t K, int64_t N, bool relu) {
    // X is (M,K), W is (K,N), b is (N) or null, Y is (M,N)
    rows_in_parallel(threads_for(M * N * K, M), M, [&](int64_t i) {
        float* y = Y + i * N;
        for (int64_t j = 0; j < N; ++j) y[j] = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
            const float a = X[i * K + k];
            const float* w = W + k * N;
            for (int64_t j = 0; j < N; ++j) y[j] = std::fmaf(a, w[j], y[j]);
        }
        if (b)
            for (int64_t j = 0; j < N; ++j) y[j] = y[j] + b[j];
        if (relu)
            for (int64_t j = 0; j < N; ++j) y[j] = y[j] < 0.0f ? 0.0f : y[j];
    });
}

void matmul_forward_train(float* Y, const float* X, const float* W, const float* b, int64_t M,
                          int64_t K, int64_t N, bool relu) {
    // The reference keeps one loop order: the same bits as matmul_forward by definition.
    matmul_forward(Y, X, W, b, M, K, N, relu);
}

void matmul_backward_input(float* dX, const float* dY, const float* W, const float* mask,
                           int64_t M, int64_t N, int64_t K) {
    // dY is (M,N), W is (K,N), mask and dX are (M,K)
    rows_in_parallel(threads_for(M * N * K, M), M, [&](int64_t i) {
        const float* dy = dY + i * N;
        for (int64_t k = 0; k < K; ++k) {
            const float* w = W + k * N;
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) acc = std::fmaf(dy[n], w[n], acc);
            if (mask) acc = mask[i * K + k] > 0.0f ? acc : 0.0f;
            dX[i * K + k] = acc;
        }
    });
}

void matmul_backward_weight(float* dW, float* db, const float* X, const float* dY, int64_t M,
                            int64_t K, int64_t N) {
    // X is (M,K), dY is (M,N), dW is (K,N), db is (N) or null
    rows_in_parallel(threads_for(M * N * K, K), K, [&](int64_t k) {
        float* dw = dW + k * N;
        for (int64_t j = 0; j < N; ++j) dw[j] = 0.0f;
        for (int64_t m = 0; m < M; ++m) {
            const float a = X[m * K + k];
            const float* dy = dY + m * N;
            for (int64_t j = 0; j < N; ++j) dw[j] = std::fmaf(a, dy[j], dw[j]);
        }
    });
    if (db) {
        for (int64_t j = 0; j < N; ++j) db[j] = 0.0f;
        for (int64_t m = 0; m < M; ++m)
            for (int64_t j = 0; j < N; ++j) db[j] = db[j] + dY[m * N + j];
    }
}

void sgd_update(float*, float*, const float*, int64_t, float, float, float, float, bool, bool,
                float, float);

void matmul_backward_weight_sgd(float* dW, float* db, const float* X, const float* dY,
                                int64_t M, int64_t K, int64_t N, float* W, float* buf_W,
                                float* b, float* buf_b, const SgdStep& s) {
    // X is (M,K), dY is (M,N), dW and W are (K,N), db and b are (N) or null
    matmul_backward_weight(dW, db, X, dY, M, K, N);
    sgd_update(W, buf_W, dW, K * N, s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov,
               s.first_step, 1.0f, s.clip_value);
    if (db)
        sgd_update(b, buf_b, db, N, s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov,
                   s.first_step, 1.0f, s.clip_value);
}

// Benchmark probe: the reference forward's inner loop alone, on a 32x256 · 256x64 block that
// stays in cache, on this thread. Returns the floating-point operations done.
double tile_probe(int64_t reps) {
    constexpr int64_t M = 32, K = 256, N = 64;
    static thread_local float X[M * K], W[K * N], Y[M * N];
    for (int64_t i = 0; i < M * K; ++i) X[i] = 1e-3f;
    for (int64_t i = 0; i < K * N; ++i) W[i] = 1e-3f;
    for (int64_t r = 0; r < reps; ++r)
        for (int64_t i = 0; i < M; ++i) {
            float* y = Y + i * N;
            for (int64_t j = 0; j < N; ++j) y[j] = 0.0f;
            for (int64_t k = 0; k < K; ++k) {
                const float a = X[i * K + k];
                const float* w = W + k * N;
                for (int64_t j = 0; j < N; ++j) y[j] = std::fmaf(a, w[j], y[j]);
            }
        }
    volatile float sink = Y[0];
    (void)sink;
    return 2.0 * M * K * N * static_cast<double>(reps);
}

}  // namespace ref
}  // namespace fastdense
