#!/usr/bin/env python3
"""Build the small Fashion-MNIST subset embedded in the fastdense package.

Draws, with a fixed seed, 600 images per class from the original training
split and 100 per class from the original test split, and stores them as
uint8 in ``python/fastdense/_data/fashion_mnist_small.npz`` together with
their row indices in the original files (for provenance checks).

The inputs are checked against the SHA-256 of the decompressed original IDX
files, so any faithful copy works (Debian's package recompresses the .gz files;
their decompressed content is identical to Zalando's). The output is
byte-for-byte reproducible for a given numpy and zlib: the archive members get
a fixed timestamp.

Usage (from the repository root, after ``apt-get install dataset-fashion-mnist``)::

    python tools/make_embedded_data.py
    python tools/make_embedded_data.py --source DIR --output FILE.npz

Only numpy and the standard library are needed; the fastdense package does
not have to be built.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUTPUT = REPO / "python" / "fastdense" / "_data" / "fashion_mnist_small.npz"

SEED = 20240601
TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
NUM_CLASSES = 10

# SHA-256 of the *decompressed* original Fashion-MNIST IDX files. Their MD5s
# (f4a8712d..., 9018921c..., 8181f547..., 15d48437...) are the ones published
# next to Zalando's .gz MD5s.
RAW_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def _load_data_module():
    # Load data.py by path: importing the fastdense package would need the compiled extension.
    path = REPO / "python" / "fastdense" / "data.py"
    spec = importlib.util.spec_from_file_location("_fastdense_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while the class is built
    spec.loader.exec_module(module)
    return module


def _read_verified(data, source: Path, name: str) -> np.ndarray:
    for candidate in (source / f"{name}.gz", source / name):
        if candidate.is_file():
            array = data.read_idx(candidate)
            break
    else:
        sys.exit(f"error: {name}(.gz) not found in {source}")
    # Re-encoding reproduces the IDX bytes exactly for these uint8 files.
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    got = hashlib.sha256(header + array.tobytes()).hexdigest()
    if got != RAW_SHA256[name]:
        sys.exit(f"error: {candidate} is not the original Fashion-MNIST data (sha256 of content {got})")
    return array


def _stratified(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    chosen = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in range(NUM_CLASSES)]
    # Sorted, so the subset keeps the original (already class-mixed) order.
    return np.sort(np.concatenate(chosen))


def _write_npz(path: Path, arrays: dict) -> None:
    # np.savez_compressed stamps members with the current time; a fixed one makes rebuilds identical.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="directory with the four original Fashion-MNIST IDX files (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="where to write the .npz (default: python/fastdense/_data/fashion_mnist_small.npz)")
    args = parser.parse_args(argv)

    data = _load_data_module()
    x_train = _read_verified(data, args.source, "train-images-idx3-ubyte")
    y_train = _read_verified(data, args.source, "train-labels-idx1-ubyte")
    x_test = _read_verified(data, args.source, "t10k-images-idx3-ubyte")
    y_test = _read_verified(data, args.source, "t10k-labels-idx1-ubyte")

    rng = np.random.default_rng(SEED)
    train_index = _stratified(y_train, TRAIN_PER_CLASS, rng)
    test_index = _stratified(y_test, TEST_PER_CLASS, rng)

    _write_npz(args.output, {
        "x_train": x_train[train_index],
        "y_train": y_train[train_index],
        "x_test": x_test[test_index],
        "y_test": y_test[test_index],
        "train_index": train_index.astype(np.int32),
        "test_index": test_index.astype(np.int32),
    })
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output}: {args.output.stat().st_size} bytes, sha256 {digest}")
    print(f"train: {len(train_index)} images ({TRAIN_PER_CLASS}/class), "
          f"test: {len(test_index)} images ({TEST_PER_CLASS}/class), seed {SEED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
