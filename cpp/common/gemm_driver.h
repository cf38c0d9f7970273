// The Goto/BLIS GEMM driver shared by the vector ISAs: blocking, packing, edge tiles, threads
// and the fused epilogues. Only the register micro-kernel differs per ISA; each ISA's gemm_*.cpp
// defines FASTDENSE_ISA_NS and a `Ukernel` struct, then includes this file, so every
// instantiation lives in that ISA's namespace and is compiled with that ISA's flags only.
//
// Ukernel must provide:
//   static constexpr int MR, NR;            register tile, C rows x C columns
//   static constexpr int64_t KC, MC, NC;     cache blocking (see the ISA file for why)
//   template <int R> static void run(int64_t kc, const float* A, int64_t lda, const float* B,
//                                    int64_t ldb, float* C, int64_t ldc, bool accumulate, int nr,
//                                    const TileEpilogue* epi);
//     C(R,nr) = (accumulate ? C : 0) + A(R,kc) · B(kc,nr), one FMA per k in order, for
//     R <= MR rows (so a short edge tile costs only its own rows) and nr <= NR columns.
//     A is packed k-major with stride MR when lda == 0, read in place from k-major columns
//     (Xᵀ of a row-major X) -lda floats apart when lda < 0 (only where kDirectAT), else read
//     in place from row-major rows lda floats apart; B rows are ldb floats apart and NR floats
//     of each row
//     are readable (a packed panel, or a full-width panel of the caller's row-major matrix),
//     or only nr of them when kMaskedB says the kernel masks its B loads.
//   static constexpr bool kMaskedB;
//   static constexpr bool kPackRows;  and  template <int ROWS> static void pack_rows(float* dst,
//     const float* src, int64_t lda, int64_t kc): dst[k*ROWS + i] = src[i*lda + k], used for
//     full MR-row slivers of a row-major A and full NR-wide panels of a transposed B when
//     kPackRows; otherwise the driver's scalar loops do.
//   static constexpr bool kFusedEpilogue;  whether run applies a non-null epi (bias, ReLU,
//     mask) to its registers; otherwise the driver passes null and runs the scalar epilogue.
//   static constexpr bool kDirectAT;  whether run reads a k-major A in place (lda < 0), and
//   static constexpr int64_t kDirectATPanels;  for blocks of at most this many column panels.
//   static constexpr int64_t kDirectAPanels;  a row-major A is read in place (lda > 0) only
//     for blocks of at most this many column panels, and
//   static constexpr int64_t kDirectBMaxRows;  a row-major B only for blocks of at most this
//     many rows (besides the driver's own limits): past them the ISA's tiles run faster on
//     packed operands than packing costs.
//   static constexpr int kNarrowCols;  static constexpr int64_t kNarrowMinK;  run handles a
//     right edge of <= kNarrowCols columns with kc >= kNarrowMinK column-wise, which needs
//     a k-major A, packed or read in place (0: never).
//   static constexpr bool kPrefetchC;  whether the driver prefetches the next tile's rows of a
//     C too large for L2 into L2 while the current tile runs.
//   static constexpr int kNarrowBlockCols;  and, when it is not 0,  static void
//     narrow_block(kc, Ap, mc, B, ldb, C, ldc, accumulate, nr): a right edge of
//     nr <= kNarrowBlockCols columns with kc >= kNarrowMinK over all mc rows of a packed A
//     block at once, B being the packed edge panel, rows NR apart (no epilogue: the driver
//     applies its own).
//   static constexpr int kWideRows;  and  template <int R> static void run_wide(kc, Ap, B, ldb,
//     C, ldc, accumulate, nc): like run, for R <= kWideRows rows and all nc columns of an
//     in-place row-major B at once, reading no float past column nc (0 = not provided).
//
#ifndef FASTDENSE_ISA_NS
#error "define FASTDENSE_ISA_NS before including gemm_driver.h"
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <chrono>
#include <new>
#include <stdexcept>

#include "common/tile_epilogue.h"
#include "fastdense/kernels.h"
#include "fastdense/parallel.h"

