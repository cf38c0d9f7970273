// Declares one ISA's kernel functions (namespace fastdense::FASTDENSE_ISA_NS) and defines its
// KernelTable. Included once per compiled ISA by tables.cpp; deliberately without an include
// guard.
#ifndef FASTDENSE_ISA_NS
#error "define FASTDENSE_ISA_NS before including kernel_table.h"
#endif

#include "fastdense/kernels.h"

#define FASTDENSE_STR2(x) #x
#define FASTDENSE_STR(x) FASTDENSE_STR2(x)
#define FASTDENSE_CAT2(a, b) a##b
#define FASTDENSE_CAT(a, b) FASTDENSE_CAT2(a, b)

namespace fastdense {
namespace FASTDENSE_ISA_NS {
void matmul_forward(float*, const float*, const float*, const float*, int64_t, int64_t,
                    int64_t, bool);
void matmul_forward_train(float*, const float*, const float*, const float*, int64_t, int64_t,
                          int64_t, bool);
void matmul_backward_input(float*, const float*, const float*, const float*, int64_t, int64_t,
                           int64_t);
void matmul_backward_weight(float*, float*, const float*, const float*, int64_t, int64_t,
                            int64_t);
void matmul_backward_weight_sgd(float*, float*, const float*, const float*, int64_t, int64_t,
                                int64_t, float*, float*, float*, float*, const SgdStep&);
void relu_forward(float*, const float*, int64_t);
void relu_backward(float*, const float*, const float*, int64_t);
double softmax_xent(float*, float*, const float*, Labels, int64_t, int64_t, float);
void sgd_update(float*, float*, const float*, int64_t, float, float, float, float, bool, bool,
                float, float);
double sum_squares(const float*, int64_t);
double fma_probe(int64_t);
double tile_probe(int64_t);
double gemm_parts_probe(const GemmProbeShape&, int, int64_t);
}  // namespace FASTDENSE_ISA_NS

const KernelTable FASTDENSE_CAT(FASTDENSE_ISA_NS, _kernels) = {
    FASTDENSE_STR(FASTDENSE_ISA_NS),
    FASTDENSE_ISA_NS::matmul_forward,
    FASTDENSE_ISA_NS::matmul_forward_train,
    FASTDENSE_ISA_NS::matmul_backward_input,
    FASTDENSE_ISA_NS::matmul_backward_weight,
    FASTDENSE_ISA_NS::matmul_backward_weight_sgd,
    FASTDENSE_ISA_NS::relu_forward,
    FASTDENSE_ISA_NS::relu_backward,
    FASTDENSE_ISA_NS::softmax_xent,
    FASTDENSE_ISA_NS::sgd_update,
    FASTDENSE_ISA_NS::sum_squares,
    FASTDENSE_ISA_NS::fma_probe,
    FASTDENSE_ISA_NS::tile_probe,
#ifdef FASTDENSE_NO_GEMM_PARTS
    nullptr,
#else
    FASTDENSE_ISA_NS::gemm_parts_probe,
#endif
};
}  // namespace fastdense
