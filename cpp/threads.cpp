// The kernels' thread count: OpenMP's, so OMP_NUM_THREADS works as users expect, and
// settable from Python. Without OpenMP everything runs on the calling thread.
#include "fastdense/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastdense {

int num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

}  // namespace fastdense