namespace fastdense {
namespace FASTDENSE_ISA_NS {

// This ISA's elementwise SGD (elementwise_<isa>.cpp) on a (rows, cols) block with row stride
// ld, on the calling thread: applied to finished dW blocks.
void sgd_block(float* param, float* buf, const float* grad, int64_t rows, int64_t cols,
               int64_t ld, const SgdStep& s);
void sgd_update(float*, float*, const float*, int64_t, float, float, float, float, bool, bool,
                float, float);

namespace {

// A strided view of a matrix: element (i, j) lives at p[i*rs + j*cs]. Transposes are just
// swapped strides; packing turns any of them into the micro-kernel's contiguous panels.
struct View {
    const float* p;
    int64_t rs, cs;
    const float* at(int64_t i, int64_t j) const { return p + i * rs + j * cs; }
};

enum class Epilogue { None, Bias, BiasRelu, Relu, Mask, Sgd };

// What the epilogue needs besides the tile: all pointers are to the full (M,N)/(N) arrays.
struct Fuse {
    const float* bias = nullptr;  // (N): Bias, BiasRelu
    const float* mask = nullptr;  // like C: Mask
    const SgdStep* sgd = nullptr;  // Sgd: update param (like C) with the finished tile
    float* param = nullptr;
    float* buf = nullptr;
    int64_t k_total = 0;  // the reduction length: the epilogue runs after its last block
    bool acc_in = false;  // C already holds the chain's earlier part (a K split)
};

// Per-thread packing buffers, grown on demand and kept: the hot path allocates nothing after
// the first call of a given size. (A raw buffer rather than std::vector so that no std
// template is instantiated differently per ISA.)
struct Workspace {
    float* ptr = nullptr;
    size_t cap = 0;
    float* get(size_t n) {
        if (n > cap) {
            std::free(ptr);
            size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
            ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
            if (!ptr) {
                cap = 0;
                throw std::bad_alloc();
            }
            cap = n;
        }
        return ptr;
    }
    ~Workspace() { std::free(ptr); }
};

template <class U>
void pack_a(float* dst, View A, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
    // A block (mc,kc) -> ceil(mc/MR) panels of (kc, MR); rows past mc are never read.
    constexpr int MR = U::MR;
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t mr = mc - ir < MR ? mc - ir : MR;
        float* d = dst + ir * kc;
        if (A.cs == 1 && mr == MR && U::kPackRows) {  // a full sliver, the ISA's transpose
            U::template pack_rows<MR>(d, A.at(i0 + ir, k0), A.rs, kc);
        } else if (A.cs == 1) {  // rows contiguous in k: read each row once, scatter into panel
            for (int64_t i = 0; i < mr; ++i) {
                const float* s = A.at(i0 + ir + i, k0);
                for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = s[k];
            }
        } else if (A.rs == 1 && mr == MR) {  // Xᵀ of a row-major X: MR contiguous floats per k
            // (a fixed-size memcpy is a couple of vector moves; the element loop was scalar)
            for (int64_t k = 0; k < kc; ++k)
                std::memcpy(d + k * MR, A.at(i0 + ir, k0 + k), MR * sizeof(float));
        } else {  // columns contiguous (transposed A): each k is one short contiguous run
            for (int64_t k = 0; k < kc; ++k) {
                const float* s = A.at(i0 + ir, k0 + k);
                for (int64_t i = 0; i < mr; ++i) d[k * MR + i] = s[i * A.rs];
            }
        }
    }
}

template <class U>
void pack_b(float* dst, View B, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    // B block (kc,nc) -> ceil(nc/NR) panels of (kc, NR), zero-padded to a full NR.
    constexpr int NR = U::NR;
    if (B.cs == 1 && nc >= 2 * NR) {
        // A row-major B: one source row at a time, across all full panels, so each row is
        // read once, contiguously (panel by panel, every k is a line of its own, rows apart:
        // with 4 KiB rows they share one L1 set and a page each; X·W 1.02-1.08x). Each
        // panel row is a fixed-size memcpy, which the compiler emits as the ISA's vector
        // moves: written as an element loop it stayed scalar (the compiler could not rule
        // out that source and destination overlap), 16 loads and 16 stores per panel row.
        const int64_t full = nc / NR * NR;
        for (int64_t k = 0; k < kc; ++k) {
            const float* s = B.at(k0 + k, j0);
            float* dk = dst + k * NR;
            for (int64_t jr = 0; jr < full; jr += NR)
                std::memcpy(dk + jr * kc, s + jr, NR * sizeof(float));
        }
        if (full == nc) return;
        dst += full * kc;  // the right-edge panel, below
        j0 += full;
        nc -= full;
    }
    for (int64_t jr = 0; jr < nc; jr += NR) {
        const int64_t nr = nc - jr < NR ? nc - jr : NR;
        float* d = dst + jr * kc;
        if (B.cs == 1) {
            // (nr < NR only at the right edge.) A row whose NR floats from s still lie within
            // the block, before the end of its last row, is copied whole and its lanes past nr
            // zeroed: fixed-size vector code. Element by element the edge panel took as long
            // to pack as all the full panels of an N = 100 block.
            // (Eight 32-bit lanes of the compiler's vector extension: 256-bit loads, ANDs
            // and stores, whatever the ISA; a 64-byte type went through the stack.)
            typedef uint32_t Lanes __attribute__((vector_size(32)));
            static_assert(NR % 8 == 0, "whole 8-lane vectors per panel row");
            const int64_t whole_to = (kc - 1) * B.rs + nr;  // floats from the block's start
            Lanes keep[NR / 8];  // all ones in the lanes below nr
            for (int j = 0; j < NR; ++j) keep[j / 8][j % 8] = j < nr ? ~uint32_t(0) : 0;
            for (int64_t k = 0; k < kc; ++k) {
                const float* s = B.at(k0 + k, j0 + jr);
                float* dk = d + k * NR;
                if (k * B.rs + NR <= whole_to) {
                    for (int v = 0; v < NR / 8; ++v) {
                        Lanes row;
                        std::memcpy(&row, s + 8 * v, sizeof row);
                        row &= keep[v];
                        std::memcpy(dk + 8 * v, &row, sizeof row);
                    }
                } else {
                    for (int64_t j = 0; j < nr; ++j) dk[j] = s[j];
                    for (int64_t j = nr; j < NR; ++j) dk[j] = 0.0f;
                }
            }
        } else if (B.rs == 1 && nr == NR && U::kPackRows) {  // a full transposed panel
            U::template pack_rows<NR>(d, B.at(k0, j0 + jr), B.cs, kc);
        } else {  // transposed B (dY·Wᵀ): a transpose in blocks of 8 k
            // Reading 8 consecutive k of each of the NR source rows, then writing 8 whole
            // panel rows, keeps both sides in a few cache lines (a column-at-a-time walk
            // wrote with an NR-float stride and was the slowest part of dY·Wᵀ).
            const float* s0 = B.at(k0, j0 + jr);
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                for (int64_t j = 0; j < nr; ++j) {
                    const float* s = s0 + j * B.cs + k * B.rs;
                    for (int64_t q = 0; q < 8; ++q) d[(k + q) * NR + j] = s[q * B.rs];
                }
                for (int64_t q = 0; q < 8; ++q)
                    for (int64_t j = nr; j < NR; ++j) d[(k + q) * NR + j] = 0.0f;
            }
            for (; k < kc; ++k) {
                for (int64_t j = 0; j < nr; ++j) d[k * NR + j] = s0[j * B.cs + k * B.rs];
                for (int64_t j = nr; j < NR; ++j) d[k * NR + j] = 0.0f;
            }
        }
    }
}

// Applied once per tile after the last K block, while the tile is still in L1. The order
// (chain, then + bias, then ReLU / mask) is the same as in ref/, so results match bitwise.
template <Epilogue E>
void epilogue(float* C, int64_t ldc, int64_t mr, int64_t nr, int64_t ci, int64_t cj,
              const Fuse& f) {
    if (E == Epilogue::None) return;
    for (int64_t i = 0; i < mr; ++i) {
        float* c = C + i * ldc;
        const int64_t at = (ci + i) * ldc + cj;  // this row's offset in C-shaped arrays
        if (E == Epilogue::Bias || E == Epilogue::BiasRelu)
            for (int64_t j = 0; j < nr; ++j) c[j] = c[j] + f.bias[cj + j];
        if (E == Epilogue::BiasRelu || E == Epilogue::Relu)
            for (int64_t j = 0; j < nr; ++j) c[j] = c[j] < 0.0f ? 0.0f : c[j];
        if (E == Epilogue::Mask) {
            const float* m = f.mask + at;
            for (int64_t j = 0; j < nr; ++j) c[j] = m[j] > 0.0f ? c[j] : 0.0f;
        }
    }
}

// The SGD "epilogue" runs once per finished block of rows rather than per tile: a tile row is
// only 32 floats, too short to pay for a call. SGD is elementwise, so updating the block in
// row pieces gives the very bits of one sgd_update over the whole array.
void sgd_rows(float* C, int64_t ldc, int64_t ci, int64_t mr, int64_t cj, int64_t nc,
              const Fuse& f) {
    // C (mr, nc) at row ci, column cj of a (., ldc) gradient; param and buf shaped like it
    const int64_t at = ci * ldc + cj;
    sgd_block(f.param + at, f.buf ? f.buf + at : nullptr, C, mr, nc, ldc, *f.sgd);
}

// Calls U::run<mr> for a runtime row count 1 <= mr <= MR (one instantiation per row count).
template <class U, int R = U::MR>
inline void run_rows(int mr, int64_t kc, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float* C, int64_t ldc, bool acc, int nr,
                     const TileEpilogue* epi) {
    if constexpr (R == 1) {
        U::template run<1>(kc, A, lda, B, ldb, C, ldc, acc, nr, epi);
    } else {
        if (mr == R) U::template run<R>(kc, A, lda, B, ldb, C, ldc, acc, nr, epi);
        else run_rows<U, R - 1>(mr, kc, A, lda, B, ldb, C, ldc, acc, nr, epi);
    }
}

// Whether the register tiles may read a matrix in place whose rows (or, for Xᵀ, columns) are
// `stride` floats apart. At a multiple of 2 KiB they fall into one or two of the L1's 64 sets
// (4 KiB apart: all of a tile's rows compete for one set's 8 ways on Zen 4, 12 on Intel), and
// the tile thrashes; such a matrix is packed instead. A read in place was 10% slower at
// 256x1024·1024x1024 and Xᵀ 3-4% at 1024³ on Zen 4; B (W of X·W, N = 1024 or 2048) 1.7-2x
// slower on an Intel Xeon (model 207), on 1 and 2 threads.
constexpr bool in_place_ok(int64_t stride) { return stride % 512 != 0; }

// Up to this many output rows, a row-major B is read in place instead of packed: packing
// costs a full copy of the K x N block per call, which only pays off when many row panels
// reuse it. (A batch-1 layer would otherwise copy its whole weight matrix every step.)
constexpr int64_t kDirectBRows = 128;

// The right edge C[ic:ic+mc, cj:cj+nr] of one K block from packed A (Ap) and the edge panel
// of B (Bj, rows NR apart), by the ISA's narrow_block, then the scalar epilogue (bias, ReLU
// or mask) after the last K block, on a block the narrow tile has just left in L1. Out of
// line: in macro_block's loop it slowed the other paths.
template <class U, Epilogue E>
[[gnu::noinline]] void narrow_right_edge(float* C, int64_t ldc, const float* Ap,
                                         const float* Bj, int64_t ic, int64_t mc, int64_t cj,
                                         int64_t nr, int64_t kc, bool first, bool last,
                                         const Fuse& fuse) {
    float* c = C + ic * ldc + cj;
    U::narrow_block(kc, Ap, mc, Bj, U::NR, c, ldc, !first, static_cast<int>(nr));
    if (last) epilogue<E>(c, ldc, mc, nr, ic, cj, fuse);
}

// gemm_parts_probe's private C, per thread, in L1. The register tiles take the next of a ring
// of kProbeTiles tiles each time. (With a single one, each tile's loads of C waited for the
// previous tile's last FMAs and stores: a dependency the caller's C, where consecutive tiles
// never share an address, does not have. Part 2 then ran slower than the whole GEMM at
// 100x784·784x100.) The paths that write a block of C at once get a block: the narrow
// right edge (at most MC rows of NR floats) and run_wide (kWideRows rows of NC floats).
constexpr int kProbeTiles = 8;
template <class U>
float* probe_tile() {
    alignas(64) static thread_local float t[kProbeTiles][U::MR * U::NR];
    static thread_local unsigned next = 0;
    return t[next++ % kProbeTiles];
}
template <class U>
float* probe_edge() {
    alignas(64) static thread_local float t[U::MC * U::NR];
    return t;
}
template <class U>
float* probe_wide() {
    alignas(64) static thread_local float t[(U::kWideRows > 0 ? U::kWideRows : 1) * U::NC];
    return t;
}

// Rows [m0, m1) of the C block [jc, jc+nc) for one K block [pc, pc+kc): pack A by MC rows and
// run the register tiles over a B block that is packed in Bp, or read in place (direct_b; Bp
// then holds at most the right-edge panel, for ISAs that cannot mask their B loads).
// PARTS (only gemm_parts_probe's instantiations): 1 leaves A unpacked (the tiles read what the
// buffer holds), 2 gives the tiles private C (probe_tile, probe_edge, probe_wide) instead of
// the caller's.
template <class U, Epilogue E, bool NARROW, int PARTS = 0>
void macro_block(float* C, int64_t ldc, View A, View B, bool direct_b, const float* Bp,
                 float* Ap, int64_t m0, int64_t m1, int64_t jc, int64_t nc, int64_t pc,
                 int64_t kc, const Fuse& fuse) {
    constexpr int MR = U::MR, NR = U::NR;
    const bool first = pc == 0 && !fuse.acc_in, last = pc + kc == fuse.k_total;
    constexpr bool in_tile = U::kFusedEpilogue && E != Epilogue::None && E != Epilogue::Sgd;
    // For a short block (a batch of <= 128 rows) a row-major A (X·W, dY·Wᵀ) is read in place
    // by the register tiles, which saves packing it (a strided scatter without the ISA's
    // pack_rows: 12% of a 100x784·784x100 X·W). Not when the block has a right edge of
    // <= 8 columns that the ISA runs column-wise from a packed A: there packing with
    // pack_rows and the cheaper edge win (N = 100: 155 vs 168 us on 1 thread). Taller blocks
    // are packed: there the packed panel's contiguous reads win (reading 12 rows in place was
    // 5-9% slower at 1024^3; these figures from Zen 4). So are rows a multiple of 2 KiB apart
    // (in_place_ok), and blocks wider than the ISA reads in place (kDirectAPanels, with the
    // ISA's own figures).
    const int64_t edge = nc % U::NR;
    const bool narrow_edge =
        U::kPackRows && edge > 0 && edge <= U::kNarrowCols && kc >= U::kNarrowMinK;
    const int64_t panels = (nc + U::NR - 1) / U::NR;
    const bool direct_a = A.cs == 1 && m1 - m0 <= kDirectBRows && panels <= U::kDirectAPanels &&
                          in_place_ok(A.rs) && !narrow_edge;
    // A transposed A (Xᵀ·dY) is read in place where the ISA can: per k, a sliver's MR rows
    // are MR contiguous floats of one row of X, and reading them there once per column panel
    // cost less than packing them, however many panels reuse the sliver (1 thread: 166 -> 156
    // us for 100x784ᵀ · 100x100, 5.2 -> 3.6 us for 100x100ᵀ · 100x10, +4% at 1000³ and at
    // 1024x4000ᵀ · 1024x4000, all on Zen 4). Not when X's rows are a multiple of 2 KiB apart
    // (in_place_ok), nor for more column panels than the ISA says (kDirectATPanels).
    const bool direct_at = U::kDirectAT && A.rs == 1 && A.cs != 1 &&
                           in_place_ok(A.cs) && panels <= U::kDirectATPanels;
    // A C of 512 KiB or more (this block's rows at the full row length) is not in L2 when a
    // later K block comes back to it, and each tile's first loads of C would wait on L3. The
    // next tile's rows are fetched into L2 while this tile runs (into L2 rather than L1: with
    // rows a multiple of 4 KiB apart, the two tiles' 12 lines would share one L1 set).
    const bool prefetch_c =
        U::kPrefetchC && !(PARTS & 2) && (m1 - m0) * ldc >= (int64_t(1) << 17);
    // A right edge of at most kNarrowBlockCols columns, from a packed A, is left out of the
    // panel loop and run over each block of rows at once by the ISA's narrow_block. (NARROW:
    // the block has such an edge. Blocks without one run an instantiation without this
    // code: with it, the loop's other paths were slower, 100x100·100x10 and a batch-1 step
    // by 3-5%.)
    const bool edge_by_block = NARROW && edge > 0 && edge <= U::kNarrowBlockCols &&
                               kc >= U::kNarrowMinK && !(direct_a || direct_at);
    const int64_t tiled = edge_by_block ? nc - edge : nc;
    for (int64_t ic = m0; ic < m1; ic += U::MC) {
        const int64_t mc = m1 - ic < U::MC ? m1 - ic : U::MC;
        const bool wide = direct_b && mc <= U::kWideRows;
        if (!(PARTS & 1) && (!(direct_a || direct_at) || wide)) pack_a<U>(Ap, A, ic, mc, pc, kc);
        if (wide) {
            float* c = PARTS & 2 ? probe_wide<U>() : C + ic * ldc + jc;
            const int64_t ldw = PARTS & 2 ? U::NC : ldc;
            const float* Bj = B.at(pc, jc);
            if (mc == 1) U::template run_wide<1>(kc, Ap, Bj, B.rs, c, ldw, !first, nc);
            else U::template run_wide<U::kWideRows>(kc, Ap, Bj, B.rs, c, ldw, !first, nc);
            if (last) epilogue<E>(c, ldc, mc, nc, ic, jc, fuse);
            if (E == Epilogue::Sgd && last) sgd_rows(c, ldc, ic, mc, jc, nc, fuse);
            continue;
        }
        for (int64_t jr = 0; jr < tiled; jr += NR) {
            const int nr = static_cast<int>(nc - jr < NR ? nc - jr : NR);
            const float* Bj = Bp + jr * kc;
            int64_t ldb = NR;
            if (direct_b) {
                if (nr == NR || U::kMaskedB) {
                    Bj = B.at(pc, jc + jr);
                    ldb = B.rs;
                } else {
                    Bj = Bp;
                }
            }
            for (int64_t ir = 0; ir < mc; ir += MR) {
                const int mr = static_cast<int>(mc - ir < MR ? mc - ir : MR);
                const int64_t ci = ic + ir, cj = jc + jr;
                float* c = PARTS & 2 ? probe_tile<U>() : C + ci * ldc + cj;
                const int64_t ldt = PARTS & 2 ? NR : ldc;
                // The last K block's bias/ReLU/mask, in the tile's registers where the ISA can.
                const TileEpilogue* te = nullptr;
                TileEpilogue tile_epi;
                if (in_tile && last) {
                    tile_epi.bias = fuse.bias ? fuse.bias + cj : nullptr;
                    tile_epi.mask = fuse.mask ? fuse.mask + ci * ldc + cj : nullptr;
                    tile_epi.ldm = ldc;
                    tile_epi.relu = E == Epilogue::BiasRelu || E == Epilogue::Relu;
                    te = &tile_epi;
                }
                if (prefetch_c) {
                    // the next sliver of this panel, or the first of the next panel
                    const bool down = ir + MR < mc;
                    if (down || jr + NR < nc) {
                        const float* next = down ? c + MR * ldc : C + ic * ldc + cj + NR;
                        const int64_t rows = down ? (mc - ir - MR < MR ? mc - ir - MR : MR)
                                                  : (mc < MR ? mc : MR);
                        for (int64_t i = 0; i < rows; ++i) {  // a row's NR floats: 1-2 lines
                            __builtin_prefetch(next + i * ldc, 0, 2);
                            __builtin_prefetch(next + i * ldc + NR - 1, 0, 2);
                        }
                    }
                }
                if (direct_a)
                    run_rows<U>(mr, kc, A.at(ci, pc), A.rs, Bj, ldb, c, ldt, !first, nr, te);
                else if (direct_at)
                    run_rows<U>(mr, kc, A.at(ci, pc), -A.cs, Bj, ldb, c, ldt, !first, nr, te);
                else
                    run_rows<U>(mr, kc, Ap + ir * kc, 0, Bj, ldb, c, ldt, !first, nr, te);
                if (last && !in_tile) epilogue<E>(c, ldc, mr, nr, ci, cj, fuse);
            }
        }
        if constexpr (NARROW) {
            if (tiled < nc) {  // the right edge, over the whole block at once
                const float* Bj = direct_b ? Bp : Bp + tiled * kc;
                if (PARTS & 2)
                    U::narrow_block(kc, Ap, mc, Bj, U::NR, probe_edge<U>(), U::NR, !first,
                                    static_cast<int>(nc - tiled));
                else
                    narrow_right_edge<U, E>(C, ldc, Ap, Bj, ic, mc, jc + tiled, nc - tiled, kc,
                                            first, last, fuse);
            }
        }
        if (E == Epilogue::Sgd && last) sgd_rows(C + ic * ldc + jc, ldc, ic, mc, jc, nc, fuse);
    }
}

// macro_block, with the narrow right-edge code only where the block has such an edge.
template <class U, Epilogue E, int PARTS = 0>
inline void run_block(float* C, int64_t ldc, View A, View B, bool direct_b, const float* Bp,
                      float* Ap, int64_t m0, int64_t m1, int64_t jc, int64_t nc, int64_t pc,
                      int64_t kc, const Fuse& fuse) {
    if constexpr (U::kNarrowBlockCols > 0) {
        const int64_t edge = nc % U::NR;
        if (edge > 0 && edge <= U::kNarrowBlockCols) {
            macro_block<U, E, true, PARTS>(C, ldc, A, B, direct_b, Bp, Ap, m0, m1, jc, nc, pc,
                                           kc, fuse);
            return;
        }
    }
    macro_block<U, E, false, PARTS>(C, ldc, A, B, direct_b, Bp, Ap, m0, m1, jc, nc, pc, kc,
                                    fuse);
}

// The length of the K blocks for a reduction of K: KC, except where the last block would be
// short (under KC/4: with KC = 256, 784 = 3 x 256 + 16, a step's first layer), which then
// goes to the others if they stay within KC + KC/4 (784 = 262 + 262 + 260). A short block
// costs as much as a full one in loads and stores of C, for a fraction of the FMAs. (The
// bits do not depend on the blocking: each chain continues from the exact fp32 value stored
// at a block's end.)
template <class U>
constexpr int64_t k_block(int64_t K) {
    const int64_t n = (K + U::KC - 1) / U::KC;
    if (n > 1 && K - (n - 1) * U::KC < U::KC / 4) {
        const int64_t even = (K + n - 2) / (n - 1);
        if (even <= U::KC + U::KC / 4) return even;
    }
    return U::KC;
}

// This thread's packing buffers: one MC x KC block of A, one KC x NC block of B (with room
// for k_block's longer blocks).
template <class U>
float* a_workspace() {
    static thread_local Workspace ws;
    const int64_t rows = (U::MC + U::MR - 1) / U::MR * U::MR;
    return ws.get(static_cast<size_t>((U::KC + U::KC / 4) * rows));
}

template <class U>
constexpr int64_t b_workspace_floats() {
    return (U::KC + U::KC / 4) * ((U::NC + U::NR - 1) / U::NR * U::NR);
}

template <class U>
float* b_workspace() {
    static thread_local Workspace ws;
    return ws.get(static_cast<size_t>(b_workspace_floats<U>()));
}

// C[m0:m1, n0:n1] on the calling thread (PARTS: macro_block's; 1 also leaves B unpacked).
template <class U, Epilogue E, int PARTS = 0>
void gemm_block(float* C, int64_t ldc, View A, View B, int64_t K, int64_t m0, int64_t m1,
                int64_t n0, int64_t n1, const Fuse& fuse) {
    constexpr int NR = U::NR;
    // (One sliver of rows reads each line of B once, wherever it lies: a batch of one packs
    // nothing. Past kDirectBMaxRows rows, the ISA's tiles win more on packed panels.)
    const bool direct_b = B.cs == 1 && m1 - m0 <= kDirectBRows && m1 - m0 <= U::kDirectBMaxRows &&
                          (in_place_ok(B.rs) || m1 - m0 <= U::MR);
    float* Bp = b_workspace<U>();
    float* Ap = a_workspace<U>();
    for (int64_t jc = n0; jc < n1; jc += U::NC) {
        const int64_t nc = n1 - jc < U::NC ? n1 - jc : U::NC;
        const int64_t tail = nc % NR;  // width of the right-edge panel, 0 if none
        const int64_t kb = k_block<U>(K);
        for (int64_t pc = 0; pc < K; pc += kb) {
            const int64_t kc = K - pc < kb ? K - pc : kb;
            if (!direct_b) {
                if (!(PARTS & 1)) pack_b<U>(Bp, B, pc, kc, jc, nc);
            } else if (tail && !U::kMaskedB && m1 - m0 > U::kWideRows &&
                       !(PARTS & 1)) {  // (run_wide reads B)
                pack_b<U>(Bp, B, pc, kc, jc + nc - tail, tail);
            }
            run_block<U, E, PARTS>(C, ldc, A, B, direct_b, Bp, Ap, m0, m1, jc, nc, pc, kc,
                                   fuse);
        }
    }
}

// C(M,N) = A(M,K)·B(K,N) with epilogue E on a team of two that splits C's columns: part 0
// takes column_share() of the column panels (kernels.h), part 1 the rest, and calls large
// enough to time (>= 2^26 multiply-adds: 0.3 ms or more per part) report both parts' times,
// from which the next such call's share follows. Each part packs all of A, as in any column
// split, and its own columns of B.
template <class U, Epilogue E>
void gemm_column_split(float* C, View A, View B, int64_t M, int64_t K, int64_t N,
                       const Fuse& fuse) {
    const int64_t panels = (N + U::NR - 1) / U::NR;
    int64_t s = panels * column_share() / kColumnShareOne;  // halves: split_range's
    s = s < 1 ? 1 : s > panels - 1 ? panels - 1 : s;
    const int64_t split = s * U::NR;  // < N: at least one panel is part 1's
    double seconds[2] = {0, 0};
    int team = 1;
    run_parts(2, [&](int p, int parts) {
        const auto t0 = std::chrono::steady_clock::now();
        const int64_t b = parts == 2 && p == 1 ? split : 0, e = parts == 2 && p == 0 ? split : N;
        gemm_block<U, E>(C, N, A, B, K, 0, M, b, e, fuse);
        seconds[p] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (p == 0) team = parts;
    });
    if (team == 2 && M * K * N >= (int64_t(1) << 26))
        record_column_split(seconds[0], static_cast<double>(split), seconds[1],
                            static_cast<double>(N - split));
}

// C(M,N) = A(M,K)·B(K,N) with epilogue E. Threads split rows of C (or, for outputs at least
// as wide as they are tall, and short-and-wide ones such as a batch of one, columns), never
// K. (Only the training forward below, gemm_split_k2, hands each chain from one thread to
// the other at a fixed k.)
template <class U, Epilogue E>
void gemm(float* C, View A, View B, int64_t M, int64_t K, int64_t N, Fuse fuse = {}) {
    fuse.k_total = K;
    const int64_t row_tiles = (M + U::MR - 1) / U::MR, col_tiles = (N + U::NR - 1) / U::NR;
    // C at least as wide as it is tall (and taller than a batch read in place): the threads
    // split its columns, so each packs only its share of B, and each reads and writes the
    // same share of W in a training step's forward, input gradient and weight gradient
    // with its fused update. On a Zen 3 guest, 2 threads, same-process A/B together with
    // pack_b's row-by-row copy: steps 784-1024-1024-10 b256 1.07x, 4096-4096-4096-10 b1024
    // 1.10x; GEMMs 256x1024·1024x1024 dY·Wᵀ 1.13x, 512x2048·2048x2048 X·W 1.10x, 1024³
    // 1.02-1.04x. Split by rows, each thread packed all of B (or, taller, shared one packed
    // B, with a barrier per block and half its panels read from the other core's cache).
    const bool by_columns = N >= M && M > kDirectBRows;
    const bool split_rows = !by_columns && (row_tiles >= col_tiles || row_tiles >= 8);
    const int t = threads_for(M * N * K, split_rows ? row_tiles : col_tiles);
    if (t == 1) {
        gemm_block<U, E>(C, N, A, B, K, 0, M, 0, N, fuse);
        return;
    }
    // Two threads over rows, each with all of B packed in its own buffer (one column block,
    // every K block): the rows go out in claims from both ends (TwoEndedRows), and each claim
    // runs all its K blocks. Where each thread's half would read B in place (<= 12 rows), or
    // B is larger, the static split below stays.
    const int64_t n_packed = (N + U::NR - 1) / U::NR * U::NR;
    const bool b_whole = N <= U::NC && K * n_packed <= b_workspace_floats<U>();
    const bool own_b = K <= U::KC && K * N <= (int64_t(1) << 15);
    if (t == 2 && split_rows && b_whole && M < (int64_t(1) << 31) &&
        (M > t * kDirectBRows ? own_b : M - M / 2 > U::kDirectBMaxRows)) {
        TwoEndedRows rows(M, U::MR, 2 * U::MR);
        const int64_t kb = k_block<U>(K);
        run_parts(t, [&](int p, int) {
            float* Bp = b_workspace<U>();
            float* Ap = a_workspace<U>();
            for (int64_t pc = 0; pc < K; pc += kb)
                pack_b<U>(Bp + pc * n_packed, B, pc, K - pc < kb ? K - pc : kb, 0, N);
            int64_t b, e;
            while (rows.claim(p, &b, &e))
                for (int64_t pc = 0; pc < K; pc += kb)
                    run_block<U, E>(C, N, A, B, false, Bp + pc * n_packed, Ap, b, e, 0, N, pc,
                                    K - pc < kb ? K - pc : kb, fuse);
        });
        return;
    }
    if (split_rows && M > t * kDirectBRows) {
        // Tall C: the threads share one packed B block, each packing a share of its panels,
        // instead of every thread packing all of it (the transposed B of dY·Wᵀ especially).
        // A B of at most one K block and 32 K floats (dY of a batch of <= 128 and 256
        // outputs: the weight gradient of a training step) is each thread's own instead: no
        // barriers, no panels written by one core and read by the other. A row-major one is
        // read in place (it fits in L2; packing it took 2% of each thread's time in a
        // 784-100-10 b100 step), a transposed one is packed whole.
        float* Bp = b_workspace<U>();  // the calling thread's, read by the whole team
        const int64_t kb = k_block<U>(K);
        run_parts(t, [&](int p, int parts) {
            int64_t b, e;
            // In reverse thread order: the calling thread (0) takes the last rows. (For dW
            // these were the weight rows whose K-split forward it finished, when batches of
            // 32..256 split K; the order stays, nothing depends on it now.)
            split_range(M, parts, parts - 1 - p, U::MR, &b, &e);
            float* Ap = a_workspace<U>();
            float* Bmine = own_b ? b_workspace<U>() : Bp;
            for (int64_t jc = 0; jc < N; jc += U::NC) {
                const int64_t nc = N - jc < U::NC ? N - jc : U::NC;
                for (int64_t pc = 0; pc < K; pc += kb) {
                    const int64_t kc = K - pc < kb ? K - pc : kb;
                    if (own_b) {
                        const int64_t tail = nc % U::NR;
                        const bool direct =
                            B.cs == 1 && in_place_ok(B.rs) && e - b <= U::kDirectBMaxRows;
                        if (!direct) pack_b<U>(Bmine, B, pc, kc, jc, nc);
                        else if (tail && !U::kMaskedB)
                            pack_b<U>(Bmine, B, pc, kc, jc + nc - tail, tail);
                        if (b < e)
                            run_block<U, E>(C, N, A, B, direct, Bmine, Ap, b, e, jc, nc, pc,
                                            kc, fuse);
                        continue;
                    }
                    for (int64_t jr = p * U::NR; jr < nc; jr += parts * U::NR)
                        pack_b<U>(Bp + jr * kc, B, pc, kc, jc + jr,
                                  nc - jr < U::NR ? nc - jr : U::NR);
#pragma omp barrier
                    if (b < e)
                        run_block<U, E>(C, N, A, B, false, Bp, Ap, b, e, jc, nc, pc, kc, fuse);
#pragma omp barrier
                }
            }
        });
        return;
    }
    if (t == 2 && !split_rows) {
        gemm_column_split<U, E>(C, A, B, M, K, N, fuse);
        return;
    }
    run_parts(t, [&](int p, int parts) {
        int64_t b, e;
        if (split_rows) {
            // Even row counts rather than whole tiles: 100 rows on 2 threads are 50 + 50 (each
            // 4 full tiles and a 2-row one) instead of 48 + 52, where one thread waited.
            split_range(M, parts, p, 1, &b, &e);
            if (b < e) gemm_block<U, E>(C, N, A, B, K, b, e, 0, N, fuse);
        } else {
            split_range(N, parts, p, U::NR, &b, &e);
            if (b < e) gemm_block<U, E>(C, N, A, B, K, 0, M, b, e, fuse);
        }
    });
}

// C(M,N) = A(M,K)·B(K,N) with epilogue E on a team of two that splits K, not the columns: the
// forward of a batch of one (forward_splits_k) whose weights the step's fused SGD updates next
// (matmul_backward_weight_sgd splits W's rows, which are this K, at the same boundary kb).
// Split at kb, each core reads only the W rows it later updates, from its own cache; a
// one-thread forward would leave all of W in one core's cache for the other to take.
//
// The chain stays one sequential FMA chain: thread 1 runs k in [0, kb) over all of C and
// publishes it; thread 0 continues C from k = kb and applies the epilogue. Storing and
// reloading an fp32 partial sum is exact, so the bits are those of gemm(). The calling thread
// 0 finishes the chain so that the output is in its cache for the small layers and loss that
// follow. (Batches of 32..256 ran the same split, pipelined over 12x32 units, until a machine
// whose cores are ~190 ns apart made the per-unit hand-over cost more than it saved:
// parallel.h.)
template <class U, Epilogue E>
void gemm_split_k2(float* C, View A, View B, int64_t M, int64_t K, int64_t N, int64_t kb,
                   Fuse fuse) {
    alignas(64) std::atomic<bool> done{false};  // thread 1 has stored C's chains up to kb
    run_parts(2, [&](int p, int parts) {
        Fuse f = fuse;
        if (parts == 1) {  // the team was not granted: the whole chain on this thread
            f.k_total = K;
            gemm_block<U, E>(C, N, A, B, K, 0, M, 0, N, f);
            return;
        }
        const bool head = p == 1;  // runs k < kb; the calling thread 0 finishes the chain
        const int64_t k0 = head ? 0 : kb, kn = head ? kb : K - kb;
        const View Ak{A.at(0, k0), A.rs, A.cs}, Bk{B.at(k0, 0), B.rs, B.cs};
        f.k_total = kn;
        f.acc_in = !head;
        if (head) {
            gemm_block<U, Epilogue::None>(C, N, Ak, Bk, kn, 0, M, 0, N, f);
            done.store(true, std::memory_order_release);
        } else {
            while (!done.load(std::memory_order_acquire)) __builtin_ia32_pause();
            gemm_block<U, E>(C, N, Ak, Bk, kn, 0, M, 0, N, f);
        }
    });
}

// db(N) = Σ_m dY(m, :), in row order from 0: the same additions as ref/.
void column_sums(float* db, const float* dY, int64_t M, int64_t N) {
    for (int64_t j = 0; j < N; ++j) db[j] = 0.0f;
    for (int64_t m = 0; m < M; ++m) {
        const float* r = dY + m * N;
        for (int64_t j = 0; j < N; ++j) db[j] = db[j] + r[j];
    }
}

}  // namespace

