// The kernel table of every compiled ISA. This file holds only pointers, so it is compiled
// with the baseline flags like the rest of the module; the code it points to is in ref/,
// avx2/ and avx512/, each compiled with its own.
#define FASTDENSE_ISA_NS ref
#define FASTDENSE_NO_GEMM_PARTS  // the reference GEMM packs nothing
#include "common/kernel_table.h"
#undef FASTDENSE_NO_GEMM_PARTS
#undef FASTDENSE_ISA_NS

#ifdef FASTDENSE_HAVE_AVX2
#define FASTDENSE_ISA_NS avx2
#include "common/kernel_table.h"
#undef FASTDENSE_ISA_NS
#endif

#ifdef FASTDENSE_HAVE_AVX512
#define FASTDENSE_ISA_NS avx512
#include "common/kernel_table.h"
#undef FASTDENSE_ISA_NS
#endif
