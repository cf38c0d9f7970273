"""fastdense: dense neural networks trained on a hand-written, runtime-dispatched C++ core.

The kernels (float32 GEMM in the three forms a training step needs, bias, ReLU, fused
softmax cross-entropy, SGD) live in the compiled module ``fastdense._core``; the ISA
(``ref``, ``avx2``, ``avx512``) is chosen once at import from what the CPU and OS support, or
forced with the ``FASTDENSE_ISA`` environment variable.

>>> import fastdense
>>> model = fastdense.MLP([784, 100, 10], kernel_init="he_normal", seed=0)
"""

from fastdense import _core
from fastdense._core import (
    active_isa,
    compiled_isas,
    get_flush_denormal,
    get_num_threads,
    set_flush_denormal,
    set_isa,
    set_num_threads,
    supported_isas,
)

__version__ = _core.__version__

from fastdense import data, diagnostics, init, losses, optim, study  # noqa: E402
from fastdense.model import MLP, Dense, History, ReLU, Sequential  # noqa: E402
from fastdense.serialization import ModelFileError, load  # noqa: E402


def cuda_status() -> str:
    """Why the CUDA path is or is not available (it is built only where a CUDA toolkit is
    found; this build has no CUDA module)."""
    try:
        from fastdense import _cuda  # noqa: F401
    except ImportError:
        return "not available (this build has no CUDA module)"
    return "available"


__all__ = [
    "__version__",
    "Dense",
    "History",
    "MLP",
    "ModelFileError",
    "ReLU",
    "Sequential",
    "active_isa",
    "compiled_isas",
    "cuda_status",
    "data",
    "diagnostics",
    "get_flush_denormal",
    "get_num_threads",
    "init",
    "load",
    "losses",
    "optim",
    "set_flush_denormal",
    "set_isa",
    "set_num_threads",
    "study",
    "supported_isas",
]
