/* Scalar reference of fastdense's non-GEMM kernels: ReLU forward/backward, softmax
 * cross-entropy, the SGD step and the sum of squares.
 *
 * No intrinsics and no -m flags: this is the fallback on any CPU and the oracle the vector ISAs
 * must match bit for bit. Wherever the vector code fuses a multiply-add this file calls fmaf,
 * and the order-dependent sums follow reduce_order (exp_poly.h) with an explicit 16-slot array.
 * Threads and the final order of the sums are common/elementwise_driver.h's, included at the end.
 */
#include <math.h>

#include <cstdint>

#include "fastdense/exp_poly.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace ref {
namespace {

constexpr int kLanes = reduce_order::kLanes;

template <class T>
T tree_sum(T* p) {
    // p: kLanes float or double partials, combined in place by the canonical pairwise tree.
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

void relu_forward_range(float* y, const float* x, int64_t n) {
    // x is (n), y is (n) and may alias x.
    // Not fmaxf: MAXPS(0, x) returns x for NaN and for -0.0, and so does this.
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_backward_range(float* dx, const float* dy, const float* y, int64_t n) {
    // dy, y are (n), dx is (n) and may alias dy.
    // A NaN y compares false, so it blocks the gradient like a negative one.
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void sgd_range(float* param, float* buf, const float* grad, int64_t n, const SgdStep& s,
               float grad_scale) {
    // param, grad are (n); buf is (n), or null when s.momentum == 0.
    const float lr = s.lr, mom = s.momentum, wd = s.weight_decay, c = s.clip_value;
    const bool clip = c > 0.0f && c < INFINITY;
    const float undamped = 1.0f - s.dampening;
    for (int64_t i = 0; i < n; ++i) {
        float g = grad[i] * grad_scale;
        // MINPS(c, g) / MAXPS(-c, g) operand order: a NaN gradient stays NaN.
        if (clip) {
            g = c < g ? c : g;
            g = -c > g ? -c : g;
        }
        // Skipped at 0 so that 0 * inf parameters do not turn g into NaN.
        if (wd != 0.0f) g = fmaf(wd, param[i], g);
        if (mom != 0.0f) {
            float b = s.first_step ? g : fmaf(mom, buf[i], undamped * g);
            buf[i] = b;
            g = s.nesterov ? fmaf(mom, b, g) : b;
        }
        param[i] = fmaf(-lr, g, param[i]);
    }
}

}  // namespace
}  // namespace ref
}  // namespace fastdense

#define FASTDENSE_ISA_NS ref
#include "common/elementwise_driver.h"
