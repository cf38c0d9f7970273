"""fastdense: dense neural networks trained on a hand-written, runtime-dispatched C++ core.

The kernels (float32 GEMM in the three forms a training step needs, bias, ReLU, fused
softmax cross-entropy, SGD) live in the compiled module ``fastdense._core``; the ISA
(``ref``, ``avx2``, ``avx512``) is chosen once at import from what the CPU and OS support, or
forced with the ``FASTDENSE_ISA`` environment variable.
"""

from fastdense import _core
from fastdense._core import (
    active_isa,
    compiled_isas,
    get_num_threads,
    set_isa,
    set_num_threads,
    supported_isas,
)

__version__ = _core.__version__

__all__ = [
    "__version__",
    "active_isa",
    "compiled_isas",
    "get_num_threads",
    "set_isa",
    "set_num_threads",
    "supported_isas",
]