// Benchmark probe: `reps` passes of the register tile over one MC x KC block of packed A (its
// MC/MR slivers) against 8 packed B panels, accumulating into a private C: the operands a large
// GEMM's inner loops run on between two packings, here already in cache, and nothing else (no
// packing, no caller's C to load and store, no blocking loops). Its rate is the ceiling of
// every GEMM of this ISA on one core. Returns the floating-point operations done.
double tile_probe(int64_t reps) {
    using U = Ukernel;
    constexpr int64_t MR = U::MR, NR = U::NR, KC = U::KC, slivers = U::MC / U::MR, panels = 8;
    static thread_local Workspace wa, wb, wc;
    float* A = wa.get(static_cast<size_t>(slivers * MR * KC));
    float* B = wb.get(static_cast<size_t>(panels * NR * KC));
    float* C = wc.get(static_cast<size_t>(slivers * panels * MR * NR));
    // Small values: C grows by about KC * 1e-6 per pass, far from overflow and from subnormals.
    for (int64_t i = 0; i < slivers * MR * KC; ++i) A[i] = 1e-3f;
    for (int64_t i = 0; i < panels * NR * KC; ++i) B[i] = 1e-3f;
    for (int64_t i = 0; i < slivers * panels * MR * NR; ++i) C[i] = 0.0f;
    for (int64_t r = 0; r < reps; ++r)
        for (int64_t j = 0; j < panels; ++j)
            for (int64_t s = 0; s < slivers; ++s)
                U::template run<MR>(KC, A + s * MR * KC, 0, B + j * NR * KC, NR,
                                    C + (j * slivers + s) * MR * NR, NR, true, NR, nullptr);
    volatile float sink = C[0];  // the tiles' results are observable
    (void)sink;
    return 2.0 * MR * NR * KC * slivers * panels * static_cast<double>(reps);
}

