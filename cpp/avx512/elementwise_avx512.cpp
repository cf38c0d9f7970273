/* AVX-512 (F/DQ/BW/VL) versions of fastdense's non-GEMM kernels: ReLU forward/backward,
 * softmax cross-entropy, the SGD step and the sum of squares.
 *
 * One zmm register holds the 16 canonical lanes of reduce_order (exp_poly.h), so the vector
 * loops are the reference's loops run 16 elements at a time; tails use masked loads/stores
 * instead of a scalar epilogue, which keeps a single code path (and one rounding sequence).
 * Compiled with -mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma only. Threads and the
 * final order of the sums are common/elementwise_driver.h's, included at the end.
 */
#include <immintrin.h>
#include <math.h>

#include <cstdint>

#include "fastdense/exp_poly.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace avx512 {
namespace {

constexpr int64_t kW = 16;  // floats per zmm == reduce_order::kLanes
static_assert(kW == reduce_order::kLanes, "one zmm must hold the canonical lanes");

inline __mmask16 tail_mask(int64_t rem) {
    // rem in [1, 16): lanes [0, rem) set.
    return static_cast<__mmask16>((1u << rem) - 1u);
}

// exp_poly::exp_nonpos on 16 lanes: the same operations in the same order (see exp_poly.h).
inline __m512 exp_nonpos16(__m512 x) {
    // x: 16 floats, expected <= 0; returns exp(x) per lane, 0 below kMinArg.
    using namespace exp_poly;
    // MAXPS returns its second operand for NaN, exactly like the scalar ternary.
    __m512 xc = _mm512_max_ps(_mm512_set1_ps(kMinArg), x);
    __m512 t = _mm512_fmadd_ps(xc, _mm512_set1_ps(kLog2e), _mm512_set1_ps(kRoundMagic));
    __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(kRoundMagic));
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Hi), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kLn2Lo), r);
    __m512 p = _mm512_set1_ps(kC5);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC0));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    // n sits in t's low mantissa bits; (n + 127) << 23 is 2^n as a float.
    __m512i nb = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(kRoundMagicBits));
    __m512i sb = _mm512_slli_epi32(_mm512_add_epi32(nb, _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(sb));
    __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kMinArg), _CMP_LT_OQ);
    return _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
}

inline float tree_sum16(__m512 acc) {
    // acc: the 16 canonical float partials; the reduce_order tree, w = 8, 4, 2, 1.
    __m256 q = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));
    __m128 s = _mm_add_ps(r, _mm_movehl_ps(r, r));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

inline double tree_sum16d(__m512d lo, __m512d hi) {
    // lo: double partials 0..7, hi: 8..15; same tree as tree_sum16.
    __m512d q = _mm512_add_pd(lo, hi);
    __m256d r = _mm256_add_pd(_mm512_castpd512_pd256(q), _mm512_extractf64x4_pd(q, 1));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(r), _mm256_extractf128_pd(r, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

template <bool kStore>
float exp_sum_row(float* d, const float* z, float m, int64_t C) {
    // z is one row (C), d the dlogits row (C) that receives exp(z - m) when kStore.
    const __m512 mv = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + kW <= C; j += kW) {
        __m512 e = exp_nonpos16(_mm512_sub_ps(_mm512_loadu_ps(z + j), mv));
        acc = _mm512_add_ps(acc, e);
        if (kStore) _mm512_storeu_ps(d + j, e);
    }
    if (j < C) {
        __mmask16 k = tail_mask(C - j);
        __m512 e = exp_nonpos16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, z + j), mv));
        // Masked-off lanes keep their partial: the same as the reference never adding them.
        acc = _mm512_mask_add_ps(acc, k, acc, e);
        if (kStore) _mm512_mask_storeu_ps(d + j, k, e);
    }
    return tree_sum16(acc);
}

void softmax_row(float* loss, float* d, const float* z, int64_t y, int64_t C,
                 float grad_scale) {
    // z is one row (C), d the matching dlogits row (C) or null, loss one float.
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 mx = ninf;
    int64_t j = 0;
    for (; j + kW <= C; j += kW) mx = _mm512_max_ps(mx, _mm512_loadu_ps(z + j));
    // The -inf fill never wins the max; the max is order-free, so lanes may be reduced freely.
    if (j < C) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(ninf, tail_mask(C - j), z + j));
    const float m = _mm512_reduce_max_ps(mx);
    // z - m <= 0, so exp never overflows and the max element contributes exactly 1.
    const float s = d ? exp_sum_row<true>(d, z, m, C) : exp_sum_row<false>(d, z, m, C);
    // log(s) - (z_y - m) instead of -log(softmax): no log of an underflowed probability.
    double l = log(static_cast<double>(s)) - (static_cast<double>(z[y]) - static_cast<double>(m));
    *loss = static_cast<float>(l);
    if (!d) return;
    // One division per row; p_j * grad_scale is then e_j * k with k = grad_scale / s.
    const float k = grad_scale / s;
    const float ey = d[y];
    const __m512 kv = _mm512_set1_ps(k);
    for (j = 0; j + kW <= C; j += kW)
        _mm512_storeu_ps(d + j, _mm512_mul_ps(_mm512_loadu_ps(d + j), kv));
    if (j < C) {
        __mmask16 tm = tail_mask(C - j);
        _mm512_mask_storeu_ps(d + j, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, d + j), kv));
    }
    // The label term with one rounding: e_y*k - grad_scale is where p - 1 would cancel.
    d[y] = fmaf(ey, k, -grad_scale);
}

