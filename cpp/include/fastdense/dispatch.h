// Runtime ISA dispatch: which kernel tables were compiled in, which this CPU and OS can run,
// and which one is active. Chosen once at import (dispatch_init), overridable for tests and
// benchmarks with FASTDENSE_ISA or set_isa().
#pragma once

#include <string>
#include <vector>

#include "fastdense/kernels.h"

namespace fastdense {

// The active table. Kernels read it once per call.
const KernelTable& kernels();

std::vector<std::string> compiled_isas();   // best last: "ref", "avx2", "avx512"
std::vector<std::string> supported_isas();  // compiled and runnable here, best last
std::string active_isa();

// Make `name` active. Throws std::invalid_argument for an unknown name and
// std::runtime_error for one not compiled in or not supported by this CPU/OS.
void set_isa(const std::string& name);

// Picks the best supported ISA, or the one FASTDENSE_ISA names (same errors as set_isa, with
// the variable named in the message).
void dispatch_init();

}  // namespace fastdense
