// fastdense._roundtrip: how far apart this process's CPUs are, as the time one cache line
// takes to go from one thread to another and back.
//
// A two-thread training step hands data from core to core many times (a layer's output
// written by both threads and read by one, weights updated by one and read by both, the
// barriers). On a virtual machine the host may run the two vCPUs on cores that share a cache
// or on cores of different dies, and move them while the guest runs: on a 2-vCPU Zen 3 guest
// the round trip was about 70 ns (both vCPUs on one core), 90-170 ns (one core complex) or
// 380-550 ns (two), and every library's 784-100-10 batch-100 step was about 1.2x slower with
// two complexes than with one (docs/benchmarks.md).
// The benchmark suite records this probe around every 2-thread sample so that libraries are
// compared in the same placement.
//
// A module of its own, without OpenMP and without the kernels, so that a peer library's
// benchmark process can load it without fastdense's core and thread pool. The second thread
// lives only for the call.
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif

namespace py = pybind11;

namespace {

using Clock = std::chrono::steady_clock;

// CPUs this process may run on (its affinity mask on Linux).
int usable_cpus() {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return static_cast<int>(std::thread::hardware_concurrency());
}

// On Linux, the calling thread stays on the CPU it is on and the second thread goes to
// another CPU of the process's mask for the duration of the probe (left to the scheduler, a
// new thread may first queue behind the caller on the caller's own CPU, where no round trip
// can happen until it moves); the caller's mask is restored afterwards. The caller is pinned
// only once the second thread exists (a thread starts with its creator's mask, and one
// started on the caller's CPU would wait there for the spinning caller's time slice to end
// before it could move). Elsewhere, nothing.
class Placement {
  public:
    Placement() {
#ifdef __linux__
        if (pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_) != 0) return;
        here_ = sched_getcpu();
        if (here_ < 0 || !CPU_ISSET(here_, &saved_)) return;
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (c != here_ && CPU_ISSET(c, &saved_)) {
                other_ = c;
                break;
            }
#endif
    }
    ~Placement() {
#ifdef __linux__
        if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
#endif
    }
    Placement(const Placement&) = delete;
    Placement& operator=(const Placement&) = delete;
    // Called by the second thread first thing.
    void second_thread() const { pin(other_); }
    // Called by the caller once the second thread has been created.
    void caller() { pinned_ = pin(here_); }

  private:
    bool pin(int cpu) const {
#ifdef __linux__
        if (other_ < 0) return false;  // (no second CPU: leave both to the scheduler)
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
#else
        (void)cpu;
        return false;
#endif
    }
#ifdef __linux__
    cpu_set_t saved_;
    int here_ = -1;
    int other_ = -1;
#endif
    bool pinned_ = false;
};

// The fastest chunk of `per_chunk` round trips, in nanoseconds per round trip, over at most
// `chunks` chunks after `warmup` round trips, or NaN if no chunk finished by `max_seconds`. A
// round trip: this thread writes an odd count to a line that the other thread polls, the
// other answers with the next even count, and this thread sees it; both spin on plain loads.
// The fastest chunk rather than a typical one: right after a library's parallel work, its
// idle threads may still spin on one of the two CPUs, and the second thread here then shares
// that CPU with them, a scheduler time slice at a time. Chunks that straddle a time slice
// are slow; chunks within one run at the distance between the CPUs, which nothing makes
// shorter.
double fastest_chunk_ns(int64_t warmup, int64_t chunks, int64_t per_chunk, double max_seconds) {
    struct alignas(64) Line {
        std::atomic<int64_t> count{0};
    };
    static_assert(sizeof(Line) == 64, "one cache line");
    Line line;
    alignas(64) std::atomic<bool> stop{false};
    const int64_t total = warmup + chunks * per_chunk;
    Placement placement;
    std::thread other([&] {
        placement.second_thread();
        for (int64_t i = 0; i < total; ++i) {
            const int64_t ask = 2 * i + 1;
            while (line.count.load(std::memory_order_acquire) != ask)
                if (stop.load(std::memory_order_relaxed)) return;
            line.count.store(ask + 1, std::memory_order_release);
        }
    });
    placement.caller();
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(max_seconds));
    int64_t done = 0;
    bool late = false;
    auto trip = [&] {  // one round trip; false once past the deadline
        const int64_t ask = 2 * done + 1;
        line.count.store(ask, std::memory_order_release);
        for (int64_t spins = 0; line.count.load(std::memory_order_acquire) != ask + 1; ++spins)
            if ((spins & 1023) == 1023 && Clock::now() > deadline) return false;
        ++done;
        return true;
    };
    while (done < warmup && !late) late = !trip();
    double best = std::numeric_limits<double>::quiet_NaN();
    for (int64_t c = 0; c < chunks && !late; ++c) {
        const auto t0 = Clock::now();
        for (int64_t n = 0; n < per_chunk && !late; ++n) late = !trip();
        const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                          static_cast<double>(per_chunk);
        if (!late && !(ns >= best)) best = ns;  // (NaN until the first chunk)
    }
    stop.store(true, std::memory_order_relaxed);
    other.join();
    return best;
}

double core_roundtrip_ns(int64_t round_trips, double max_seconds) {
    if (round_trips < 100 || round_trips > 1000000000)
        throw py::value_error("core_roundtrip_ns: round_trips must be in [100, 1e9], got " +
                              std::to_string(round_trips));
    if (!(max_seconds > 0.0 && max_seconds <= 60.0))
        throw py::value_error("core_roundtrip_ns: max_seconds must be in (0, 60], got " +
                              std::to_string(max_seconds));
    if (usable_cpus() < 2)
        throw py::value_error("core_roundtrip_ns: needs two CPUs, and this process may run on " +
                              std::to_string(usable_cpus()));
    constexpr int64_t kPerChunk = 50;
    py::gil_scoped_release release;
    return fastest_chunk_ns(round_trips / 4, round_trips / kPerChunk, kPerChunk, max_seconds);
}

}  // namespace

PYBIND11_MODULE(_roundtrip, m) {
    m.doc() = "How far apart this process's CPUs are: a cache line's round trip between two "
              "threads (benchmark diagnostics; no kernels, no OpenMP).";
    m.def("core_roundtrip_ns", &core_roundtrip_ns, py::arg("round_trips") = 2000,
          py::arg("max_seconds") = 0.05,
          "Nanoseconds for one cache line to go from this thread to a second thread and back: "
          "the fastest of round_trips / 50 chunks of 50 round trips, after round_trips / 4 to "
          "warm up (other threads still spinning on a CPU slow some chunks down, never one "
          "up). The calling thread stays on its CPU, the second runs on another CPU of the "
          "process (Linux). NaN when no chunk finished within max_seconds. Needs at least two "
          "usable CPUs.");
}