double chunk_sum_squares(const float* x, int64_t len) {
    // x is one chunk (len), starting at a multiple of 16 in the whole array.
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + kW <= len; i += kW) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d b = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        // A float squared is exact in double, so mul+add rounds like the reference's.
        lo = _mm512_add_pd(lo, _mm512_mul_pd(a, a));
        hi = _mm512_add_pd(hi, _mm512_mul_pd(b, b));
    }
    if (i < len) {
        // Zero-filled lanes add +0 to partials that are >= +0: no change, as in the reference.
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(len - i), x + i);
        __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        __m512d b = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        lo = _mm512_add_pd(lo, _mm512_mul_pd(a, a));
        hi = _mm512_add_pd(hi, _mm512_mul_pd(b, b));
    }
    return tree_sum16d(lo, hi);
}

void relu_forward_range(float* y, const float* x, int64_t n) {
    // x is (n), y is (n) and may alias x.
    // MAXPS(0, x) returns x when x is NaN or -0.0, matching the reference's x < 0 ? 0 : x.
    const __m512 zero = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + kW <= n; i += kW)
        _mm512_storeu_ps(y + i, _mm512_max_ps(zero, _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_max_ps(zero, _mm512_maskz_loadu_ps(k, x + i)));
    }
}

void relu_backward_range(float* dx, const float* dy, const float* y, int64_t n) {
    // dy, y are (n), dx is (n) and may alias dy.
    const __m512 zero = _mm512_setzero_ps();
    int64_t i = 0;
    // Ordered compare: a NaN y blocks the gradient, as y > 0 does in the reference.
    for (; i + kW <= n; i += kW) {
        __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), zero, _CMP_GT_OQ);
        _mm512_storeu_ps(dx + i, _mm512_maskz_loadu_ps(pos, dy + i));
    }
    if (i < n) {
        __mmask16 k = tail_mask(n - i);
        __mmask16 pos = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(k, y + i), zero, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(dx + i, k, _mm512_maskz_loadu_ps(pos, dy + i));
    }
}

// SgdStep's scalars as zmm constants, built once per range.
struct SgdParams {
    __m512 lr_neg, momentum, undamped, wd, scale, clip, nclip;
    bool use_clip, use_wd, use_momentum, nesterov, first_step;
};

inline void sgd_vec(float* param, float* buf, const float* grad, __mmask16 k,
                    const SgdParams& s) {
    // param, buf, grad: 16 lanes (masked by k); buf is untouched without momentum.
    __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, grad), s.scale);
    __m512 th = _mm512_maskz_loadu_ps(k, param);
    // MINPS(c, g) then MAXPS(-c, g): the reference's ternaries, NaN passes through.
    if (s.use_clip) g = _mm512_max_ps(s.nclip, _mm512_min_ps(s.clip, g));
    if (s.use_wd) g = _mm512_fmadd_ps(s.wd, th, g);
    if (s.use_momentum) {
        __m512 b = s.first_step
                       ? g
                       : _mm512_fmadd_ps(s.momentum, _mm512_maskz_loadu_ps(k, buf),
                                         _mm512_mul_ps(s.undamped, g));
        _mm512_mask_storeu_ps(buf, k, b);
        g = s.nesterov ? _mm512_fmadd_ps(s.momentum, b, g) : b;
    }
    _mm512_mask_storeu_ps(param, k, _mm512_fmadd_ps(s.lr_neg, g, th));
}

void sgd_range(float* param, float* buf, const float* grad, int64_t n, const SgdStep& st,
               float grad_scale) {
    // param, grad are (n); buf is (n), or null when st.momentum == 0.
    // Weight decay is skipped at 0 so that 0 * inf parameters do not turn g into NaN.
    const SgdParams s{_mm512_set1_ps(-st.lr), _mm512_set1_ps(st.momentum),
                      _mm512_set1_ps(1.0f - st.dampening), _mm512_set1_ps(st.weight_decay),
                      _mm512_set1_ps(grad_scale), _mm512_set1_ps(st.clip_value),
                      _mm512_set1_ps(-st.clip_value),
                      st.clip_value > 0.0f && st.clip_value < INFINITY, st.weight_decay != 0.0f,
                      st.momentum != 0.0f, st.nesterov, st.first_step};
    int64_t i = 0;
    // One pass: each lane reads grad/param/buf once and writes param/buf once.
    for (; i + kW <= n; i += kW)
        sgd_vec(param + i, buf ? buf + i : nullptr, grad + i, __mmask16(0xFFFF), s);
    if (i < n) sgd_vec(param + i, buf ? buf + i : nullptr, grad + i, tail_mask(n - i), s);
}

}  // namespace
}  // namespace avx512
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx512
#include "common/elementwise_driver.h"
