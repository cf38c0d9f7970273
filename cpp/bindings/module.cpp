// fastdense._core: the pybind11 face of the kernel core.
//
// Each function validates everything first (dtype, contiguity, shapes, writeable and
// non-overlapping outputs, label range, empty arrays) and raises TypeError/ValueError naming
// the argument with what was expected and what was received; then it releases the GIL and
// makes exactly one call into the active kernel table. Outputs may be passed as `out=`-style
// buffers so a training loop allocates nothing per step.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fastdense/checks.h"
#include "fastdense/dispatch.h"
#include "fastdense/fp_mode.h"
#include "fastdense/kernels.h"
#include "fastdense/train_step.h"

namespace py = pybind11;
using fastdense::kernels;
using fastdense::SgdParams;

namespace {

// How every kernel runs from Python: without the GIL, and in the kernels' floating-point mode
// (denormals flushed unless set_flush_denormal(False); fp_mode.h), restored on return.
struct KernelCall {
    py::gil_scoped_release nogil;
    fastdense::FpModeScope mode{fastdense::FpModeScope::for_kernels()};
};

using Shape = std::vector<int64_t>;
constexpr int64_t kAny = -1;  // a dimension whose size is set by another argument

std::string shape_str(const Shape& s) {
    std::ostringstream o;
    o << "(";
    for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
    o << (s.size() == 1 ? ",)" : ")");
    return o.str();
}

Shape shape_of(const py::array& a) {
    return Shape(a.shape(), a.shape() + a.ndim());
}

std::string type_name(py::handle h) {
    return py::str(py::type::handle_of(h).attr("__name__"));
}

// The array behind argument `name` of `fn`, checked for type, dtype, C order and size.
py::array checked_array(py::handle h, const char* fn, const char* name, bool labels = false) {
    const char* want = labels ? "int32 or int64" : "float32";
    if (!py::isinstance<py::array>(h))
        throw py::type_error(std::string(fn) + ": expected `" + name + "` to be a numpy array of " +
                             want + ", got " + type_name(h));
    auto a = py::reinterpret_borrow<py::array>(h);
    const bool ok = labels ? (a.dtype().is(py::dtype::of<int32_t>()) ||
                              a.dtype().is(py::dtype::of<int64_t>()))
                           : a.dtype().is(py::dtype::of<float>());
    if (!ok)
        throw py::type_error(std::string(fn) + ": expected `" + name + "` of dtype " + want +
                             ", got " + std::string(py::str(a.dtype())) +
                             (labels ? "" : " (convert with .astype(numpy.float32))"));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(fn) + ": `" + name + "` of shape " +
                              shape_str(shape_of(a)) +
                              " must be C-contiguous; got a strided or Fortran-ordered view "
                              "(use numpy.ascontiguousarray)");
    for (py::ssize_t i = 0; i < a.ndim(); ++i)
        if (a.shape(i) == 0)
            throw py::value_error(std::string(fn) + ": `" + name + "` is empty (shape " +
                                  shape_str(shape_of(a)) +
                                  "); every dimension must be at least 1 (an empty batch?)");
    return a;
}

// Whether `a` has shape `want` (kAny matches anything).
bool has_shape(const py::array& a, const Shape& want) {
    if (a.ndim() != static_cast<py::ssize_t>(want.size())) return false;
    for (size_t i = 0; i < want.size(); ++i)
        if (want[i] != kAny && want[i] != a.shape(static_cast<py::ssize_t>(i))) return false;
    return true;
}

// Checks that `a` has shape `want` (kAny matches anything); `dims` spells the expected shape
// for the message, e.g. "(M, K)", or is "" to spell it from `want` alone. Nothing is built
// unless the check fails: these run on every kernel call.
void expect_shape(const py::array& a, const char* fn, const char* name, const Shape& want,
                  const char* dims, const std::string& why = "") {
    if (has_shape(a, want)) return;
    const Shape got = shape_of(a);
    // Spell the expected shape with the known sizes filled into `dims`' names.
    std::vector<std::string> names;
    const std::string spelled = dims;
    std::string inner = spelled.size() > 2 ? spelled.substr(1, spelled.size() - 2) : "";
    for (size_t pos = 0; pos <= inner.size();) {
        size_t comma = inner.find(',', pos);
        if (comma == std::string::npos) comma = inner.size();
        std::string tok = inner.substr(pos, comma - pos);
        while (!tok.empty() && tok.front() == ' ') tok.erase(0, 1);
        if (!tok.empty()) names.push_back(tok);
        pos = comma + 1;
    }
    std::string w = "(";
    for (size_t i = 0; i < want.size(); ++i)
        w += (i ? ", " : "") + (want[i] != kAny       ? std::to_string(want[i])
                                : i < names.size() ? names[i]
                                                   : std::string("?"));
    w += want.size() == 1 ? ",)" : ")";
    throw py::value_error(std::string(fn) + ": expected `" + name + "` of shape " +
                          (want.size() == got.size() || spelled.empty() ? w : spelled) + why +
                          ", got " +
                          shape_str(got));
}

// expect_shape with the message's " to match `match` of shape (...)" built only on failure.
void expect_shape_matching(const py::array& a, const char* fn, const char* name,
                           const Shape& want, const char* dims, const char* match,
                           const Shape& match_shape) {
    if (has_shape(a, want)) return;
    expect_shape(a, fn, name, want, dims,
                 std::string(" to match `") + match + "` of shape " + shape_str(match_shape));
}

