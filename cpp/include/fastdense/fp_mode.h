// The floating-point mode every kernel call runs in: by default denormals are flushed to zero
// (MXCSR's FTZ and DAZ bits), as TensorFlow and XLA run on CPUs; set_flush_denormal(false)
// gives IEEE gradual underflow, PyTorch's default.
//
// Why a default: a net trained past the point where the softmax saturates (a batch it has
// learned, a class it is sure of) carries probabilities of 1e-40 and below into its gradients
// and momentum buffers. Intel cores take a microcode assist for every denormal operand or
// result: a 784-100-10 batch-1 step on one thread of a Xeon took ~640 us instead of ~35 us
// once its momentum buffers filled with them.
//
// The mode is per thread: a kernel call sets it on the calling thread for the call's duration
// (FpModeScope) and run_parts carries the caller's mode into the OpenMP team, so the results
// do not depend on the thread count. The caller's own mode is restored on return: numpy and
// the rest of the process never see it. (static inline for the reason parallel.h gives.)
#pragma once

#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
#define FASTDENSE_HAVE_MXCSR 1
#endif

namespace fastdense {

// Process-wide switch, default true (threads.cpp).
bool flush_denormal();
void set_flush_denormal(bool enabled);

#ifdef FASTDENSE_HAVE_MXCSR
constexpr unsigned kMxcsrFlushBits = 0x8040;  // FTZ (bit 15) and DAZ (bit 6)

static inline unsigned fp_mode_get() { return _mm_getcsr(); }

// Sets this thread's MXCSR to `csr` until the scope ends (nothing when it already is).
class FpModeScope {
public:
    explicit FpModeScope(unsigned csr) : saved_(_mm_getcsr()) {
        if (csr != saved_) _mm_setcsr(csr);
    }
    // The calling thread's mode with the flush bits as the process-wide switch says.
    static unsigned for_kernels() {
        const unsigned csr = _mm_getcsr() & ~kMxcsrFlushBits;
        return flush_denormal() ? csr | kMxcsrFlushBits : csr;
    }
    ~FpModeScope() {
        if (_mm_getcsr() != saved_) _mm_setcsr(saved_);
    }
    FpModeScope(const FpModeScope&) = delete;
    FpModeScope& operator=(const FpModeScope&) = delete;

private:
    unsigned saved_;
};
#else  // no MXCSR: the CPU's default mode throughout
static inline unsigned fp_mode_get() { return 0; }
class FpModeScope {
public:
    explicit FpModeScope(unsigned) {}
    static unsigned for_kernels() { return 0; }
};
#endif

}  // namespace fastdense
