/* fastdense exp approximation and canonical reduction order: what every ISA's elementwise
 * kernels must share to produce bitwise-identical results; the scalar exp is the reference.
 *
 * exp(x) for x <= 0 (softmax feeds it z - max(z)). Every ISA evaluates the very same sequence
 * of float operations, lane by lane, so results are bitwise equal across ref/AVX2/AVX-512:
 *   xc = max(kMinArg, x)                           (MAXPS operand order: NaN passes through)
 *   t  = fma(xc, kLog2e, kRoundMagic)              (t - kRoundMagic = n = rint(xc*log2 e))
 *   n  = t - kRoundMagic
 *   r  = fma(n, -kLn2Hi, xc);  r = fma(n, -kLn2Lo, r)
 *   p  = Horner over kC5..kC0, then fma(p, r, 1), fma(p, r, 1)
 *   y  = p * 2^n                                   (2^n built from the exponent bits)
 *   result = x < kMinArg ? 0 : y
 *
 * Everything here is `static inline` / constexpr: this header is included by translation units
 * compiled with different -m flags, and a shared (COMDAT) copy could be the AVX-512 one. For the
 * same reason FMAs call the C function ::fmaf, never the inline C++ overload std::fma(float...).
 */
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>

namespace fastdense {
namespace exp_poly {

// Smallest float >= ln(FLT_MIN): above it 2^n stays a normal number, so the final product is
// an exact power-of-two scaling; below it we return exactly 0 (flush instead of subnormals).
constexpr float kMinArg = -0x1.5d589ep+6f;  // -87.33654022
constexpr float kLog2e = 0x1.715476p+0f;
// 1.5 * 2^23: adding it rounds to an integer (nearest-even) in every ISA without a rounding
// instruction (SSE2 has none), and its low mantissa bits then hold n.
constexpr float kRoundMagic = 0x1.8p+23f;
constexpr uint32_t kRoundMagicBits = 0x4B400000u;
// Cody-Waite split of ln 2: kLn2Hi has few mantissa bits so n * kLn2Hi is exact for |n| < 2^9.
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// Cephes expf polynomial: exp(r) ~ 1 + r + r^2 (kC0 + kC1 r + ... + kC5 r^5), |r| <= ln2/2.
constexpr float kC5 = 1.9875691500e-4f;
constexpr float kC4 = 1.3981999507e-3f;
constexpr float kC3 = 8.3334519073e-3f;
constexpr float kC2 = 4.1665795894e-2f;
constexpr float kC1 = 1.6666665459e-1f;
constexpr float kC0 = 5.0000001201e-1f;

static inline uint32_t float_bits(float f) {
    // Shape: one float in, its IEEE bits out. memcpy is the only well-defined type pun.
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u) {
    // Shape: IEEE bits in, one float out.
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Scalar reference of the vector exp: the ops and their order are the contract, see above.
static inline float exp_nonpos(float x) {
    // x: one float, expected <= 0 (valid up to ~88); returns exp(x), 0 below kMinArg.
    float xc = kMinArg > x ? kMinArg : x;  // same operand order as MAXPS(kMinArg, x)
    float t = ::fmaf(xc, kLog2e, kRoundMagic);
    float n = t - kRoundMagic;
    float r = ::fmaf(n, -kLn2Hi, xc);
    r = ::fmaf(n, -kLn2Lo, r);
    float p = kC5;
    p = ::fmaf(p, r, kC4);
    p = ::fmaf(p, r, kC3);
    p = ::fmaf(p, r, kC2);
    p = ::fmaf(p, r, kC1);
    p = ::fmaf(p, r, kC0);
    // The last two steps are 1 + r(1 + r p): the big terms get added last, with one rounding.
    p = ::fmaf(p, r, 1.0f);
    p = ::fmaf(p, r, 1.0f);
    // Unsigned arithmetic: n >= -126 after the clamp, but NaN inputs give arbitrary bits.
    uint32_t scale_bits = (float_bits(t) - kRoundMagicBits + 127u) << 23;
    float y = p * bits_float(scale_bits);
    return x < kMinArg ? 0.0f : y;
}

}  // namespace exp_poly

// The one evaluation order of the order-dependent reductions (softmax's exp sum in float,
// sum_squares in double), implemented identically by ref (an array), AVX2 (two or four
// registers) and AVX-512 (one or two registers):
//   element i of a row / chunk is added to partial (i % kLanes), in increasing i, from +0;
//   partials then combine as p[k] = p[k] + p[k + w] for w = 8, 4, 2, 1 and p[0] is the sum.
// Masked-off tail lanes add +0, which leaves a partial of non-negative terms unchanged.
namespace reduce_order {

constexpr int kLanes = 16;

// sum_squares splits n into chunks whose size depends on n only (never on the thread count);
// chunk sums are then added left to right. Chunks start at multiples of kLanes, so the lane of
// an element inside its chunk is its global index mod kLanes.
constexpr int64_t kSsqMinChunk = int64_t(1) << 15;
constexpr int64_t kSsqMaxChunks = 256;

static inline int64_t ssq_chunk(int64_t n) {
    // n: total element count; returns the chunk length (a multiple of kLanes).
    int64_t c = (n + kSsqMaxChunks - 1) / kSsqMaxChunks;
    c = (c + kLanes - 1) / kLanes * kLanes;
    // Above 256 * 32768 elements the chunks grow so that their sums fit a stack array.
    return c > kSsqMinChunk ? c : kSsqMinChunk;
}

}  // namespace reduce_order
}  // namespace fastdense
