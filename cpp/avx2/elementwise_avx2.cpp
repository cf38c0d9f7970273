/* AVX2+FMA versions of fastdense's non-GEMM kernels: ReLU forward/backward, softmax
 * cross-entropy, the SGD step and the sum of squares.
 *
 * The order-dependent sums emulate the 16 canonical lanes of reduce_order (exp_poly.h) with two
 * ymm registers (lanes 0-7 and 8-15; four for doubles), so they round exactly like the scalar
 * reference and the AVX-512 code. Tails use vmaskmov loads rather than a scalar epilogue,
 * which keeps one code path, and store_first's stores (lanes.h). Compiled with -mavx2
 * -mfma only. Threads and the final order of the sums are common/elementwise_driver.h's,
 * included at the end.
 */
#include <immintrin.h>
#include <math.h>

#include <cstdint>

#include "avx2/lanes.h"
#include "fastdense/exp_poly.h"
#include "fastdense/kernels.h"

namespace fastdense {
namespace avx2 {
namespace {

constexpr int64_t kW = 8;  // floats per ymm; two of them make the 16 canonical lanes
static_assert(2 * kW == reduce_order::kLanes, "two ymm must hold the canonical lanes");

// exp_poly::exp_nonpos on 8 lanes: the same operations in the same order (see exp_poly.h).
inline __m256 exp_nonpos8(__m256 x) {
    // x: 8 floats, expected <= 0; returns exp(x) per lane, 0 below kMinArg.
    using namespace exp_poly;
    // MAXPS returns its second operand for NaN, exactly like the scalar ternary.
    __m256 xc = _mm256_max_ps(_mm256_set1_ps(kMinArg), x);
    __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(kLog2e), _mm256_set1_ps(kRoundMagic));
    __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(kRoundMagic));
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kC5);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    // n sits in t's low mantissa bits; (n + 127) << 23 is 2^n as a float.
    __m256i nb = _mm256_sub_epi32(_mm256_castps_si256(t),
                                  _mm256_set1_epi32(static_cast<int>(kRoundMagicBits)));
    __m256i sb = _mm256_slli_epi32(_mm256_add_epi32(nb, _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(sb));
    __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(kMinArg), _CMP_LT_OQ);
    return _mm256_andnot_ps(under, y);
}

inline float tree_sum16(__m256 lo, __m256 hi) {
    // lo: float partials 0..7, hi: 8..15; the reduce_order tree, w = 8, 4, 2, 1.
    __m256 q = _mm256_add_ps(lo, hi);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));
    __m128 s = _mm_add_ps(r, _mm_movehl_ps(r, r));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

inline double tree_sum16d(__m256d a, __m256d b, __m256d c, __m256d d) {
    // a, b, c, d: double partials 0..3, 4..7, 8..11, 12..15; same tree as tree_sum16.
    __m256d q0 = _mm256_add_pd(a, c), q1 = _mm256_add_pd(b, d);
    __m256d r = _mm256_add_pd(q0, q1);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(r), _mm256_extractf128_pd(r, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

template <bool kStore>
inline void exp_sum_tail8(__m256* acc, float* d, const float* z, int64_t j, __m256 mv,
                          int64_t C) {
    // z, d: one row (C); elements [j, min(j + 8, C)) are added to acc's lanes 0.. in order.
    __m256i k = lane_mask(C - j);
    __m256 e = exp_nonpos8(_mm256_sub_ps(_mm256_maskload_ps(z + j, k), mv));
    e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
    *acc = _mm256_add_ps(*acc, e);
    if (kStore) store_first(d + j, e, C - j);
}

template <bool kStore>
float exp_sum_row(float* d, const float* z, float m, int64_t C) {
    // z is one row (C), d the dlogits row (C) that receives exp(z - m) when kStore.
    const __m256 mv = _mm256_set1_ps(m);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t j = 0;
    // Element j goes to canonical lane j % 16: lanes 0-7 live in lo, 8-15 in hi.
    for (; j + 2 * kW <= C; j += 2 * kW) {
        __m256 e0 = exp_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv));
        __m256 e1 = exp_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(z + j + kW), mv));
        lo = _mm256_add_ps(lo, e0);
        hi = _mm256_add_ps(hi, e1);
        if (kStore) {
            _mm256_storeu_ps(d + j, e0);
            _mm256_storeu_ps(d + j + kW, e1);
        }
    }
    // Tail: masked-off lanes add +0 to partials >= +0, i.e. they stay as the reference's.
    if (j < C) exp_sum_tail8<kStore>(&lo, d, z, j, mv, C);
    if (j + kW < C) exp_sum_tail8<kStore>(&hi, d, z, j + kW, mv, C);
    return tree_sum16(lo, hi);
}

