// The fused training step (see train_step.h). Same kernels, same order of operations as the
// Python composition in model.py, so both paths give bitwise-identical weights.
#include "fastdense/train_step.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>

#include "fastdense/dispatch.h"
#include "fastdense/parallel.h"

namespace fastdense {

void StepWorkspace::reserve(const std::vector<DenseParams>& layers, int64_t M) {
    if (M <= rows && acts.size() == layers.size()) return;
    acts.resize(layers.size());
    grads.resize(layers.size());
    for (size_t l = 0; l < layers.size(); ++l) {
        acts[l].resize(static_cast<size_t>(M * layers[l].out));
        grads[l].resize(static_cast<size_t>(M * layers[l].out));
    }
    losses.resize(static_cast<size_t>(M));
    rows = M;
}

void gather_batch(const std::vector<DenseParams>& layers, StepWorkspace& ws, const float* X_all,
                  Labels y_all, const int64_t* idx, int64_t M) {
    // X_all is (., width), y_all is (.), idx is (M); ws.x becomes (M, width), ws.y (M)
    const int64_t width = layers.front().in;
    if (static_cast<int64_t>(ws.x.size()) < M * width) ws.x.resize(static_cast<size_t>(M * width));
    if (static_cast<int64_t>(ws.y.size()) < M) ws.y.resize(static_cast<size_t>(M));
    float* dst = ws.x.data();
    int64_t* labels = ws.y.data();
    // Each thread copies the rows it is about to multiply (the first forward splits the
    // batch), so the forward reads lines this core wrote, not the other's.
    const int64_t out = layers.front().out;
    run_parts(threads_for(M * width * out, M), [&](int p, int parts) {
        int64_t b, e;
        split_range(M, parts, p, 1, &b, &e);
        const size_t bytes = static_cast<size_t>(width) * sizeof(float);
        for (int64_t i = b; i < e; ++i) {
            if (i + 2 < e) {  // the row after next: its first lines are on their way
                const char* ahead = reinterpret_cast<const char*>(X_all + idx[i + 2] * width);
                for (size_t off = 0; off < bytes && off < 1024; off += 64)
                    __builtin_prefetch(ahead + off);
            }
            std::memcpy(dst + i * width, X_all + idx[i] * width, bytes);
        }
        for (int64_t i = b; i < e; ++i) labels[i] = label_at(y_all, idx[i]);
    });
}

namespace {

// Touches every line of rows idx[0..n) of X_all (., width) so that they come in from memory
// (into this core's cache, where the other core's gather also finds them) while the caller's
// other thread is busy; stops early once *stop is set.
void prefetch_rows(const RowPrefetch& pf, const std::atomic<bool>* stop) {
    const size_t bytes = static_cast<size_t>(pf.width) * sizeof(float);
    for (int64_t i = 0; i < pf.n; ++i) {
        if (stop->load(std::memory_order_relaxed)) return;
        const char* row = reinterpret_cast<const char*>(pf.X_all + pf.idx[i] * pf.width);
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 2);
    }
}

// From this batch on, the second layer's (layers[1]'s) input and weight gradients run side by
// side when the middle is serial (below it the two take a few microseconds together, about what
// the hand-over costs).
constexpr int64_t kSplitLastMinRows = 16;
// The input gradient's claims there start at multiples of this many rows (and take at least
// as many): whole tiles of the 6- and 12-row register kernels.
constexpr int64_t kSplitRowAlign = 12;

// Whether every kernel of layers 1..L-1 (forward, loss, backward) is too small for a second
// thread, so that the step runs them on one thread anyway.
bool serial_after_first(const std::vector<DenseParams>& layers, int64_t M) {
    for (size_t l = 1; l < layers.size(); ++l)
        if (threads_for(M * layers[l].in * layers[l].out, M) > 1) return false;
    return threads_for(M * layers.back().out, M) == 1;  // the loss
}

}  // namespace