bool overlaps(const py::array& a, const py::array& b) {
    auto a0 = static_cast<const char*>(a.data()), b0 = static_cast<const char*>(b.data());
    return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// An output buffer: a new array when `out` is None, else the caller's, which must be a
// writeable C-contiguous float32 array of exactly `shape` that shares no memory with `inputs`.
py::array_t<float> output(py::handle out, const char* fn, const char* name, const Shape& shape,
                          std::initializer_list<std::pair<const char*, const py::array*>> inputs,
                          const py::array* may_alias = nullptr) {
    if (out.is_none()) return py::array_t<float>(shape);
    py::array a = checked_array(out, fn, name);
    if (!a.writeable())
        throw py::value_error(std::string(fn) + ": `" + name +
                              "` is read-only; an output buffer must be writeable");
    expect_shape(a, fn, name, shape, "");
    for (const auto& in : inputs) {
        if (!in.second || (may_alias && in.second == may_alias && a.data() == in.second->data()))
            continue;
        if (overlaps(a, *in.second))
            throw py::value_error(std::string(fn) + ": `" + name + "` shares memory with `" +
                                  in.first + "`; pass a separate output buffer");
    }
    return py::reinterpret_borrow<py::array_t<float>>(a);
}

const float* fptr(const py::array& a) { return static_cast<const float*>(a.data()); }
float* wptr(py::array_t<float>& a) { return a.mutable_data(); }

// ---------------------------------------------------------------------------------------------

py::array_t<float> matmul_forward(py::handle x_, py::handle w_, py::handle b_, bool relu,
                                  py::handle out_) {
    const char* fn = "matmul_forward";
    py::array x = checked_array(x_, fn, "x"), w = checked_array(w_, fn, "w");
    expect_shape(x, fn, "x", {kAny, kAny}, "(M, K)");
    const int64_t M = x.shape(0), K = x.shape(1);
    expect_shape_matching(w, fn, "w", {K, kAny}, "(K, N)", "x", {M, K});
    const int64_t N = w.shape(1);
    // (A default-constructed py::array is an empty array, not a null handle: track presence.)
    const bool has_b = !b_.is_none();
    py::array b;
    if (has_b) {
        b = checked_array(b_, fn, "b");
        expect_shape(b, fn, "b", {N}, "(N,)");
    }
    auto y = output(out_, fn, "out", {M, N}, {{"x", &x}, {"w", &w}, {"b", has_b ? &b : nullptr}});
    float* Y = wptr(y);
    const float *X = fptr(x), *W = fptr(w), *B = has_b ? fptr(b) : nullptr;
    {
        KernelCall nogil;
        kernels().matmul_forward(Y, X, W, B, M, K, N, relu);
    }
    return y;
}

py::array_t<float> matmul_backward_input(py::handle dy_, py::handle w_, py::handle mask_,
                                         py::handle out_) {
    const char* fn = "matmul_backward_input";
    py::array dy = checked_array(dy_, fn, "dy"), w = checked_array(w_, fn, "w");
    expect_shape(dy, fn, "dy", {kAny, kAny}, "(M, N)");
    const int64_t M = dy.shape(0), N = dy.shape(1);
    expect_shape_matching(w, fn, "w", {kAny, N}, "(K, N)", "dy", {M, N});
    const int64_t K = w.shape(0);
    const bool has_mask = !mask_.is_none();
    py::array mask;
    if (has_mask) {
        mask = checked_array(mask_, fn, "mask");
        expect_shape(mask, fn, "mask", {M, K}, "(M, K)");
    }
    auto dx = output(out_, fn, "out", {M, K},
                     {{"dy", &dy}, {"w", &w}, {"mask", has_mask ? &mask : nullptr}});
    float* DX = wptr(dx);
    const float *DY = fptr(dy), *W = fptr(w), *MASK = has_mask ? fptr(mask) : nullptr;
    {
        KernelCall nogil;
        kernels().matmul_backward_input(DX, DY, W, MASK, M, N, K);
    }
    return dx;
}

py::tuple matmul_backward_weight(py::handle x_, py::handle dy_, py::handle dw_, py::handle db_,
                                 bool bias) {
    const char* fn = "matmul_backward_weight";
    py::array x = checked_array(x_, fn, "x"), dy = checked_array(dy_, fn, "dy");
    expect_shape(x, fn, "x", {kAny, kAny}, "(M, K)");
    const int64_t M = x.shape(0), K = x.shape(1);
    expect_shape_matching(dy, fn, "dy", {M, kAny}, "(M, N)", "x", {M, K});
    const int64_t N = dy.shape(1);
    auto dw = output(dw_, fn, "dw", {K, N}, {{"x", &x}, {"dy", &dy}});
    py::object db_obj = py::none();
    float* DB = nullptr;
    if (bias) {
        auto db = output(db_, fn, "db", {N}, {{"x", &x}, {"dy", &dy}, {"dw", &dw}});
        DB = wptr(db);
        db_obj = db;
    } else if (!db_.is_none()) {
        throw py::value_error(std::string(fn) + ": `db` was given but bias=False");
    }
    float* DW = wptr(dw);
    const float *X = fptr(x), *DY = fptr(dy);
    {
        KernelCall nogil;
        kernels().matmul_backward_weight(DW, DB, X, DY, M, K, N);
    }
    return py::make_tuple(dw, db_obj);
}

py::array_t<float> relu_forward(py::handle x_, py::handle out_) {
    const char* fn = "relu_forward";
    py::array x = checked_array(x_, fn, "x");
    auto y = output(out_, fn, "out", shape_of(x), {{"x", &x}}, &x);
    float* Y = wptr(y);
    const float* X = fptr(x);
    const int64_t n = x.size();
    {
        KernelCall nogil;
        kernels().relu_forward(Y, X, n);
    }
    return y;
}

py::array_t<float> relu_backward(py::handle dy_, py::handle y_, py::handle out_) {
    const char* fn = "relu_backward";
    py::array dy = checked_array(dy_, fn, "dy"), y = checked_array(y_, fn, "y");
    expect_shape(y, fn, "y", shape_of(dy), "", " to match `dy`");
    auto dx = output(out_, fn, "out", shape_of(dy), {{"dy", &dy}, {"y", &y}}, &dy);
    float* DX = wptr(dx);
    const float *DY = fptr(dy), *Y = fptr(y);
    const int64_t n = dy.size();
    {
        KernelCall nogil;
        kernels().relu_backward(DX, DY, Y, n);
    }
    return dx;
}

// Shared by the two softmax entry points: checks logits and labels, returns (M, C, labels).
fastdense::Labels checked_labels(const py::array& logits, const py::array& labels,
                                 const char* fn) {
    expect_shape(logits, fn, "logits", {kAny, kAny}, "(M, C)");
    const int64_t M = logits.shape(0), C = logits.shape(1);
    expect_shape_matching(labels, fn, "labels", {M}, "(M,)", "logits", {M, C});
    fastdense::Labels lab{labels.data(), labels.dtype().is(py::dtype::of<int64_t>())};
    for (int64_t i = 0; i < M; ++i) {
        const int64_t v = fastdense::label_at(lab, i);
        if (v < 0 || v >= C)
            throw py::value_error(std::string(fn) + ": `labels[" + std::to_string(i) + "]` = " +
                                  std::to_string(v) + " is out of range [0, " +
                                  std::to_string(C) + ") for " + std::to_string(C) +
                                  " classes");
    }
    return lab;
}

py::tuple softmax_xent_forward(py::handle logits_, py::handle labels_, py::handle losses_) {
    const char* fn = "softmax_xent_forward";
    py::array z = checked_array(logits_, fn, "logits"),
              labels = checked_array(labels_, fn, "labels", true);
    const fastdense::Labels lab = checked_labels(z, labels, fn);
    const int64_t M = z.shape(0), C = z.shape(1);
    auto losses = output(losses_, fn, "losses", {M}, {{"logits", &z}, {"labels", &labels}});
    float* L = wptr(losses);
    const float* Z = fptr(z);
    double mean;
    {
        KernelCall nogil;
        mean = kernels().softmax_xent(L, nullptr, Z, lab, M, C, 0.0f);
    }
    return py::make_tuple(mean, losses);
}

py::tuple softmax_xent_backward(py::handle logits_, py::handle labels_, py::handle dlogits_,
                                py::handle losses_, py::object grad_scale_) {
    const char* fn = "softmax_xent_backward";
    py::array z = checked_array(logits_, fn, "logits"),
              labels = checked_array(labels_, fn, "labels", true);
    const fastdense::Labels lab = checked_labels(z, labels, fn);
    const int64_t M = z.shape(0), C = z.shape(1);
    const float scale = grad_scale_.is_none() ? static_cast<float>(1.0 / static_cast<double>(M))
                                              : grad_scale_.cast<float>();
    auto dz = output(dlogits_, fn, "dlogits", {M, C}, {{"logits", &z}, {"labels", &labels}});
    auto losses = output(losses_, fn, "losses", {M},
                         {{"logits", &z}, {"labels", &labels}, {"dlogits", &dz}});
    float *L = wptr(losses), *DZ = wptr(dz);
    const float* Z = fptr(z);
    double mean;
    {
        KernelCall nogil;
        mean = kernels().softmax_xent(L, DZ, Z, lab, M, C, scale);
    }
    return py::make_tuple(mean, losses, dz);
}

// Lists of arrays, checked pairwise; `what` names the list in messages ("params[2]").
std::vector<py::array> checked_list(py::handle seq, const char* fn, const char* name,
                                    bool writeable) {
    if (!py::isinstance<py::sequence>(seq) || py::isinstance<py::str>(seq) ||
        py::isinstance<py::array>(seq))
        throw py::type_error(std::string(fn) + ": expected `" + name +
                             "` to be a list of float32 arrays, got " + type_name(seq));
    std::vector<py::array> out;
    auto s = py::reinterpret_borrow<py::sequence>(seq);
    for (size_t i = 0; i < s.size(); ++i) {
        const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
        py::array a = checked_array(s[i], fn, item.c_str());
        if (writeable && !a.writeable())
            throw py::value_error(std::string(fn) + ": `" + item +
                                  "` is read-only; it is updated in place");
        out.push_back(a);
    }
    return out;
}

void sgd_update(py::handle params_, py::handle grads_, py::handle bufs_, float lr,
                float momentum, float dampening, float weight_decay, bool nesterov,
                bool first_step, py::handle grad_scales_, py::object clip_value_) {
    const char* fn = "sgd_update";
    auto params = checked_list(params_, fn, "params", true);
    auto grads = checked_list(grads_, fn, "grads", false);
    std::vector<py::array> bufs;
    if (!bufs_.is_none()) bufs = checked_list(bufs_, fn, "momentum_bufs", true);
    if (grads.size() != params.size() || (!bufs_.is_none() && bufs.size() != params.size()))
        throw py::value_error(std::string(fn) + ": expected as many `grads`" +
                              (bufs_.is_none() ? "" : " and `momentum_bufs`") + " as `params` (" +
                              std::to_string(params.size()) + "), got " +
                              std::to_string(grads.size()) +
                              (bufs_.is_none() ? "" : " and " + std::to_string(bufs.size())));
    if (momentum != 0.0f && bufs_.is_none())
        throw py::value_error(std::string(fn) + ": momentum=" + std::to_string(momentum) +
                              " needs `momentum_bufs`");
    std::vector<float> scales(params.size(), 1.0f);
    if (!grad_scales_.is_none()) {
        scales = grad_scales_.cast<std::vector<float>>();
        if (scales.size() != params.size())
            throw py::value_error(std::string(fn) + ": expected one `grad_scales` entry per "
                                  "param (" + std::to_string(params.size()) + "), got " +
                                  std::to_string(scales.size()));
    }
    const float clip = clip_value_.is_none() ? 0.0f : clip_value_.cast<float>();
    for (size_t i = 0; i < params.size(); ++i) {
        const Shape want = shape_of(params[i]);
        if (has_shape(grads[i], want) && (bufs.empty() || has_shape(bufs[i], want))) continue;
        const std::string idx = "[" + std::to_string(i) + "]";
        expect_shape(grads[i], fn, ("grads" + idx).c_str(), want, "",
                     " to match `params" + idx + "`");
        if (!bufs.empty())
            expect_shape(bufs[i], fn, ("momentum_bufs" + idx).c_str(), want, "",
                         " to match `params" + idx + "`");
    }
    // Updated arrays (params, buffers) must not share memory with any other array of the call:
    // an aliased gradient or buffer would be read after it was overwritten.
    std::vector<std::pair<std::string, const py::array*>> all;
    for (size_t i = 0; i < params.size(); ++i) {
        const std::string idx = "[" + std::to_string(i) + "]";
        all.push_back({"params" + idx, &params[i]});
        all.push_back({"grads" + idx, &grads[i]});
        if (!bufs.empty()) all.push_back({"momentum_bufs" + idx, &bufs[i]});
    }
    for (size_t a = 0; a < all.size(); ++a) {
        if (all[a].first.rfind("grads", 0) == 0) continue;  // read-only inputs may share
        for (size_t b = 0; b < all.size(); ++b)
            if (a != b && overlaps(*all[a].second, *all[b].second))
                throw py::value_error(std::string(fn) + ": `" + all[a].first +
                                      "` shares memory with `" + all[b].first +
                                      "`; every updated array must be separate");
    }
    struct Job {
        float* p;
        float* b;
        const float* g;
        int64_t n;
        float scale;
    };
    std::vector<Job> jobs;
    for (size_t i = 0; i < params.size(); ++i)
        jobs.push_back({static_cast<float*>(params[i].mutable_data()),
                        bufs.empty() ? nullptr : static_cast<float*>(bufs[i].mutable_data()),
                        fptr(grads[i]), static_cast<int64_t>(params[i].size()), scales[i]});
    KernelCall nogil;
    const auto& k = kernels();
    for (const Job& j : jobs)
        k.sgd_update(j.p, momentum != 0.0f ? j.b : nullptr, j.g, j.n, lr, momentum, dampening,
                     weight_decay, nesterov, first_step, j.scale, clip);
}

std::vector<double> sum_squares(py::handle arrays_) {
    auto arrays = checked_list(arrays_, "sum_squares", "arrays", false);
    std::vector<double> out;
    for (const auto& a : arrays) {
        const float* p = fptr(a);
        const int64_t n = a.size();
        KernelCall nogil;
        out.push_back(kernels().sum_squares(p, n));
    }
    return out;
}

int64_t first_non_finite(py::handle x_) {
    // Any float32 C-contiguous array, read as a flat run of values (empty: -1).
    if (!py::isinstance<py::array>(x_))
        throw py::type_error("first_non_finite: expected `x` to be a numpy array of float32, "
                             "got " + type_name(x_));
    auto x = py::reinterpret_borrow<py::array>(x_);
    if (!x.dtype().is(py::dtype::of<float>()) || !(x.flags() & py::array::c_style))
        throw py::type_error("first_non_finite: expected a C-contiguous float32 array, got " +
                             std::string(py::str(x.dtype())) +
                             ((x.flags() & py::array::c_style) ? "" : " (not C-contiguous)"));
    const float* p = static_cast<const float*>(x.data());
    const int64_t n = x.size();
    KernelCall nogil;
    return fastdense::first_non_finite(p, n);
}

// Runs `probe` (a kernel-table probe: FLOPs done for a count) on `threads` threads for about
// `seconds`, the count calibrated on one thread first; total FLOPs over wall time, in GFLOP/s.
template <class Probe>
double probe_gflops(Probe probe, int64_t start, int threads, double seconds) {
    KernelCall nogil;
    using clock = std::chrono::steady_clock;
    int64_t count = start;
    for (;;) {  // calibrate until a run lasts a twentieth of the budget
        auto t0 = clock::now();
        probe(count);
        double dt = std::chrono::duration<double>(clock::now() - t0).count();
        if (dt > seconds / 20) {
            count = static_cast<int64_t>(count * seconds / dt) + 1;
            break;
        }
        count *= 4;
    }
    double flops = 0.0;
    auto t0 = clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
    flops += probe(count);
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    return flops / dt / 1e9;
}

void check_probe_seconds(const char* fn, double seconds) {
    if (!(seconds > 0.0) || seconds > 60.0)
        throw py::value_error(std::string(fn) + ": `seconds` must be in (0, 60]");
}

// Measured FP32 peak in GFLOP/s: every thread of a team runs the active ISA's FMA probe.
double peak_gflops(int threads, double seconds) {
    if (threads < 1) throw py::value_error("peak_gflops: `threads` must be >= 1");
    check_probe_seconds("peak_gflops", seconds);
    return probe_gflops(kernels().fma_probe, int64_t(1) << 16, threads, seconds);
}

// GFLOP/s of the active ISA's GEMM inner loop alone, on one thread (KernelTable::tile_probe).
double tile_gflops(double seconds) {
    check_probe_seconds("tile_gflops", seconds);
    return probe_gflops(kernels().tile_probe, 1, 1, seconds);
}

// GFLOP/s of a one-thread GEMM of the active ISA, `shape` (M, K, N) in the form of the matmul
// kernel named by `form` (X (M,K), W (K,N), dY (M,N)), whole and without the costs around its
// register tile (KernelTable::gemm_parts_probe), each measured for about `seconds`.
py::dict gemm_parts_gflops(double seconds, std::array<int64_t, 3> shape, const std::string& form) {
    const char* fn = "gemm_parts_gflops";
    check_probe_seconds(fn, seconds);
    fastdense::GemmProbeShape g{fastdense::GemmForm::XW, shape[0], shape[1], shape[2]};
    if (form == "backward_input") g.form = fastdense::GemmForm::DYWt;
    else if (form == "backward_weight") g.form = fastdense::GemmForm::XtDY;
    else if (form != "forward")
        throw py::value_error(std::string(fn) + ": `form` must be 'forward', 'backward_input' "
                              "or 'backward_weight' (the matmul kernel timed), got '" + form +
                              "'");
    // Each operand and C at most 2^27 floats (512 MiB), one GEMM at most 2^36 multiply-adds
    // (a 4096³: the probe runs at least nine, whatever `seconds` says).
    constexpr int64_t kMax = int64_t(1) << 27, kMaxWork = int64_t(1) << 36;
    const int64_t M = g.M, K = g.K, N = g.N;
    if (M < 1 || K < 1 || N < 1 || M > kMax / K || K > kMax / N || M > kMax / N ||
        M * K > kMaxWork / N)
        throw py::value_error(std::string(fn) + ": `shape` (M, K, N) needs sizes >= 1 whose "
                              "products M*K, K*N and M*N are at most 2**27 and M*K*N at most "
                              "2**36, got " + shape_str({M, K, N}));
    // The probe of the ISA active now, for all four parts (set_isa may run meanwhile).
    const auto probe = kernels().gemm_parts_probe;
    if (!probe)
        throw py::value_error(std::string(fn) + ": the active ISA '" + kernels().name +
                              "' has no packed GEMM to take apart");
    py::dict parts;
    const char* names[4] = {"whole", "no_packing", "no_caller_c", "neither"};
    for (int part = 0; part < 4; ++part)
        parts[names[part]] = probe_gflops(
            [&g, part, probe](int64_t reps) { return probe(g, part, reps); }, 1, 1, seconds);
    return parts;
}

// A Dense/ReLU stack bound once to its parameter, gradient and momentum arrays, then trained
// one batch per call (model.py's fast path): everything is validated at construction, and
// step() checks only the batch before one GIL-free call into mlp_train_step.
class MLPTrainer {
public:
    MLPTrainer(py::handle weights_, py::handle biases_, py::handle weight_grads_,
               py::handle bias_grads_, std::vector<bool> relu, py::handle momentum_bufs_,
               float momentum, float dampening, float weight_decay, bool nesterov,
               int clip_mode, double clip_threshold) {
        const char* fn = "MLPTrainer";
        auto W = checked_list(weights_, fn, "weights", true);
        auto dW = checked_list(weight_grads_, fn, "weight_grads", true);
        auto bseq = py::reinterpret_borrow<py::sequence>(biases_);
        auto dbseq = py::reinterpret_borrow<py::sequence>(bias_grads_);
        const size_t L = W.size();
        if (L == 0 || dW.size() != L || relu.size() != L || bseq.size() != L ||
            dbseq.size() != L)
            throw py::value_error("MLPTrainer: weights, biases, weight_grads, bias_grads and "
                                  "relu must have one entry per layer (at least one)");
        if (clip_mode < 0 || clip_mode > 3)
            throw py::value_error("MLPTrainer: clip_mode must be 0 (none), 1 (value), 2 (norm) "
                                  "or 3 (global norm), got " + std::to_string(clip_mode));
        std::vector<py::array> bufs;
        if (momentum != 0.0f) bufs = checked_list(momentum_bufs_, fn, "momentum_bufs", true);
        size_t nb = 0;
        for (size_t l = 0; l < L; ++l) {
            const std::string idx = "[" + std::to_string(l) + "]";
            expect_shape(W[l], fn, ("weights" + idx).c_str(), {kAny, kAny}, "(I, O)");
            const int64_t in = W[l].shape(0), out = W[l].shape(1);
            if (l > 0 && in != layers_.back().out)
                throw py::value_error("MLPTrainer: `weights" + idx + "` has " +
                                      std::to_string(in) + " rows but the previous layer has " +
                                      std::to_string(layers_.back().out) + " outputs");
            expect_shape(dW[l], fn, ("weight_grads" + idx).c_str(), {in, out}, "");
            fastdense::DenseParams p{};
            p.W = static_cast<float*>(W[l].mutable_data());
            p.dW = static_cast<float*>(dW[l].mutable_data());
            p.in = in;
            p.out = out;
            p.relu = relu[l];
            keep_.push_back(W[l]);
            keep_.push_back(dW[l]);
            if (!bseq[l].is_none()) {
                py::array b = checked_array(bseq[l], fn, ("biases" + idx).c_str());
                py::array db = checked_array(dbseq[l], fn, ("bias_grads" + idx).c_str());
                expect_shape(b, fn, ("biases" + idx).c_str(), {out}, "");
                expect_shape(db, fn, ("bias_grads" + idx).c_str(), {out}, "");
                if (!b.writeable() || !db.writeable())
                    throw py::value_error("MLPTrainer: biases and their gradients must be "
                                          "writeable");
                p.b = static_cast<float*>(b.mutable_data());
                p.db = static_cast<float*>(db.mutable_data());
                keep_.push_back(b);
                keep_.push_back(db);
            }
            if (!bufs.empty()) {
                // Buffers follow model.parameters(): W0, b0, W1, b1, ...
                auto take = [&](const Shape& shape) {
                    if (nb >= bufs.size())
                        throw py::value_error("MLPTrainer: too few momentum_bufs");
                    const std::string name = "momentum_bufs[" + std::to_string(nb) + "]";
                    expect_shape(bufs[nb], fn, name.c_str(), shape, "");
                    keep_.push_back(bufs[nb]);
                    return static_cast<float*>(bufs[nb++].mutable_data());
                };
                p.buf_W = take({in, out});
                if (p.b) p.buf_b = take({out});
            }
            layers_.push_back(p);
        }
        if (!bufs.empty() && nb != bufs.size())
            throw py::value_error("MLPTrainer: expected " + std::to_string(nb) +
                                  " momentum_bufs, got " + std::to_string(bufs.size()));
        sgd_ = SgdParams{0.0f, momentum, dampening, weight_decay, nesterov, false,
                         static_cast<fastdense::Clip>(clip_mode), clip_threshold};
    }

    py::tuple step(py::handle x_, py::handle y_, float lr, bool first_step) {
        const char* fn = "train_step";
        const Data d = checked_data(fn, x_, y_, "(batch, features)", "(batch,)");
        const int64_t M = d.x.shape(0);
        for (int64_t i = 0; i < M; ++i) check_label(fn, d.labels, i, layers_.back().out);
        const float* X = fptr(d.x);
        const fastdense::Labels lab = d.labels;
        return run(lr, first_step, [&](const SgdParams& sgd) {
            return fastdense::mlp_train_step(layers_, ws_, X, lab, M, sgd);
        });
    }

    py::tuple step_rows(py::handle x_, py::handle y_, py::handle idx_, float lr, bool first_step,
                        py::handle next_idx_) {
        // The step on rows idx of (x, y), gathered in C++ (fit's shuffled batches): no numpy
        // gather and no batch copy through Python per step. next_idx (or None): the rows of
        // the batch after this one, brought in from memory while this step has a thread spare.
        const char* fn = "train_step_rows";
        const Data d = checked_data(fn, x_, y_, "(n, features)", "(n,)");
        const int64_t n = d.x.shape(0);
        py::array idx = row_indices(fn, "idx", idx_, n);
        const int64_t M = idx.shape(0);
        const int64_t* rows = static_cast<const int64_t*>(idx.data());
        const fastdense::Labels lab = d.labels;
        for (int64_t i = 0; i < M; ++i) check_label(fn, lab, rows[i], layers_.back().out);
        const float* X = fptr(d.x);
        fastdense::RowPrefetch next{X, nullptr, 0, layers_.front().in};
        py::array next_idx;
        if (!next_idx_.is_none()) {
            next_idx = row_indices(fn, "next_idx", next_idx_, n);
            next.idx = static_cast<const int64_t*>(next_idx.data());
            next.n = next_idx.shape(0);
        }
        return run(lr, first_step, [&](const SgdParams& sgd) {
            fastdense::gather_batch(layers_, ws_, X, lab, rows, M);
            return fastdense::mlp_train_step(layers_, ws_, ws_.x.data(),
                                             fastdense::Labels{ws_.y.data(), true}, M, sgd,
                                             next.n ? &next : nullptr);
        });
    }

    // Phase timing of the steps that follow (on: counters reset) or none (off).
    void set_phase_timing(bool enabled) {
        std::lock_guard<std::mutex> lock(mutex_);
        ws_.timing = enabled;
        if (enabled) ws_.times = fastdense::StepTimes{};
    }

    // Seconds per step of each phase, averaged over the steps timed since set_phase_timing(True)
    // that reached the update (a step with a non-finite loss is not counted).
    py::dict phase_seconds() {
        fastdense::StepTimes t;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            t = ws_.times;
        }
        const double n = t.steps > 0 ? static_cast<double>(t.steps) : 1.0;
        const double ns = t.split_steps > 0 ? static_cast<double>(t.split_steps) : 1.0;
        auto mean = [n](std::vector<double> v) {
            for (double& x : v) x /= n;
            return v;
        };
        py::dict d;
        d["steps"] = t.steps;
        d["forward"] = mean(t.forward);
        d["loss"] = t.loss / n;
        d["backward"] = mean(t.backward);
        d["update"] = t.update / n;
        d["split_steps"] = t.split_steps;
        d["split_wait"] = t.split_wait / ns;
        d["split_input_gradient"] = t.split_input_gradient / ns;
        return d;
    }

private:
    // x (rows, features) float32 and its labels y (rows,) int32/int64, checked; x_dims and
    // y_dims spell their shapes in the messages.
    struct Data {
        py::array x, y;
        fastdense::Labels labels;
    };
    Data checked_data(const char* fn, py::handle x_, py::handle y_, const char* x_dims,
                      const char* y_dims) const {
        py::array x = checked_array(x_, fn, "x"), y = checked_array(y_, fn, "y", true);
        const int64_t in = layers_.front().in;
        expect_shape(x, fn, "x", {kAny, in}, x_dims);
        const int64_t n = x.shape(0);
        expect_shape_matching(y, fn, "y", {n}, y_dims, "x", {n, in});
        fastdense::Labels lab{y.data(), y.dtype().is(py::dtype::of<int64_t>())};
        return Data{x, y, lab};
    }

    // A non-empty C-contiguous int64 array of row indices into n rows, checked.
    static py::array row_indices(const char* fn, const char* name, py::handle h, int64_t n) {
        if (!py::isinstance<py::array>(h) ||
            !py::reinterpret_borrow<py::array>(h).dtype().is(py::dtype::of<int64_t>()))
            throw py::type_error(std::string(fn) + ": expected `" + name + "` to be a numpy "
                                 "array of int64 row indices, got " + type_name(h));
        auto idx = py::reinterpret_borrow<py::array>(h);
        if (!(idx.flags() & py::array::c_style) || idx.ndim() != 1 || idx.shape(0) == 0)
            throw py::value_error(std::string(fn) + ": `" + name + "` must be a non-empty "
                                  "C-contiguous 1-D array, got shape " +
                                  shape_str(shape_of(idx)));
        const int64_t* rows = static_cast<const int64_t*>(idx.data());
        for (int64_t i = 0; i < idx.shape(0); ++i)
            if (rows[i] < 0 || rows[i] >= n)
                throw py::index_error(std::string(fn) + ": row index " +
                                      std::to_string(rows[i]) + " (" + name + "[" +
                                      std::to_string(i) + "]) is out of range [0, " +
                                      std::to_string(n) + ")");
        return idx;
    }

    static void check_label(const char* fn, fastdense::Labels lab, int64_t i, int64_t C) {
        const int64_t v = fastdense::label_at(lab, i);
        if (v < 0 || v >= C)
            throw py::value_error(std::string(fn) + ": label " + std::to_string(v) + " (y[" +
                                  std::to_string(i) + "]) is out of range [0, " +
                                  std::to_string(C) + ")");
    }

    // Runs one step (a StepResult from body(sgd)) without the GIL, under the trainer's lock
    // (the workspace is per trainer), with this call's learning rate.
    template <class Body>
    py::tuple run(float lr, bool first_step, const Body& body) {
        SgdParams sgd = sgd_;
        sgd.lr = lr;
        sgd.first_step = first_step;
        fastdense::StepResult r;
        {
            KernelCall nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            r = body(sgd);
        }
        return py::make_tuple(r.loss, r.correct, r.updated);
    }

    std::vector<py::array> keep_;  // keeps every bound array alive
    std::vector<fastdense::DenseParams> layers_;
    fastdense::StepWorkspace ws_;
    SgdParams sgd_{};
    std::mutex mutex_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastdense kernel core: float32 GEMM, ReLU, softmax cross-entropy and SGD kernels "
              "with runtime ISA dispatch (ref / AVX2 / AVX-512), threaded with OpenMP.";
    fastdense::dispatch_init();

    m.attr("__version__") = FASTDENSE_VERSION;
#ifdef _OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif

    m.def("matmul_forward", &matmul_forward, py::arg("x"), py::arg("w"),
          py::arg("b") = py::none(), py::kw_only(), py::arg("relu") = false,
          py::arg("out") = py::none(),
          "y(M,N) = x(M,K) @ w(K,N) [+ b(N)], then ReLU if relu=True (fused epilogue).");
    m.def("matmul_backward_input", &matmul_backward_input, py::arg("dy"), py::arg("w"),
          py::kw_only(), py::arg("mask") = py::none(), py::arg("out") = py::none(),
          "dx(M,K) = dy(M,N) @ w(K,N).T, zeroed where mask(M,K) <= 0 when a mask (the previous "
          "layer's ReLU output) is given.");
    m.def("matmul_backward_weight", &matmul_backward_weight, py::arg("x"), py::arg("dy"),
          py::kw_only(), py::arg("dw") = py::none(), py::arg("db") = py::none(),
          py::arg("bias") = true,
          "(dw, db): dw(K,N) = x(M,K).T @ dy(M,N) and db(N) = dy.sum(0) (None if bias=False).");
    m.def("relu_forward", &relu_forward, py::arg("x"), py::kw_only(),
          py::arg("out") = py::none(), "y = max(x, 0); out may be x itself.");
    m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"), py::kw_only(),
          py::arg("out") = py::none(), "dx = dy where y > 0, else 0; out may be dy itself.");
    m.def("softmax_xent_forward", &softmax_xent_forward, py::arg("logits"), py::arg("labels"),
          py::kw_only(), py::arg("losses") = py::none(),
          "(mean_loss, losses): softmax cross-entropy of logits(M,C) against integer labels(M).");
    m.def("softmax_xent_backward", &softmax_xent_backward, py::arg("logits"), py::arg("labels"),
          py::kw_only(), py::arg("dlogits") = py::none(), py::arg("losses") = py::none(),
          py::arg("grad_scale") = py::none(),
          "(mean_loss, losses, dlogits) in one pass; dlogits = (softmax - onehot) * grad_scale, "
          "grad_scale defaulting to 1/M (the gradient of the mean loss).");
    m.def("sgd_update", &sgd_update, py::arg("params"), py::arg("grads"),
          py::arg("momentum_bufs") = py::none(), py::kw_only(), py::arg("lr"),
          py::arg("momentum") = 0.0f, py::arg("dampening") = 0.0f,
          py::arg("weight_decay") = 0.0f, py::arg("nesterov") = false,
          py::arg("first_step") = false, py::arg("grad_scales") = py::none(),
          py::arg("clip_value") = py::none(),
          "PyTorch-rule SGD step on lists of arrays, in place, in one call.");
    m.def("sum_squares", &sum_squares, py::arg("arrays"),
          "[sum(a**2) for a in arrays], accumulated in double.");

    py::class_<MLPTrainer>(m, "MLPTrainer",
                           "A Dense/ReLU stack with softmax cross-entropy and SGD, bound to its "
                           "arrays; step(x, y, lr, first_step) -> (loss, correct, updated) "
                           "trains one batch in one call.")
        .def(py::init<py::handle, py::handle, py::handle, py::handle, std::vector<bool>,
                      py::handle, float, float, float, bool, int, double>(),
             py::arg("weights"), py::arg("biases"), py::arg("weight_grads"),
             py::arg("bias_grads"), py::arg("relu"), py::arg("momentum_bufs") = py::none(),
             py::arg("momentum") = 0.0f, py::arg("dampening") = 0.0f,
             py::arg("weight_decay") = 0.0f, py::arg("nesterov") = false,
             py::arg("clip_mode") = 0, py::arg("clip_threshold") = 0.0)
        .def("step", &MLPTrainer::step, py::arg("x"), py::arg("y"), py::arg("lr"),
             py::arg("first_step"))
        .def("step_rows", &MLPTrainer::step_rows, py::arg("x"), py::arg("y"), py::arg("idx"),
             py::arg("lr"), py::arg("first_step"), py::arg("next_idx") = py::none(),
             "step() on rows idx of (x, y), gathered in C++: (loss, correct, updated). "
             "next_idx: the next batch's rows, prefetched while the step has a thread spare.")
        .def("set_phase_timing", &MLPTrainer::set_phase_timing, py::arg("enabled"),
             "Time the phases of the steps that follow (True resets the counters) or stop.")
        .def("phase_seconds", &MLPTrainer::phase_seconds,
             "Seconds per step over the steps timed since set_phase_timing(True) that reached "
             "the update: forward (per layer), loss (softmax cross-entropy, its gradient and "
             "the correct count), backward (per layer: input gradient, none for the first "
             "layer; weight gradient; the layer's update when fused), update (norm clipping "
             "and the update otherwise); steps, the count. For the steps whose second layer's "
             "backward ran on two threads (split_steps), the second thread's split_wait for "
             "the loss (prefetching "
             "the next batch meanwhile, in fit) and its split_input_gradient (its share of "
             "the second layer's input gradient).");

    m.def("first_non_finite", &first_non_finite, py::arg("x"),
          "Flat index of the first NaN or infinity in a C-contiguous float32 array, or -1: one "
          "threaded read-only pass.");
    m.def("peak_gflops", &peak_gflops, py::arg("threads") = 1, py::arg("seconds") = 0.2,
          "Measured FP32 FMA peak of the active ISA on `threads` threads, in GFLOP/s.");
    m.def("tile_gflops", &tile_gflops, py::arg("seconds") = 0.2,
          "GFLOP/s of the active ISA's GEMM register tile alone (packed operands in cache, "
          "no packing, no caller's C) on one thread: the ceiling of its GEMM.");

    m.def("gemm_parts_gflops", &gemm_parts_gflops, py::arg("seconds") = 0.2, py::kw_only(),
          py::arg("shape") = std::array<int64_t, 3>{1024, 1024, 1024},
          py::arg("form") = "forward",
          "GFLOP/s of a one-thread GEMM of the active ISA, as the matmul kernel `form` "
          "('forward': x(M,K) @ w(K,N); 'backward_input': dy(M,N) @ w.T; 'backward_weight': "
          "x.T @ dy) runs it on one thread for `shape` = (M, K, N), called from C++ without "
          "Python: 'whole', and without the costs around its register tile: 'no_packing' (the "
          "tiles reread buffers packed before), 'no_caller_c' (private C tiles in L1), "
          "'neither'. Timing only: those three compute nothing meaningful. Not for the 'ref' "
          "ISA.");
    m.def("compiled_isas", &fastdense::compiled_isas, "ISAs compiled into this build.");
    m.def("supported_isas", &fastdense::supported_isas,
          "Compiled ISAs that this CPU and OS can run, best last.");
    m.def("active_isa", &fastdense::active_isa, "The ISA the kernels use now.");
    m.def("set_isa", &fastdense::set_isa, py::arg("name"),
          "Use another compiled and supported ISA (for tests and benchmarks).");
    m.def("get_num_threads", &fastdense::num_threads, "Threads the kernels may use.");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1)
                throw py::value_error("set_num_threads: `n` must be >= 1, got " +
                                      std::to_string(n));
            fastdense::set_num_threads(n);
        },
        py::arg("n"), "Set the threads the kernels may use (OpenMP team size).");
    m.def(
        "_column_share",
        [](std::optional<double> share) {
            if (share) {
                if (!(*share >= 0.0 && *share <= 1.0))
                    throw py::value_error("_column_share: `share` must be in [0, 1], got " +
                                          std::to_string(*share));
                fastdense::set_column_share(
                    static_cast<int>(*share * fastdense::kColumnShareOne + 0.5));
            }
            return static_cast<double>(fastdense::column_share()) / fastdense::kColumnShareOne;
        },
        py::arg("share") = py::none(),
        "Part 0's share of the column panels in the next two-thread GEMM that splits C's "
        "columns (set from the parts' measured rates after each large one; halves while they "
        "are equal), optionally set first (clamped to [0.25, 0.75]). For tests and "
        "benchmarks.");
    m.def("get_flush_denormal", &fastdense::flush_denormal,
          "Whether the kernels flush denormal floats to zero (FTZ and DAZ; default True).");
    m.def("set_flush_denormal", &fastdense::set_flush_denormal, py::arg("enabled"),
          "Flush denormal floats to zero in every kernel (True, the default, as TensorFlow "
          "and XLA do on CPUs: an Intel core slows down many times on them) or keep IEEE "
          "gradual underflow (False, PyTorch's default). The caller's own mode is untouched.");
}