void softmax_row(float* loss, float* d, const float* z, int64_t y, int64_t C,
                 float grad_scale) {
    // z is one row (C), d the matching dlogits row (C) or null, loss one float.
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + kW <= C; j += kW) mx = _mm256_max_ps(mx, _mm256_loadu_ps(z + j));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float m = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
    // The max is order-free, so the tail may be folded in one by one.
    for (; j < C; ++j) m = z[j] > m ? z[j] : m;
    // z - m <= 0, so exp never overflows and the max element contributes exactly 1.
    const float s = d ? exp_sum_row<true>(d, z, m, C) : exp_sum_row<false>(d, z, m, C);
    // log(s) - (z_y - m) instead of -log(softmax): no log of an underflowed probability.
    double l = log(static_cast<double>(s)) - (static_cast<double>(z[y]) - static_cast<double>(m));
    *loss = static_cast<float>(l);
    if (!d) return;
    // One division per row; p_j * grad_scale is then e_j * k with k = grad_scale / s.
    const float k = grad_scale / s;
    const float ey = d[y];
    const __m256 kv = _mm256_set1_ps(k);
    for (j = 0; j + kW <= C; j += kW)
        _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_loadu_ps(d + j), kv));
    if (j < C) {
        __m256i tm = lane_mask(C - j);
        store_first(d + j, _mm256_mul_ps(_mm256_maskload_ps(d + j, tm), kv), C - j);
    }
    // The label term with one rounding: e_y*k - grad_scale is where p - 1 would cancel.
    d[y] = fmaf(ey, k, -grad_scale);
}

// softmax_row for rows of at most 16 classes (a classifier's head), R rows at a time: each
// row stays in two ymm registers from its loads to its stores, and the R rows' operations are
// interleaved. One row is a chain of dependent steps (max, exp, sum, log, division) that left
// the pipes idle; softmax_row also stores exp(z - m) and reads it back, right after its
// partial tail store. Same operations on the same lanes as softmax_row, so the same bits.
// With dlogits, 1 thread, against softmax_row in the same process (Zen 3 guest): 100 x 10
// 1.42x, 1000 x 10 1.44x, 100 x 16 1.31x, 100 x 3 1.25x.
template <int R>
void softmax_rows16(float* loss, float* d, const float* z, Labels labels, int64_t i0,
                    int64_t C, float grad_scale) {
    // z is R rows (R, C <= 16), d the matching dlogits rows or null, loss R floats; their
    // labels are labels[i0 .. i0 + R).
    const __m256i k0 = lane_mask(C), k1 = lane_mask(C - kW);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 e0[R], e1[R];
    float m[R], s[R];
    for (int r = 0; r < R; ++r) {
        const float* zr = z + r * C;
        const __m256 z0 = _mm256_maskload_ps(zr, k0);
        const __m256 z1 = C > kW ? _mm256_maskload_ps(zr + kW, k1) : _mm256_setzero_ps();
        // The max is order-free; lanes past C count as -inf.
        const __m256 mx = _mm256_max_ps(_mm256_blendv_ps(ninf, z0, _mm256_castsi256_ps(k0)),
                                        _mm256_blendv_ps(ninf, z1, _mm256_castsi256_ps(k1)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m[r] = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
        // exp_sum_row's lanes: element j in canonical lane j, +0 past C.
        const __m256 mv = _mm256_set1_ps(m[r]);
        e0[r] = _mm256_and_ps(exp_nonpos8(_mm256_sub_ps(z0, mv)), _mm256_castsi256_ps(k0));
        e1[r] = _mm256_and_ps(exp_nonpos8(_mm256_sub_ps(z1, mv)), _mm256_castsi256_ps(k1));
        s[r] = tree_sum16(e0[r], e1[r]);
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int r = 0; r < R; ++r) {
        const int64_t y = label_at(labels, i0 + r);
        const double l = log(static_cast<double>(s[r])) -
                         (static_cast<double>(z[r * C + y]) - static_cast<double>(m[r]));
        loss[r] = static_cast<float>(l);
        if (!d) continue;
        const float k = grad_scale / s[r];
        const __m256 kv = _mm256_set1_ps(k);
        // e_y from its register, the label term (one rounding) put back in its lane.
        const __m256i at = _mm256_set1_epi32(static_cast<int>(y % kW));
        const float ey = _mm256_cvtss_f32(_mm256_permutevar8x32_ps(y < kW ? e0[r] : e1[r], at));
        const __m256 dy = _mm256_set1_ps(fmaf(ey, k, -grad_scale));
        const __m256 is_y = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lane, at));
        const __m256 d0 = _mm256_mul_ps(e0[r], kv), d1 = _mm256_mul_ps(e1[r], kv);
        float* dr = d + r * C;
        store_first(dr, y < kW ? _mm256_blendv_ps(d0, dy, is_y) : d0, C);
        if (C > kW) store_first(dr + kW, y < kW ? d1 : _mm256_blendv_ps(d1, dy, is_y), C - kW);
    }
}