StepResult mlp_train_step(const std::vector<DenseParams>& layers, StepWorkspace& ws,
                          const float* X, Labels y, int64_t M, const SgdParams& sgd,
                          const RowPrefetch* next) {
    // X is (M, layers[0].in), y is (M); layer l maps (M, in_l) -> (M, out_l)
    const KernelTable& k = kernels();
    const size_t L = layers.size();
    ws.reserve(layers, M);
    using Clock = std::chrono::steady_clock;
    const bool timing = ws.timing;
    auto now = [timing] { return timing ? Clock::now() : Clock::time_point{}; };
    auto secs = [](Clock::time_point a, Clock::time_point b) {
        return std::chrono::duration<double>(b - a).count();
    };
    StepTimes& st = ws.step_times;  // this step's phases, when timing
    if (timing) {
        st.forward.assign(L, 0.0);
        st.backward.assign(L, 0.0);
        st.loss = st.update = st.split_wait = st.split_input_gradient = 0.0;
        st.split_steps = 0;
    }
    Clock::time_point mark = now();
    auto lap = [&](double* into) {  // adds the time since the last lap to *into
        if (!timing) return;
        const Clock::time_point t = Clock::now();
        *into += secs(mark, t);
        mark = t;
    };

    // Norm clipping needs every gradient before any update; otherwise each layer's update is
    // fused into its weight-gradient GEMM, and its forward may split the threads to match.
    const bool fuse_update = sgd.clip != Clip::Norm && sgd.clip != Clip::GlobalNorm;
    auto forward = fuse_update ? k.matmul_forward_train : k.matmul_forward;
    const DenseParams& first = layers[0];
    forward(ws.acts[0].data(), X, first.W, first.b, M, first.in, first.out, first.relu);
    lap(timing ? &st.forward[0] : nullptr);

    const float clip_value =
        sgd.clip == Clip::Value ? static_cast<float>(sgd.clip_threshold) : 0.0f;
    const SgdStep step{sgd.lr, sgd.momentum, sgd.dampening, sgd.weight_decay,
                       sgd.nesterov, sgd.first_step, clip_value};
    // Layer l's backward: the input gradient first (it needs the old W), then the weight
    // gradient with the update fused into it, unless norm clipping needs every gradient first.
    auto input_of = [&](size_t l) { return l > 0 ? ws.acts[l - 1].data() : X; };
    auto input_gradient = [&](size_t l, int64_t b, int64_t e) {  // l > 0, rows [b, e)
        const DenseParams& p = layers[l];
        const float* a_in = input_of(l);
        // The previous layer's ReLU output is its own mask: a > 0 exactly where z > 0.
        const float* mask = layers[l - 1].relu ? a_in + b * p.in : nullptr;
        k.matmul_backward_input(ws.grads[l - 1].data() + b * p.in, ws.grads[l].data() + b * p.out,
                                p.W, mask, e - b, p.out, p.in);
    };
    auto weight_gradient = [&](size_t l) {  // dW and db only
        const DenseParams& p = layers[l];
        k.matmul_backward_weight(p.dW, p.db, input_of(l), ws.grads[l].data(), M, p.in, p.out);
    };
    // The fused update on its own: sgd_update's rule with grad_scale 1, so the same bits.
    auto update_layer = [&](const DenseParams& p) {
        k.sgd_update(p.W, p.buf_W, p.dW, p.in * p.out, step.lr, step.momentum, step.dampening,
                     step.weight_decay, step.nesterov, step.first_step, 1.0f, step.clip_value);
        if (p.b)
            k.sgd_update(p.b, p.buf_b, p.db, p.out, step.lr, step.momentum, step.dampening,
                         step.weight_decay, step.nesterov, step.first_step, 1.0f,
                         step.clip_value);
    };
    auto backward = [&](size_t l) {
        const DenseParams& p = layers[l];
        if (l > 0) input_gradient(l, 0, M);
        if (fuse_update)
            k.matmul_backward_weight_sgd(p.dW, p.db, input_of(l), ws.grads[l].data(), M, p.in,
                                         p.out, p.W, p.buf_W, p.b, p.buf_b, step);
        else
            weight_gradient(l);
    };

    // Everything between the first layer's forward and its weight gradient: the other
    // layers' forward, the loss, the other layers' backward; with `split`, all but layers[1]'s
    // backward, which the caller then runs on two threads.
    StepResult r{};
    auto middle = [&](bool split) {
        const float* h = ws.acts[0].data();
        for (size_t l = 1; l < L; ++l) {
            const DenseParams& p = layers[l];
            forward(ws.acts[l].data(), h, p.W, p.b, M, p.in, p.out, p.relu);
            h = ws.acts[l].data();
            lap(timing ? &st.forward[l] : nullptr);
        }
        const int64_t C = layers[L - 1].out;
        r.loss = k.softmax_xent(ws.losses.data(), ws.grads[L - 1].data(), h, y, M, C,
                                static_cast<float>(1.0 / M));
        for (int64_t i = 0; i < M; ++i) {
            const float* z = h + i * C;
            int64_t best = 0;
            for (int64_t j = 1; j < C; ++j)
                if (z[j] > z[best]) best = j;
            r.correct += best == label_at(y, i);
        }
        lap(&st.loss);
        if (!std::isfinite(r.loss)) return;
        for (size_t l = L; l-- > (split ? 2 : 1);) {
            backward(l);
            lap(timing ? &st.backward[l] : nullptr);
        }
    };
    const bool prefetch = next && next->n > 0;
    if (num_threads() >= 2 && L >= 2 && serial_after_first(layers, M) &&
        (M >= kSplitLastMinRows || prefetch)) {
        // The middle's kernels are each too small to share, but two of them are independent:
        // the second layer's (layers[1]'s) input gradient (it needs only dY and the old W) and
        // its weight gradient. Thread 0 runs the second, unfused, then joins thread 1 on the
        // first: its rows go out in claims from both ends, thread 0 taking them from the front
        // as it claims the first layer's forward rows (so the mask rows it reads are mostly
        // its own), thread 1 from the back. (Run by thread 1 alone, the input gradient kept
        // thread 0 waiting for 7-20 us of a b100 step.) W's update waits for both. Until the
        // loss is ready thread 1 brings the next batch's rows in from memory for the next
        // step's gather, if there is one.
        const bool split = M >= kSplitLastMinRows;
        bool split_ran = false;
        std::atomic<bool> front_done{false};
        TwoEndedRows rows(M, kSplitRowAlign, kSplitRowAlign);
        auto input_rows = [&](int part) {
            int64_t b, e;
            while (rows.claim(part, &b, &e)) input_gradient(1, b, e);
        };
        double waited = 0, other = 0;  // the second thread's, when timing
        run_parts(2, [&](int p, int parts) {
            const bool two = split && parts == 2;
            if (p == 0) {
                split_ran = two;
                middle(two);
                front_done.store(true, std::memory_order_release);
                if (two && std::isfinite(r.loss)) {
                    weight_gradient(1);
                    input_rows(0);
                }
            } else {
                const Clock::time_point t0 = now();
                if (prefetch) prefetch_rows(*next, &front_done);
                if (!two) return;
                while (!front_done.load(std::memory_order_acquire)) __builtin_ia32_pause();
                const Clock::time_point t1 = now();
                if (std::isfinite(r.loss)) input_rows(1);
                waited = secs(t0, t1);
                other = secs(t1, now());
            }
        });
        if (split_ran && std::isfinite(r.loss) && fuse_update) update_layer(layers[1]);
        if (timing && split_ran) {
            lap(&st.backward[1]);  // from the end of the middle on thread 0
            st.split_steps = 1;
            st.split_wait = waited;
            st.split_input_gradient = other;
        }
    } else {
        middle(false);
    }
    if (!std::isfinite(r.loss)) return r;
    backward(0);
    lap(timing ? &st.backward[0] : nullptr);
    // This step's phases, added to the sums once the step has run to its update.
    auto commit = [&] {
        if (!timing) return;
        StepTimes& t = ws.times;
        if (t.forward.size() != L) t.forward.assign(L, 0.0), t.backward.assign(L, 0.0);
        for (size_t l = 0; l < L; ++l) {
            t.forward[l] += st.forward[l];
            t.backward[l] += st.backward[l];
        }
        t.loss += st.loss;
        t.update += st.update;
        t.steps += 1;
        t.split_steps += st.split_steps;
        t.split_wait += st.split_wait;
        t.split_input_gradient += st.split_input_gradient;
    };
    if (fuse_update) {
        commit();
        r.updated = true;
        return r;
    }

    // Norm clipping coefficients, as optim.SGD computes them: min(1, c / (‖g‖ + 1e-6)).
    std::vector<double> sq;
    for (const DenseParams& p : layers) {
        sq.push_back(k.sum_squares(p.dW, p.in * p.out));
        if (p.b) sq.push_back(k.sum_squares(p.db, p.out));
    }
    auto coef = [&](double sumsq) {
        const double c = sgd.clip_threshold / (std::sqrt(sumsq) + 1e-6);
        return static_cast<float>(c >= 1.0 ? 1.0 : c);  // NaN stays NaN, like torch.clamp
    };
    float global = 1.0f;
    if (sgd.clip == Clip::GlobalNorm) {
        double total = 0.0;
        for (double s : sq) total += s;
        global = coef(total);
    }
    size_t t = 0;
    auto update = [&](float* param, float* buf, const float* grad, int64_t n) {
        const float scale = sgd.clip == Clip::Norm ? coef(sq[t]) : global;
        ++t;
        k.sgd_update(param, sgd.momentum != 0.0f ? buf : nullptr, grad, n, sgd.lr, sgd.momentum,
                     sgd.dampening, sgd.weight_decay, sgd.nesterov, sgd.first_step, scale, 0.0f);
    };
    for (const DenseParams& p : layers) {
        update(p.W, p.buf_W, p.dW, p.in * p.out);
        if (p.b) update(p.b, p.buf_b, p.db, p.out);
    }
    lap(&st.update);
    commit();
    r.updated = true;
    return r;
}

}  // namespace fastdense