// The three training forms, as the kernel table wants them.

void matmul_forward(float* Y, const float* X, const float* W, const float* b, int64_t M,
                    int64_t K, int64_t N, bool relu) {
    // X is (M,K), W is (K,N), b is (N) or null, Y is (M,N)
    const View A{X, K, 1}, B{W, N, 1};
    Fuse f;
    f.bias = b;
    if (b && relu) gemm<Ukernel, Epilogue::BiasRelu>(Y, A, B, M, K, N, f);
    else if (b) gemm<Ukernel, Epilogue::Bias>(Y, A, B, M, K, N, f);
    else if (relu) gemm<Ukernel, Epilogue::Relu>(Y, A, B, M, K, N);
    else gemm<Ukernel, Epilogue::None>(Y, A, B, M, K, N);
}

void matmul_forward_train(float* Y, const float* X, const float* W, const float* b, int64_t M,
                          int64_t K, int64_t N, bool relu) {
    // matmul_forward, bit for bit, with the threads split as forward_splits_k says and at
    // the boundary where the weight-gradient GEMM's two threads split the same K rows
    if (!forward_splits_k(M, K, N)) {
        matmul_forward(Y, X, W, b, M, K, N, relu);
        return;
    }
    int64_t k_begin, kb;
    split_range(K, 2, 0, Ukernel::MR, &k_begin, &kb);
    const View A{X, K, 1}, B{W, N, 1};
    Fuse f;
    f.bias = b;
    if (b && relu) gemm_split_k2<Ukernel, Epilogue::BiasRelu>(Y, A, B, M, K, N, kb, f);
    else if (b) gemm_split_k2<Ukernel, Epilogue::Bias>(Y, A, B, M, K, N, kb, f);
    else if (relu) gemm_split_k2<Ukernel, Epilogue::Relu>(Y, A, B, M, K, N, kb, f);
    else gemm_split_k2<Ukernel, Epilogue::None>(Y, A, B, M, K, N, kb, f);
}

