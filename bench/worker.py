"""One benchmark case in one process: ``python -m bench.worker '<json spec>'``.

The spec names the group (peak, gemm, step, profile, epoch), the library, the thread count,
the cores to run on, the case parameters and the timing settings. Before any numerical library
is imported, the process pins itself to those cores (``os.sched_setaffinity``; threads created
later inherit the mask) and sets every library's thread-count variables, so all libraries get
the same cores and the same number of threads. The result is printed as one JSON line after
``MARKER``; everything else the libraries print goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys

MARKER = "@@bench-result@@ "
MODULES = {"peak": "peak", "gemm": "gemm", "step": "step", "profile": "step_profile",
           "epoch": "epoch"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    from bench import common

    os.environ.update(common.thread_env(spec["threads"]))
    common.pin(spec["cores"])
    # Keep stdout for the result: libraries that print go to stderr instead.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    import importlib

    module = importlib.import_module("bench." + MODULES[spec["group"]])
    result = module.run(spec)
    result.setdefault("context", {})["affinity"] = sorted(os.sched_getaffinity(0))
    sys.stdout = real_stdout
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