void softmax_rows(float* losses, float* d, const float* z, Labels labels, int64_t b, int64_t e,
                  int64_t C, float grad_scale) {
    // rows [b, e) of z (., C), d (., C) or null, losses (.)
    int64_t i = b;
    if (C <= 2 * kW) {
        for (; i + 4 <= e; i += 4)
            softmax_rows16<4>(losses + i, d ? d + i * C : nullptr, z + i * C, labels, i, C,
                              grad_scale);
        for (; i < e; ++i)
            softmax_rows16<1>(losses + i, d ? d + i * C : nullptr, z + i * C, labels, i, C,
                              grad_scale);
        return;
    }
    for (; i < e; ++i)
        softmax_row(losses + i, d ? d + i * C : nullptr, z + i * C, label_at(labels, i), C,
                    grad_scale);
}

inline __m256d square_pd(__m128 v) {
    // v: 4 floats; returns their squares in double (exact: 48 significant bits).
    __m256d a = _mm256_cvtps_pd(v);
    return _mm256_mul_pd(a, a);
}

double chunk_sum_squares(const float* x, int64_t len) {
    // x is one chunk (len), starting at a multiple of 16 in the whole array.
    __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
                      _mm256_setzero_pd()};
    int64_t i = 0;
    // acc[q] holds canonical lanes 4q..4q+3; mul+add rounds like the reference's.
    for (; i + 2 * kW <= len; i += 2 * kW) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + kW);
        acc[0] = _mm256_add_pd(acc[0], square_pd(_mm256_castps256_ps128(v0)));
        acc[1] = _mm256_add_pd(acc[1], square_pd(_mm256_extractf128_ps(v0, 1)));
        acc[2] = _mm256_add_pd(acc[2], square_pd(_mm256_castps256_ps128(v1)));
        acc[3] = _mm256_add_pd(acc[3], square_pd(_mm256_extractf128_ps(v1, 1)));
    }
    if (i < len) {
        // Zero-filled lanes add +0 to partials that are >= +0: no change, as in the reference.
        __m256 v0 = _mm256_maskload_ps(x + i, lane_mask(len - i));
        __m256 v1 = _mm256_maskload_ps(x + i + kW, lane_mask(len - i - kW));
        acc[0] = _mm256_add_pd(acc[0], square_pd(_mm256_castps256_ps128(v0)));
        acc[1] = _mm256_add_pd(acc[1], square_pd(_mm256_extractf128_ps(v0, 1)));
        acc[2] = _mm256_add_pd(acc[2], square_pd(_mm256_castps256_ps128(v1)));
        acc[3] = _mm256_add_pd(acc[3], square_pd(_mm256_extractf128_ps(v1, 1)));
    }
    return tree_sum16d(acc[0], acc[1], acc[2], acc[3]);
}

void relu_forward_range(float* y, const float* x, int64_t n) {
    // x is (n), y is (n) and may alias x.
    // MAXPS(0, x) returns x when x is NaN or -0.0, matching the reference's x < 0 ? 0 : x.
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + kW <= n; i += kW)
        _mm256_storeu_ps(y + i, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i k = lane_mask(n - i);
        store_first(y + i, _mm256_max_ps(zero, _mm256_maskload_ps(x + i, k)), n - i);
    }
}