void matmul_backward_input(float* dX, const float* dY, const float* W, const float* mask,
                           int64_t M, int64_t N, int64_t K) {
    // dY is (M,N), W is (K,N) read as Wᵀ (N,K), mask and dX are (M,K)
    const View A{dY, N, 1}, B{W, 1, N};
    Fuse f;
    f.mask = mask;
    if (mask) gemm<Ukernel, Epilogue::Mask>(dX, A, B, M, N, K, f);
    else gemm<Ukernel, Epilogue::None>(dX, A, B, M, N, K);
}

void matmul_backward_weight(float* dW, float* db, const float* X, const float* dY, int64_t M,
                            int64_t K, int64_t N) {
    // X is (M,K) read as Xᵀ (K,M), dY is (M,N), dW is (K,N), db is (N) or null
    const View A{X, 1, K}, B{dY, N, 1};
    gemm<Ukernel, Epilogue::None>(dW, A, B, K, M, N);
    // The bias gradient reads dY once more right after the GEMM packed it, while it is
    // still in cache; it is O(M·N) against the GEMM's O(M·N·K).
    if (db) column_sums(db, dY, M, N);
}

void matmul_backward_weight_sgd(float* dW, float* db, const float* X, const float* dY,
                                int64_t M, int64_t K, int64_t N, float* W, float* buf_W,
                                float* b, float* buf_b, const SgdStep& s) {
    // X is (M,K), dY is (M,N), dW, W and buf_W are (K,N), db, b and buf_b are (N) or null
    // Updating W tile by tile while dW is in L1 saves a pass over dW, W and the buffer
    // through memory: for a batch of one that pass was most of the step.
    const View A{X, 1, K}, B{dY, N, 1};
    Fuse f;
    f.sgd = &s;
    f.param = W;
    f.buf = buf_W;
    if (M == 1) {
        // A batch of one: dW is the outer product x ⊗ dy, memory-bound. Rows of it are
        // written and, while still in L1, stepped in chunks: no packing, no tiles, no second
        // pass over dW. dW[k, j] = fma(x[k], dy[j], 0), the first (and only) FMA of the
        // GEMM's chain for that element, so the bits are the same.
        constexpr int64_t kChunkFloats = 4096;  // 16 KiB of dW per SGD call
        const int64_t rows = N >= kChunkFloats ? 1 : kChunkFloats / N;
        auto outer = [&](int64_t kb, int64_t ke) {
            for (int64_t k0 = kb; k0 < ke; k0 += rows) {
                const int64_t k1 = ke - k0 < rows ? ke : k0 + rows;
                for (int64_t k = k0; k < k1; ++k) {
                    const float x = X[k];
                    float* d = dW + k * N;
                    for (int64_t j = 0; j < N; ++j) d[j] = std::fma(x, dY[j], 0.0f);
                }
                sgd_rows(dW + k0 * N, N, k0, k1 - k0, 0, N, f);
            }
        };
        if (forward_splits_k(1, K, N)) {
            // Each thread updates the W rows its half of the split forward read.
            run_parts(2, [&](int p, int parts) {
                int64_t b, e;
                split_range(K, parts, parts - 1 - p, Ukernel::MR, &b, &e);
                outer(b, e);
            });
        } else {
            outer(0, K);
        }
    } else {
        gemm<Ukernel, Epilogue::Sgd>(dW, A, B, K, M, N, f);
    }
    if (db) {
        column_sums(db, dY, M, N);
        sgd_update(b, buf_b, db, N, s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov,
                   s.first_step, 1.0f, s.clip_value);
    }
}

