/* Scalar reference of fastdense's non-GEMM kernels: ReLU forward/backward, softmax
 * cross-entropy, the SGD step and the sum of squares.
 *
 * No intrinsics and no -m flags: this is the fallback on any CPU and the oracle the vector ISAs
 * must match bit for bit. Wherever the vector code fuses a multiply-add this file calls fmaf,
 * and the order-dependent sums follow reduce_order (exp_poly.h) with an explicit 16-slot array.
 */
#include <math.h>

#include <cstdint>

#include "fastdense/exp_poly.h"
#include "fastdense/kernels.h"
#include "fastdense/parallel.h"

namespace fastdense {
namespace ref {
namespace {

constexpr int kLanes = reduce_order::kLanes;
// Thread ranges start on 16-float (64-byte) boundaries so no two threads share a cache line.
constexpr int64_t kAlign = 16;

// Runs body(part, parts) on a team of t threads, or on the caller when t == 1 / no OpenMP.
template <class Body>
void run_parts(int t, const Body& body) {
    // t: team size from threads_for; parts is the team size OpenMP actually granted.
#ifdef _OPENMP
    if (t > 1) {
#pragma omp parallel num_threads(t)
        body(omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#else
    (void)t;
#endif
    body(0, 1);
}

float tree_sum(float* p) {
    // p: kLanes float partials, combined in place by the canonical pairwise tree.
    for (int w = kLanes / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; ++k) p[k] = p[k] + p[k + w];
    return p[0];
}

double tree_sum(double* p) {
    // p: kLanes double partials, same tree as the float version.
    for (int w = kLanes / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; ++k) p[k] = p[k] + p[k + w];
    return p[0];
}

void softmax_row(float* loss, float* d, const float* z, int64_t y, int64_t C,
                 float grad_scale) {
    // z is one row (C), d the matching dlogits row (C) or null, loss one float.
    float m = z[0];
    for (int64_t j = 1; j < C; ++j) m = z[j] > m ? z[j] : m;
    float part[kLanes] = {};
    for (int64_t j = 0; j < C; ++j) {
        // z - m <= 0, so exp never overflows and the max element contributes exactly 1.
        float e = exp_poly::exp_nonpos(z[j] - m);
        part[j % kLanes] += e;
        if (d) d[j] = e;
    }
    float s = tree_sum(part);
    // log(s) - (z_y - m) instead of -log(softmax): no log of an underflowed probability.
    // The difference z_y - m is exact in double; log runs once per row.
    double l = log(static_cast<double>(s)) - (static_cast<double>(z[y]) - static_cast<double>(m));
    *loss = static_cast<float>(l);
    if (!d) return;
    // One division per row; p_j * grad_scale is then e_j * k with k = grad_scale / s.
    float k = grad_scale / s;
    float ey = d[y];
    for (int64_t j = 0; j < C; ++j) d[j] = d[j] * k;
    // The label term with one rounding: e_y*k - grad_scale is where p - 1 would cancel.
    d[y] = fmaf(ey, k, -grad_scale);
}

double chunk_sum_squares(const float* x, int64_t len) {
    // x is one chunk (len), starting at a multiple of kLanes in the whole array.
    double part[kLanes] = {};
    for (int64_t i = 0; i < len; ++i) {
        // A float squared is exact in double (48 significant bits), so mul+add == fma here.
        double v = x[i];
        part[i % kLanes] += v * v;
    }
    return tree_sum(part);
}

}  // namespace

void relu_forward(float* y, const float* x, int64_t n) {
    // x is (n), y is (n) and may alias x.
    int t = threads_for(n, (n + kAlign - 1) / kAlign);
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, kAlign, &b, &e);
        // Not fmaxf: MAXPS(0, x) returns x for NaN and for -0.0, and so does this.
        for (int64_t i = b; i < e; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
    });
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
    // dy, y are (n), dx is (n) and may alias dy.
    int t = threads_for(n, (n + kAlign - 1) / kAlign);
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, kAlign, &b, &e);
        // A NaN y compares false, so it blocks the gradient like a negative one.
        for (int64_t i = b; i < e; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    });
}

double softmax_xent(float* losses, float* dlogits, const float* logits, Labels labels,
                    int64_t M, int64_t C, float grad_scale) {
    // logits is (M,C), labels (M), losses (M), dlogits (M,C) or null.
    int t = threads_for(M * C, M);
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(M, parts, p, 1, &b, &e);
        for (int64_t i = b; i < e; ++i)
            softmax_row(losses + i, dlogits ? dlogits + i * C : nullptr, logits + i * C,
                        label_at(labels, i), C, grad_scale);
    });
    // Row order, in double, after the team joined: the mean cannot depend on the split.
    double total = 0.0;
    for (int64_t i = 0; i < M; ++i) total += static_cast<double>(losses[i]);
    return total / static_cast<double>(M);
}

void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n, float lr,
                float momentum, float dampening, float weight_decay, bool nesterov,
                bool first_step, float grad_scale, float clip_value) {
    // param, grad are (n); momentum_buf is (n), or null when momentum == 0.
    const bool clip = clip_value > 0.0f && clip_value < INFINITY;
    const float undamped = 1.0f - dampening;
    int t = threads_for(n, (n + kAlign - 1) / kAlign);
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        split_range(n, parts, p, kAlign, &b, &e);
        for (int64_t i = b; i < e; ++i) {
            float g = grad[i] * grad_scale;
            // MINPS(c, g) / MAXPS(-c, g) operand order: a NaN gradient stays NaN.
            if (clip) {
                g = clip_value < g ? clip_value : g;
                g = -clip_value > g ? -clip_value : g;
            }
            // Skipped at 0 so that 0 * inf parameters do not turn g into NaN.
            if (weight_decay != 0.0f) g = fmaf(weight_decay, param[i], g);
            if (momentum != 0.0f) {
                float buf = first_step ? g : fmaf(momentum, momentum_buf[i], undamped * g);
                momentum_buf[i] = buf;
                g = nesterov ? fmaf(momentum, buf, g) : buf;
            }
            param[i] = fmaf(-lr, g, param[i]);
        }
    });
}

double sum_squares(const float* x, int64_t n) {
    // x is (n); the result is a double.
    const int64_t chunk = reduce_order::ssq_chunk(n);
    const int64_t nchunks = (n + chunk - 1) / chunk;
    double sums[reduce_order::kSsqMaxChunks];
    int t = threads_for(n, nchunks);
    run_parts(t, [&](int p, int parts) {
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

}  // namespace ref
}  // namespace fastdense