void relu_backward_range(float* dx, const float* dy, const float* y, int64_t n) {
    // dy, y are (n), dx is (n) and may alias dy.
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    // Ordered compare: a NaN y blocks the gradient, as y > 0 does in the reference.
    for (; i + kW <= n; i += kW) {
        __m256 pos = _mm256_cmp_ps(_mm256_loadu_ps(y + i), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(dx + i, _mm256_and_ps(pos, _mm256_loadu_ps(dy + i)));
    }
    if (i < n) {
        __m256i k = lane_mask(n - i);
        __m256 pos = _mm256_cmp_ps(_mm256_maskload_ps(y + i, k), zero, _CMP_GT_OQ);
        store_first(dx + i, _mm256_and_ps(pos, _mm256_maskload_ps(dy + i, k)), n - i);
    }
}

// SgdStep's scalars as ymm constants, built once per range.
struct SgdParams {
    __m256 lr_neg, momentum, undamped, wd, scale, clip, nclip;
    bool use_clip, use_wd, use_momentum, nesterov, first_step;
};

template <bool kMasked>
inline void sgd_vec(float* param, float* buf, const float* grad, __m256i k, int64_t rem,
                    const SgdParams& s) {
    // param, buf, grad: 8 lanes (when kMasked, the first rem, which k selects); buf untouched
    // without momentum.
    __m256 g = kMasked ? _mm256_maskload_ps(grad, k) : _mm256_loadu_ps(grad);
    __m256 th = kMasked ? _mm256_maskload_ps(param, k) : _mm256_loadu_ps(param);
    g = _mm256_mul_ps(g, s.scale);
    // MINPS(c, g) then MAXPS(-c, g): the reference's ternaries, NaN passes through.
    if (s.use_clip) g = _mm256_max_ps(s.nclip, _mm256_min_ps(s.clip, g));
    if (s.use_wd) g = _mm256_fmadd_ps(s.wd, th, g);
    if (s.use_momentum) {
        __m256 b = g;
        if (!s.first_step) {
            __m256 old = kMasked ? _mm256_maskload_ps(buf, k) : _mm256_loadu_ps(buf);
            b = _mm256_fmadd_ps(s.momentum, old, _mm256_mul_ps(s.undamped, g));
        }
        if (kMasked) store_first(buf, b, rem);
        else _mm256_storeu_ps(buf, b);
        g = s.nesterov ? _mm256_fmadd_ps(s.momentum, b, g) : b;
    }
    __m256 out = _mm256_fmadd_ps(s.lr_neg, g, th);
    if (kMasked) store_first(param, out, rem);
    else _mm256_storeu_ps(param, out);
}

// sgd_vec's full-width lanes for the common rule: no gradient scale, clipping, weight decay or
// dampening (their multiplies by 1.0 are exact, so leaving them out changes no bit), and
// momentum past the first step (kMomentum) with or without Nesterov, or no momentum. Besides
// the grad load and the FMAs, one load and one store each of param and buf per 8 lanes: a
// quarter of sgd_vec's instructions were its runtime branches and the two multiplies by 1.0.
// On a Zen 3 guest, same build, switched per step: the 784-100-10 b1 step 1.17-1.20x on 2
// threads and 1.30x on 1 (its update of W1 is most of it); b32, b100 and b256 unchanged.
template <bool kMomentum, bool kNesterov>
void sgd_plain(float* param, float* buf, const float* grad, int64_t n, const SgdParams& s) {
    // param, grad are (n), buf is (n) when kMomentum; full vectors only (n % 8 == 0)
    for (int64_t i = 0; i < n; i += kW) {
        __m256 g = _mm256_loadu_ps(grad + i);
        const __m256 th = _mm256_loadu_ps(param + i);
        if (kMomentum) {
            const __m256 b = _mm256_fmadd_ps(s.momentum, _mm256_loadu_ps(buf + i), g);
            _mm256_storeu_ps(buf + i, b);
            g = kNesterov ? _mm256_fmadd_ps(s.momentum, b, g) : b;
        }
        _mm256_storeu_ps(param + i, _mm256_fmadd_ps(s.lr_neg, g, th));
    }
}

void sgd_range(float* param, float* buf, const float* grad, int64_t n, const SgdStep& st,
               float grad_scale) {
    // param, grad are (n); buf is (n), or null when st.momentum == 0.
    // Weight decay is skipped at 0 so that 0 * inf parameters do not turn g into NaN.
    const SgdParams s{_mm256_set1_ps(-st.lr), _mm256_set1_ps(st.momentum),
                      _mm256_set1_ps(1.0f - st.dampening), _mm256_set1_ps(st.weight_decay),
                      _mm256_set1_ps(grad_scale), _mm256_set1_ps(st.clip_value),
                      _mm256_set1_ps(-st.clip_value),
                      st.clip_value > 0.0f && st.clip_value < INFINITY, st.weight_decay != 0.0f,
                      st.momentum != 0.0f, st.nesterov, st.first_step};
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t i = 0;
    const bool plain = grad_scale == 1.0f && !s.use_clip && !s.use_wd &&
                       (!s.use_momentum || (!s.first_step && st.dampening == 0.0f));
    if (plain) {
        i = n / kW * kW;
        if (!s.use_momentum) sgd_plain<false, false>(param, buf, grad, i, s);
        else if (s.nesterov) sgd_plain<true, true>(param, buf, grad, i, s);
        else sgd_plain<true, false>(param, buf, grad, i, s);
    }
    // One pass: each lane reads grad/param/buf once and writes param/buf once.
    for (; i + kW <= n; i += kW)
        sgd_vec<false>(param + i, buf ? buf + i : nullptr, grad + i, all, kW, s);
    if (i < n)
        sgd_vec<true>(param + i, buf ? buf + i : nullptr, grad + i, lane_mask(n - i), n - i, s);
}

}  // namespace
}  // namespace avx2
}  // namespace fastdense

#define FASTDENSE_ISA_NS avx2
#define FASTDENSE_ISA_SOFTMAX_ROWS 1
#include "common/elementwise_driver.h"