// Benchmark probe (KernelTable::gemm_parts_probe): `reps` GEMMs of one shape and form on this
// thread, as the one-thread matmul kernels run them (gemm()'s t == 1 path: gemm_block over the
// whole C), whole or without packing and/or the caller's C, to split a GEMM's distance from
// the tile's rate into its parts. A thread's first call for a shape fills its operands, runs
// the form's matmul kernel on them and one whole GEMM of the probe, and throws unless the two
// products are the same bits: a mixed-up stride, layout or form shows, though not another
// path of the same kernel, since every path gives the same bits. That GEMM leaves in the
// packing buffers what parts 1 and 3 then reread (only their time matters). Returns the
// floating-point operations.
double gemm_parts_probe(const GemmProbeShape& g, int part, int64_t reps) {
    using U = Ukernel;
    const int64_t M = g.M, K = g.K, N = g.N;
    static thread_local Workspace wx, wy, wc, wk;
    static thread_local GemmProbeShape filled{GemmForm::XW, 0, 0, 0};
    // The operands of each form (X (M,K), W (K,N), dY (M,N)) as the matmul kernels view them,
    // and C's rows, reduction and columns.
    const bool xw = g.form == GemmForm::XW, dyw = g.form == GemmForm::DYWt;
    const int64_t first = dyw ? M * N : M * K, second = xw || dyw ? K * N : M * N;
    const int64_t rows = g.form == GemmForm::XtDY ? K : M, red = xw ? K : dyw ? N : M,
                  cols = dyw ? K : N;
    const bool fill = filled.form != g.form || filled.M != M || filled.K != K || filled.N != N;
    filled = GemmProbeShape{GemmForm::XW, 0, 0, 0};  // until the operands are this shape's
    float* P = wx.get(static_cast<size_t>(first));
    float* Q = wy.get(static_cast<size_t>(second));
    float* C = wc.get(static_cast<size_t>(rows * cols));
    const View A = xw ? View{P, K, 1} : dyw ? View{P, N, 1} : View{P, 1, K};
    const View B = xw ? View{Q, N, 1} : dyw ? View{Q, 1, N} : View{Q, N, 1};
    Fuse f;
    f.k_total = red;
    if (fill) {
        // Values that differ along every dimension (one bit of a layout mixed up changes the
        // product), small enough that no sum overflows or goes subnormal.
        for (int64_t i = 0; i < first; ++i) P[i] = static_cast<float>(i % 61 - 30) * 1e-3f;
        for (int64_t i = 0; i < second; ++i) Q[i] = static_cast<float>(i % 67 - 33) * 1e-3f;
        float* kernel = wk.get(static_cast<size_t>(rows * cols));
        if (xw) matmul_forward(kernel, P, Q, nullptr, M, K, N, false);
        else if (dyw) matmul_backward_input(kernel, P, Q, nullptr, M, N, K);
        else matmul_backward_weight(kernel, nullptr, P, Q, M, K, N);
        gemm_block<U, Epilogue::None>(C, cols, A, B, red, 0, rows, 0, cols, f);
        if (std::memcmp(kernel, C, static_cast<size_t>(rows * cols) * sizeof(float)) != 0)
            throw std::logic_error("gemm_parts_probe: its GEMM's product differs from the "
                                   "matmul kernel's for this shape and form");
    }
    filled = g;
    for (int64_t r = 0; r < reps; ++r) {
        switch (part) {
            case 1: gemm_block<U, Epilogue::None, 1>(C, cols, A, B, red, 0, rows, 0, cols, f); break;
            case 2: gemm_block<U, Epilogue::None, 2>(C, cols, A, B, red, 0, rows, 0, cols, f); break;
            case 3: gemm_block<U, Epilogue::None, 3>(C, cols, A, B, red, 0, rows, 0, cols, f); break;
            default: gemm_block<U, Epilogue::None>(C, cols, A, B, red, 0, rows, 0, cols, f); break;
        }
    }
    // the results are observable
    volatile float sink = C[0] + probe_tile<U>()[0] + probe_edge<U>()[0] + probe_wide<U>()[0];
    (void)sink;
    return 2.0 * M * K * N * static_cast<double>(reps);
}

}  // namespace FASTDENSE_ISA_NS
}  // namespace fastdense
