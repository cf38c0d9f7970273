// Runtime CPU dispatch: CPUID says what the core implements, XGETBV says whether the OS saves
// the wider registers on a context switch. Both must agree before an ISA is used: a CPU with
// AVX-512 under an OS (or hypervisor) that does not enable the ZMM state faults on the first
// instruction. (ggml's feature scoring skips the XGETBV half; we do not.)
#include "fastdense/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FASTDENSE_X86_CPU 1
#endif

namespace fastdense {
namespace {

struct IsaEntry {
    const char* name;
    const KernelTable* table;  // null when not compiled in
    bool (*cpu_has)();
};

#ifdef FASTDENSE_X86_CPU
uint64_t xgetbv0() {
    uint32_t eax, edx;
    // xgetbv with ecx = 0 reads XCR0; written as asm so this file needs no -mxsave.
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool os_saves(uint64_t mask) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    if (!(c & (1u << 27))) return false;  // OSXSAVE: XGETBV is usable at all
    return (xgetbv0() & mask) == mask;
}

bool cpu_has_avx2() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    bool fma = c & (1u << 12), avx = c & (1u << 28);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool avx2 = b & (1u << 5);
    return fma && avx && avx2 && os_saves(0x6);  // XMM | YMM state
}

bool cpu_has_avx512() {
    if (!cpu_has_avx2()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    return f && dq && bw && vl && os_saves(0xE6);  // XMM | YMM | opmask | ZMM_Hi256 | Hi16_ZMM
}
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx512() { return false; }
#endif

bool always() { return true; }

const IsaEntry kIsas[] = {
    {"ref", &ref_kernels, always},
#ifdef FASTDENSE_HAVE_AVX2
    {"avx2", &avx2_kernels, cpu_has_avx2},
#else
    {"avx2", nullptr, cpu_has_avx2},
#endif
#ifdef FASTDENSE_HAVE_AVX512
    {"avx512", &avx512_kernels, cpu_has_avx512},
#else
    {"avx512", nullptr, cpu_has_avx512},
#endif
};

std::atomic<const KernelTable*> g_active{&ref_kernels};

const IsaEntry& find(const std::string& name, const char* what) {
    for (const auto& e : kIsas)
        if (name == e.name) return e;
    throw std::invalid_argument(std::string(what) + "='" + name +
                                "' is not an ISA; expected one of 'ref', 'avx2', 'avx512'");
}

void activate(const std::string& name, const char* what) {
    const IsaEntry& e = find(name, what);
    if (!e.table)
        throw std::runtime_error(std::string(what) + "='" + name +
                                 "': this build of fastdense was compiled without it");
    if (!e.cpu_has())
        throw std::runtime_error(std::string(what) + "='" + name +
                                 "': this CPU (or its OS) does not support it");
    g_active.store(e.table);
}

}  // namespace

const KernelTable& kernels() { return *g_active.load(std::memory_order_relaxed); }

std::vector<std::string> compiled_isas() {
    std::vector<std::string> out;
    for (const auto& e : kIsas)
        if (e.table) out.push_back(e.name);
    return out;
}

std::vector<std::string> supported_isas() {
    std::vector<std::string> out;
    for (const auto& e : kIsas)
        if (e.table && e.cpu_has()) out.push_back(e.name);
    return out;
}

std::string active_isa() { return kernels().name; }

void set_isa(const std::string& name) { activate(name, "isa"); }

void dispatch_init() {
    const char* forced = std::getenv("FASTDENSE_ISA");
    if (forced && *forced) {
        activate(forced, "FASTDENSE_ISA");
        return;
    }
    activate(supported_isas().back(), "isa");
}

}  // namespace fastdense
